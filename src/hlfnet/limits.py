"""Resource limits, checked from headers and settings *before* anything large is allocated.

Each limit has a default a user would accept and an environment variable to change it; a refusal names the
limit and the variable (``docs/safety.md``).

=========================  ==============================  =======================================================
limit                      default                         environment variable
=========================  ==============================  =======================================================
pixels per 2-D image       100 000 000 (100 MP)            ``HLFNET_MAX_IMAGE_PIXELS``
voxels per volume          536 870 912 (512 Mi voxels)     ``HLFNET_MAX_VOLUME_VOXELS``
YAML file size             1 MiB                           ``HLFNET_MAX_YAML_BYTES``
YAML aliases per file      100                             ``HLFNET_MAX_YAML_ALIASES``
YAML values (expanded)     100 000                         ``HLFNET_MAX_YAML_NODES``
network parameters         500 000 000 (estimated)         ``HLFNET_MAX_PARAMETERS``
JSON file size             64 MiB                          ``HLFNET_MAX_JSON_BYTES``
training activations       the memory available now        ``HLFNET_MAX_ACTIVATION_BYTES`` (``0``: no check)
=========================  ==============================  =======================================================
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from hlfnet.errors import ResourceLimitError, UserError

__all__ = [
    "LIMITS",
    "check_declared_bytes",
    "check_image_pixels",
    "check_volume_voxels",
    "check_network_size",
    "check_training_memory",
    "estimate_parameters",
    "limit",
    "read_json",
    "check_yaml_text",
    "safe_yaml_load",
]

#: name -> (environment variable, default, what it limits)
LIMITS: dict[str, tuple[str, int, str]] = {
    "image_pixels": ("HLFNET_MAX_IMAGE_PIXELS", 100_000_000, "pixels per image"),
    "volume_voxels": ("HLFNET_MAX_VOLUME_VOXELS", 512 * 2**20, "voxels per volume"),
    "yaml_bytes": ("HLFNET_MAX_YAML_BYTES", 2**20, "bytes per YAML file"),
    "yaml_aliases": ("HLFNET_MAX_YAML_ALIASES", 100, "aliases per YAML file"),
    "yaml_nodes": ("HLFNET_MAX_YAML_NODES", 100_000, "values per YAML file"),
    "parameters": ("HLFNET_MAX_PARAMETERS", 500_000_000, "network parameters"),
    "json_bytes": ("HLFNET_MAX_JSON_BYTES", 64 * 2**20, "bytes per JSON file"),
}

#: Deflate's best case: a gzip stream never holds more than about 1032 bytes per compressed byte. A
#: ``.nii.gz`` whose header declares more data than that bound allows is refused before decompressing.
GZIP_MAX_RATIO = 1032

#: Bytes a training forward keeps for backward per input pixel and per unit of ``base_channels`` (HLF-Net,
#: the heaviest network: 1166 MiB at batch 6, 192×256, base 16; docs/benchmarks.md), with a margin.
ACTIVATION_BYTES_PER_PIXEL_CHANNEL = 300


def limit(name: str) -> int:
    """The current value of a limit (its environment variable, else its default).

    Raises:
        UserError: the environment variable is not a positive integer.
    """
    variable, default, _ = LIMITS[name]
    text = os.environ.get(variable)
    if text is None or not text.strip():
        return default
    value = _integer_variable(variable, text)
    if value < 1:
        raise UserError(f"environment variable {variable}={text!r} must be a positive integer")
    return value


def _integer_variable(variable: str, text: str) -> int:
    """``text`` as an integer (``1e9`` allowed); ``inf``, ``nan``, ``1e400`` and words are refused."""
    try:
        number = float(text)
        value = int(number)
    except (ValueError, OverflowError):
        raise UserError(
            f"environment variable {variable}={text!r} must be a finite integer such as 1000000"
        ) from None
    if value != number or abs(value) >= 2**63:
        raise UserError(f"environment variable {variable}={text!r} must be an integer below 2**63")
    return value


def _refuse(name: str, what: str, amount: int) -> ResourceLimitError:
    variable, _, description = LIMITS[name]
    return ResourceLimitError(
        f"{what}: {amount:,} {description}, above the limit of {limit(name):,}; if this is intended and the "
        f"machine has the memory, raise it with {variable}={amount} (docs/safety.md)"
    )


def check_image_pixels(shape: tuple[int, ...], source: Any) -> None:
    """Refuse a 2-D image whose header announces more than ``HLFNET_MAX_IMAGE_PIXELS`` pixels, or none.

    Args:
        shape: ``(H, W)`` or ``(H, W, C)`` as read from the header.
        source: the file, named in the error.
    """
    if len(shape) < 2 or min(shape[:2]) < 1:
        raise UserError(f"{source}: empty image (shape {tuple(shape)})")
    pixels = int(shape[0]) * int(shape[1])
    if pixels > limit("image_pixels"):
        raise _refuse("image_pixels", f"{source}: image of {shape[1]}×{shape[0]} pixels", pixels)


def check_volume_voxels(shape: tuple[int, ...], source: Any) -> None:
    """Refuse a volume whose header announces more than ``HLFNET_MAX_VOLUME_VOXELS`` voxels, or none."""
    if any(int(s) < 1 for s in shape):
        raise UserError(f"{source}: empty volume (shape {tuple(shape)})")
    voxels = math.prod(int(s) for s in shape)
    if voxels > limit("volume_voxels"):
        raise _refuse("volume_voxels", f"{source}: volume of shape {tuple(shape)}", voxels)


def check_declared_bytes(declared: int, available: int, source: Any, what: str) -> None:
    """Refuse a file whose header declares more bytes of data than the file can hold, before allocating.

    Args:
        declared: bytes the header says follow (offset included).
        available: the most bytes the file can deliver (its size; for gzip, size × :data:`GZIP_MAX_RATIO`).
        source: the file, named in the error.
        what: what the header declares (``"shape (800, 800, 800) float64"``).
    """
    if declared > available:
        raise UserError(
            f"{source}: truncated or forged file: its header declares {what} ({declared:,} bytes) but the file "
            f"can hold at most {available:,}; restore it from its source"
        )


def read_json(path: str | os.PathLike[str], what: str = "JSON file") -> Any:
    """Parse a JSON file within ``HLFNET_MAX_JSON_BYTES`` and a sane nesting depth; every error is one line.

    Raises:
        FileNotFoundError: no such file.
        ResourceLimitError: the file is larger than the limit.
        UserError: not UTF-8 JSON, or nested too deeply (names the file).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: {what} not found")
    size = path.stat().st_size
    if size > limit("json_bytes"):
        raise _refuse("json_bytes", f"{path}: {what}", size)
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except RecursionError:
        raise UserError(f"{path}: {what} nested too deeply to be one hlfnet wrote") from None
    except UnicodeDecodeError as error:
        raise UserError(f"{path}: unreadable {what} ({error})") from None
    except ValueError as error:
        raise UserError(f"{path}: {what} is not valid JSON ({error})") from None


def safe_yaml_load(path: str | os.PathLike[str]) -> Any:
    """``yaml.safe_load`` of a file after checking its size and counting its aliases (no "billion laughs").

    Raises:
        FileNotFoundError: no such file.
        ResourceLimitError: the file is larger than ``HLFNET_MAX_YAML_BYTES`` or has more aliases than
            ``HLFNET_MAX_YAML_ALIASES``.
        ValueError: not valid YAML (names the file).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: config file not found")
    size = path.stat().st_size
    if size > limit("yaml_bytes"):
        raise _refuse("yaml_bytes", f"{path}: YAML file", size)
    try:
        text = path.read_text()
    except UnicodeDecodeError as error:
        raise UserError(f"{path}: not a text file ({error})") from None
    return check_yaml_text(text, f"{path}: YAML file")


def check_yaml_text(text: str, source: str) -> Any:
    """Parse YAML text within the alias and expanded-size limits (files and ``--set`` values alike).

    Raises:
        ResourceLimitError: more aliases than ``HLFNET_MAX_YAML_ALIASES``, or more values once expanded than
            ``HLFNET_MAX_YAML_NODES``; names ``source``.
        UserError: not valid YAML (names ``source``).
    """
    import yaml

    try:
        aliases = sum(
            isinstance(event, yaml.AliasEvent) for event in yaml.parse(text, Loader=yaml.SafeLoader)
        )
        if aliases > limit("yaml_aliases"):
            raise _refuse("yaml_aliases", source, aliases)
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        where = source.removesuffix(": YAML file")
        raise UserError(f"{where}: not valid YAML ({' '.join(str(error).split())})") from None
    # Aliases share objects: a few dozen nest into billions of values once copied ("billion laughs").
    nodes = _expanded_size(data, {})
    if nodes > limit("yaml_nodes"):
        raise _refuse("yaml_nodes", f"{source} (with its aliases expanded)", nodes)
    return data


def _expanded_size(value: Any, seen: dict[int, int]) -> int:
    """Values in ``value`` once every alias is expanded, counted without expanding (shared objects memoised)."""
    if not isinstance(value, (dict, list)):
        return 1
    key = id(value)
    if key not in seen:
        seen[key] = 0  # a (cyclic) reference to an object being counted adds nothing more
        items = list(value.values()) if isinstance(value, dict) else value
        seen[key] = 1 + sum(_expanded_size(item, seen) for item in items)
    return seen[key]


def estimate_parameters(base_channels: int, depth: int, in_channels: int = 4, out_channels: int = 1) -> int:
    """A generous estimate of the parameters of an :class:`~hlfnet.models.EncoderDecoderNet` (the real count is
    about 0.7× of it for the paper's networks); exact enough to refuse absurd sizes before building them.

    The first and last convolutions grow with the channels: ``27 · base_channels · (in + out)`` (3×3×3
    kernels, the larger case) is added, so that ``in_channels: 10**9`` is refused before allocating.
    """
    body = 40 * (int(base_channels) * 2 ** int(depth)) ** 2
    return body + 27 * int(base_channels) * (int(in_channels) + int(out_channels))


def check_network_size(kwargs: dict[str, Any], key_prefix: str = "model.") -> None:
    """Refuse network settings whose estimated parameter count exceeds ``HLFNET_MAX_PARAMETERS``.

    ``kwargs`` holds ``base_channels`` and ``depth`` and, when known, ``in_channels`` and ``out_channels``.
    """
    base = kwargs.get("base_channels", 16)
    depth = kwargs.get("depth", 4)
    channels = {k: kwargs.get(k, d) for k, d in (("in_channels", 4), ("out_channels", 1))}
    for key, value, top in (("base_channels", base, 4096), ("depth", depth, 16)):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= top:
            raise UserError(f"config key '{key_prefix}{key}' must be an integer in [1, {top}], got {value!r}")
    for key, value in channels.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise UserError(f"config key '{key_prefix}{key}' must be a positive integer, got {value!r}")
    estimate = estimate_parameters(base, depth, channels["in_channels"], channels["out_channels"])
    if estimate > limit("parameters"):
        sizes = ", ".join(
            f"'{key_prefix}{k}'={v}"
            for k, v in (("base_channels", base), ("depth", depth), *channels.items())
        )
        raise _refuse("parameters", f"config keys {sizes}: network of about", estimate)


def available_memory() -> int | None:
    """Bytes of memory available now (``MemAvailable`` of ``/proc/meminfo``), or ``None`` when unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def check_training_memory(batch_size: int, image_size: tuple[int, int], kwargs: dict[str, Any]) -> None:
    """Refuse a CPU training whose activations alone would not fit in the memory available now.

    The limit is ``HLFNET_MAX_ACTIVATION_BYTES`` when set (``0`` turns the check off), else ``MemAvailable``.
    """
    text = os.environ.get("HLFNET_MAX_ACTIVATION_BYTES")
    if text is not None and text.strip():
        budget: int | None = _integer_variable("HLFNET_MAX_ACTIVATION_BYTES", text)
        if budget == 0:
            return
    else:
        budget = available_memory()
    if budget is None:
        return
    depth = int(kwargs.get("depth", 4))
    multiple = 2**depth
    height, width = (math.ceil(s / multiple) * multiple for s in image_size)
    needed = (
        ACTIVATION_BYTES_PER_PIXEL_CHANNEL
        * batch_size
        * height
        * width
        * int(kwargs.get("base_channels", 16))
    )
    if needed > budget:
        raise ResourceLimitError(
            f"config keys 'train.batch_size'={batch_size}, 'data.image_size'={list(image_size)}, "
            f"'model.base_channels'={kwargs.get('base_channels', 16)}: training would keep about "
            f"{needed / 2**30:.1f} GiB of activations but {budget / 2**30:.1f} GiB are available; lower them, or "
            "set HLFNET_MAX_ACTIVATION_BYTES (0 turns this check off; docs/safety.md)"
        )
