"""How many channels a data set's images have, and how many the network takes (headers only, no decoding).

``resolve_in_channels`` is the one rule for a model's input channels: ``data.in_channels`` when set, else the
format's (ISIC and synthetic: RGB + grey = 4) or the sources' own (grey 1, colour 4 = RGB + grey, arrays and
volumes as stored). A data set that mixes channel counts is refused before any run folder exists.
"""

from __future__ import annotations

import logging
from pathlib import Path

from hlfnet.data.config import DataConfig
from hlfnet.data.io import npy_header, pil_header
from hlfnet.data.layouts import Pair, discover

__all__ = ["native_channels", "resolve_in_channels", "uniform_channels"]

logger = logging.getLogger(__name__)

_DEFAULT_CHANNELS = {"isic2017": 4, "synthetic": 4, "msd": 1, "nifti": 1, "nnunet": 1}


def resolve_in_channels(cfg: DataConfig, native_channels: int | None = None) -> int:
    """Channels of the model input: ``cfg.in_channels`` or derived from the format / the source.

    Args:
        cfg: Data config.
        native_channels: Channels of the source image/volume (1 grey, 3 colour, C for arrays), used for
            ``folder`` (grey → 1, colour → 4 = RGB + grey, other → as is), ``nnunet`` (as stored) and
            multi-channel volumes;
            ``None`` reads the header of the first source file under ``cfg.root`` (what the datasets do).
    """
    if cfg.in_channels is not None:
        return cfg.in_channels
    if cfg.format in ("isic2017", "synthetic"):
        return 4
    if native_channels is None:
        native_channels = _first_source_channels(cfg)
    if native_channels is None:
        return _DEFAULT_CHANNELS.get(cfg.format, 1)
    if cfg.format in ("msd", "nifti", "nnunet"):
        return native_channels  # nnU-Net: the channels as stored (an RGB PNG is 3), as nnU-Net reads them
    return {1: 1, 3: 4}.get(native_channels, native_channels)


def _first_source_channels(cfg: DataConfig) -> int | None:
    try:
        pairs = discover(cfg).all_pairs()
    except (FileNotFoundError, ValueError) as error:
        logger.warning(
            "cannot read the channel count from the data (%s); assuming the %s default", error, cfg.format
        )
        return None
    # every source's header: a data set mixing grey and colour is refused here, before any run folder exists
    return uniform_channels(cfg, pairs)


def native_channels(cfg: DataConfig, pair: Pair) -> int:
    """Channels of a source as read (1 grey, 3 colour, C for ``.npy``/4-D NIfTI), reading only headers.

    A case stored one file per channel (nnU-Net) has the channels of its files together.
    """
    return sum(_file_channels(cfg, path) for path in pair.files)


def _file_channels(cfg: DataConfig, path: Path) -> int:
    if cfg.is_volume:
        import nibabel as nib

        try:
            shape = nib.load(str(path)).shape
        except Exception as error:  # nibabel raises many types for broken files
            raise ValueError(f"{path}: unreadable NIfTI ({type(error).__name__}: {error})") from None
        return int(shape[3]) if len(shape) == 4 else 1
    if path.suffix.lower() == ".npy":
        shape, _ = npy_header(path)
        return int(shape[2]) if len(shape) == 3 else 1
    with pil_header(path) as img:
        return 1 if img.mode in ("1", "L", "LA", "F") or img.mode.startswith("I") else 3


def uniform_channels(cfg: DataConfig, pairs: list[Pair]) -> int | None:
    """The one native channel count of ``pairs`` (headers only), ``None`` for no pairs.

    Raises:
        ValueError: the sources mix channel counts (grey and colour images in one data set), naming an example
            of each; converting them, or setting ``data.in_channels``, resolves it.
    """
    if not pairs:
        return None
    if (cfg.in_channels is not None or cfg.format in ("isic2017", "synthetic")) and not cfg.is_volume:
        return native_channels(cfg, pairs[0])  # every image is converted to the model's channels
    found: dict[int, list[Path]] = {}
    for pair in pairs:
        try:
            channels = native_channels(cfg, pair)
        except (FileNotFoundError, ValueError):
            continue  # decoding the pair reports it (or skips it with skip_bad)
        found.setdefault(channels, []).append(pair.image)
    if len(found) > 1:
        kinds = "; ".join(f"{c} channel(s) ×{len(p)} (e.g. {p[0]})" for c, p in sorted(found.items()))
        raise ValueError(
            f"data.root {cfg.root}: images with different channel counts: {kinds}; convert them to one kind, "
            "or set data.in_channels (4 = RGB + grey takes both grey and colour images)"
        )
    return next(iter(found)) if found else None
