"""The one configuration system of hlfnet: a typed-dataclass validator and the one YAML loader.

Every configuration hlfnet reads goes through here: the experiment files of ``hlfnet train`` (model, data and
train sections, :mod:`hlfnet.experiment.config`), the data section that ``hlfnet data`` reads
(:class:`hlfnet.data.DataConfig`), and a run folder's ``config.yaml`` read back by ``evaluate``, ``predict``
and ``--resume``.

* **Schema.** Each section is a dataclass whose type annotations are the schema. :func:`validate_fields`
  checks and normalises every field against its annotation (called from each dataclass's ``__post_init__``,
  so a config built in Python is checked exactly like one read from YAML); range checks follow it in the
  dataclass. :func:`from_mapping` builds a dataclass from a mapping, refusing unknown keys with a
  did-you-mean suggestion. Errors are :class:`ValueError` naming the key (``train.lr``).
* **Loader.** :func:`read_yaml` reads a file with hlfnet's size and alias limits and resolves ``extends:``:
  a config may derive from one or more bases (a path relative to the file, or a shipped config such as
  ``hlfnet_isic2017`` or ``base/isic2017``); mappings are merged key by key, the deriving file winning, so a
  network's config is its ``model:`` section plus what differs. :func:`apply_overrides` applies
  ``--set key.sub=value`` strings.

Example:
    >>> raw = read_yaml(resolve_config_path("unet_isic2017_cpu"))  # doctest: +SKIP
    >>> raw["data"]["image_size"], raw["model"]  # doctest: +SKIP
    ([96, 128], {'name': 'unet'})
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import types
import typing
from importlib import resources
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

__all__ = [
    "EXTENDS_KEY",
    "apply_overrides",
    "check_keys",
    "coerce",
    "did_you_mean",
    "from_mapping",
    "list_configs",
    "read_yaml",
    "resolve_config_path",
    "validate_fields",
]

#: The key by which a config names the base(s) it derives from.
EXTENDS_KEY = "extends"

#: Bases deeper than this are refused (a config that derives from itself is reported as a cycle first).
MAX_EXTENDS_DEPTH = 8


# --------------------------------------------------------------------------------------------------------------
# schema


def did_you_mean(key: str, valid: list[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest valid key, or an empty string."""
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_keys(raw: dict[str, Any], valid: list[str], prefix: str) -> None:
    """Refuse a key of ``raw`` that is not in ``valid``; ``prefix`` (``"train."``) makes the message's key whole.

    Raises:
        ValueError: ``unknown config key 'train.learning_rate' (did you mean ...); valid keys of train: ...``.
    """
    for key in raw:
        if key not in valid:
            raise ValueError(
                f"unknown config key {prefix + str(key)!r}{did_you_mean(str(key), valid)}; "
                f"valid keys{' of ' + prefix.rstrip('.') if prefix else ''}: {', '.join(valid)}"
            )


def coerce(value: Any, annotation: Any, key: str) -> Any:  # noqa: C901 - one branch per kind of annotation
    """Check ``value`` against a type annotation and return it normalised.

    Converts only what YAML and Python callers write loosely: ``int`` → ``float``, numeric strings → ``float``
    (PyYAML reads ``1e-4`` as a string), a number naming a ``Literal`` choice (``precision: 32``), lists →
    tuples, paths → strings.

    Raises:
        ValueError: ``config key 'train.lr' must be a number, got 'fast'``.
    """
    origin = get_origin(annotation)
    if origin is Literal:
        choices = get_args(annotation)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and str(value) in choices:
            value = str(value)
        if value not in choices:
            raise ValueError(f"config key {key!r} must be one of {list(choices)}, got {value!r}")
        return value
    if origin in (typing.Union, types.UnionType):
        options = get_args(annotation)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return coerce(value, option, key)
            except ValueError as error:
                errors.append(str(error))
        raise ValueError(
            errors[0] if len(errors) == 1 else f"config key {key!r}: {value!r} fits none of {options}"
        )
    if origin is dict or annotation is dict:
        if not isinstance(value, dict):
            raise ValueError(f"config key {key!r} must be a mapping, got {type(value).__name__}: {value!r}")
        return dict(value)
    if origin in (list, tuple) or annotation in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"config key {key!r} must be a list, got {type(value).__name__}: {value!r}")
        items = get_args(annotation)
        if items and items[-1] is not Ellipsis and origin is tuple and len(items) != len(value):
            raise ValueError(f"config key {key!r} must have {len(items)} items, got {list(value)!r}")
        if origin is tuple and items and items[-1] is not Ellipsis:
            converted = [
                coerce(v, t, f"{key}[{i}]") for i, (v, t) in enumerate(zip(value, items, strict=True))
            ]
        else:
            item_type = items[0] if items else Any
            converted = [coerce(v, item_type, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(converted) if (origin is tuple or annotation is tuple) else converted
    if annotation is Any:
        return value
    if annotation is bool:
        if not isinstance(value, bool):
            raise ValueError(f"config key {key!r} must be true or false, got {value!r}")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"config key {key!r} must be an integer, got {value!r}")
        return value
    if annotation is float:
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"config key {key!r} must be a number, got {value!r}")
        return float(value)
    if annotation is str:
        if isinstance(value, os.PathLike):
            return os.fspath(value)
        if not isinstance(value, str):
            raise ValueError(f"config key {key!r} must be a string, got {value!r}")
        return value
    if isinstance(annotation, type) and not isinstance(value, annotation):
        raise ValueError(f"config key {key!r} must be {annotation.__name__}, got {value!r}")
    return value


def validate_fields(instance: Any, prefix: str) -> None:
    """Check every field of a config dataclass against its annotation, normalising it in place.

    Call it first in ``__post_init__``; the dataclass's own range checks follow. ``prefix`` is the section
    (``"train"``), empty for top-level keys.

    Raises:
        ValueError: naming ``<prefix>.<field>``.
    """
    hints = typing.get_type_hints(type(instance))
    for field in dataclasses.fields(instance):
        if field.init:
            key = f"{prefix}.{field.name}" if prefix else field.name
            value = coerce(getattr(instance, field.name), hints[field.name], key)
            object.__setattr__(instance, field.name, value)


def from_mapping(cls: type, raw: dict[str, Any] | None, prefix: str) -> Any:
    """Build the config dataclass ``cls`` from a mapping (as read from YAML or JSON).

    Raises:
        ValueError: a section that is not a mapping, an unknown key (with a did-you-mean), or a bad value;
            the message names the key.
    """
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ValueError(f"config section {prefix!r} must be a mapping, got {type(raw).__name__}: {raw!r}")
    check_keys(raw, [f.name for f in dataclasses.fields(cls) if f.init], f"{prefix}.")
    return cls(**raw)


# --------------------------------------------------------------------------------------------------------------
# files


def _shipped_folder() -> Path:
    return Path(str(resources.files("hlfnet") / "configs"))


def list_configs() -> list[str]:
    """Names of the configurations shipped with the package (``hlfnet train --config NAME``); bases not included."""
    return sorted(p.stem for p in _shipped_folder().glob("*.yaml"))


def resolve_config_path(config: str | os.PathLike[str]) -> Path:
    """A path to a YAML file, or the name of a shipped configuration (``hlfnet_isic2017``, ``base/isic2017``).

    Raises:
        FileNotFoundError: neither a file nor a shipped name; lists the shipped names.
    """
    path = Path(config)
    if path.is_file():
        return path
    shipped = _shipped_folder() / f"{str(config).removesuffix('.yaml')}.yaml"
    if not path.is_absolute() and ".." not in path.parts and shipped.is_file():
        return shipped
    raise FileNotFoundError(
        f"config {str(config)!r}: no such file, and not a shipped config (shipped: {', '.join(list_configs())})"
    )


def _merge(base: dict[str, Any], child: dict[str, Any]) -> dict[str, Any]:
    """``base`` updated by ``child``, mappings merged key by key (a ``None`` section keeps the base's)."""
    merged = dict(base)
    for key, value in child.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        elif not (value is None and isinstance(merged.get(key), dict)):
            merged[key] = value
    return merged


def _base_path(value: Any, path: Path) -> Path:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{path}: '{EXTENDS_KEY}' must name a config file or a list of them, got {value!r}")
    relative = path.parent / value
    if relative.is_file():
        return relative
    try:
        return resolve_config_path(value)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{path}: {EXTENDS_KEY} {value!r}: no such file beside it, and not a shipped config "
            f"(shipped: {', '.join(list_configs())})"
        ) from None


def read_yaml(path: str | os.PathLike[str], _chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Read a YAML config as a mapping, with its ``extends:`` bases merged in.

    Args:
        path: the file.

    Raises:
        FileNotFoundError: the file, or a base it names, does not exist.
        ResourceLimitError: the file is too large or holds too many aliases (:mod:`hlfnet.limits`).
        ValueError: not YAML, not a mapping, a bad ``extends`` value, a cycle of bases; names the file.
    """
    from hlfnet.limits import safe_yaml_load

    path = Path(path)
    here = path.resolve()
    if here in _chain:
        cycle = " -> ".join(str(p) for p in (*_chain, here))
        raise ValueError(f"{path}: '{EXTENDS_KEY}' forms a cycle: {cycle}")
    if len(_chain) > MAX_EXTENDS_DEPTH:
        raise ValueError(f"{path}: more than {MAX_EXTENDS_DEPTH} levels of '{EXTENDS_KEY}'")
    raw = safe_yaml_load(path)
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: a config must be a mapping of sections, got {type(raw).__name__}")
    bases = raw.pop(EXTENDS_KEY, None)
    if bases is None:
        return raw
    merged: dict[str, Any] = {}
    for base in bases if isinstance(bases, list) else [bases]:
        merged = _merge(merged, read_yaml(_base_path(base, path), (*_chain, here)))
    return _merge(merged, raw)


def _parse_override(item: str) -> tuple[list[str], Any]:
    from hlfnet.errors import ResourceLimitError
    from hlfnet.limits import check_yaml_text

    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"override {item!r} must look like key.sub=value (e.g. train.max_epochs=3)")
    try:
        value = check_yaml_text(text, f"override {key.strip()!r}") if text.strip() else None
    except ResourceLimitError:
        raise
    except ValueError:  # not YAML: the text as it is (a path with odd characters)
        value = text
    return key.strip().split("."), value


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key.sub=value`` strings to a nested mapping (values are read as YAML: ``3``, ``true``, ``[1,2]``).

    Keys are not checked here; the schema checks the result.

    Raises:
        ValueError: an override without ``=``, or one that descends into a non-mapping value.
        ResourceLimitError: a value with more YAML aliases than ``HLFNET_MAX_YAML_ALIASES``.
    """
    result = _deep_copy(raw)
    for item in overrides:
        path, value = _parse_override(item)
        node = result
        for depth, part in enumerate(path[:-1]):
            child = node.setdefault(part, {})
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ValueError(f"override {item!r}: {'.'.join(path[: depth + 1])} is not a section")
            node = child
        node[path[-1]] = value
    return result


def _deep_copy(raw: Any) -> Any:
    if isinstance(raw, dict):
        return {k: _deep_copy(v) for k, v in raw.items()}
    if isinstance(raw, list):
        return [_deep_copy(v) for v in raw]
    return raw
