"""The preprocessing cache: each split's preprocessed arrays, decoded once, then read as ``.npy`` memory maps.

Layout: ``<cache root>/arrays/<format>-<split>-<key>/`` holding ``images.npy`` ``(N, C, H, W)`` (``uint8`` for
8-bit sources, else ``float32`` in [0, 1]), ``masks.npy`` ``(N, H, W)`` ``uint8`` class indices and
``meta.json`` (per row: id, volume, slice index, whether it holds foreground; skipped files).

The key hashes every setting that changes the arrays (format, image size, channels, classes, mask rule, CT
window, cache version) and every source file's path, size and modification time, so a change of either makes
a new entry. An entry is written into a temporary folder and renamed into place in one step; two runs
building the same entry at once both succeed and one result is kept. Old entries are left alone (delete the
folder to reclaim space).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hlfnet.atomic import check_target, temporary_prefix
from hlfnet.data.channels import resolve_in_channels, uniform_channels
from hlfnet.data.config import DataConfig
from hlfnet.data.io import load_label_volume, load_volume_channels, npy_header, read_image_channels, read_mask
from hlfnet.data.layouts import Pair
from hlfnet.data.preprocess import (
    labels_to_slices,
    resize_image,
    resize_mask,
    slice_orientation,
    to_model_channels,
    volume_to_slices,
)

__all__ = ["CACHE_VERSION", "ArrayStore", "cache_key", "load_or_build"]

logger = logging.getLogger(__name__)

CACHE_VERSION = 1
_EIGHT_BIT_MODES = {"1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "RGBa", "CMYK", "YCbCr", "LAB", "HSV"}


@dataclass
class ArrayStore:
    """Preprocessed arrays of one split, in memory or as read-only memory maps of a cache entry."""

    images: np.ndarray
    masks: np.ndarray
    records: list[dict]
    skipped: list[str] = field(default_factory=list)
    path: Path | None = None

    def __getstate__(self) -> dict:
        # Memory maps are reopened in each DataLoader worker rather than pickled as whole arrays.
        state = dict(self.__dict__)
        if self.path is not None:
            state["images"] = state["masks"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if self.path is not None:
            self.images = np.load(self.path / "images.npy", mmap_mode="r")
            self.masks = np.load(self.path / "masks.npy", mmap_mode="r")


def _stat(path: Path) -> list:
    st = path.stat()
    return [str(path.resolve()), st.st_size, st.st_mtime_ns]


def cache_key(cfg: DataConfig, split: str, pairs: list[Pair], in_channels: int) -> str:
    """Hash of every setting and source file that determines a split's arrays."""
    settings = {
        "version": CACHE_VERSION,
        "format": cfg.format,
        "split": split,
        "image_size": list(cfg.image_size),
        "in_channels": in_channels,
        "num_classes": cfg.num_classes,
        "mask_threshold": cfg.mask_threshold,
        "label_values": list(cfg.label_values) if cfg.label_values else None,
        "ct_window": list(cfg.ct_window) if cfg.ct_window else None,
        "skip_bad": cfg.skip_bad,
        "sources": [[p.id, *[v for f in p.files for v in _stat(f)], *_stat(p.mask)] for p in pairs],
    }
    return hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def _eight_bit(pair: Pair) -> bool:
    return all(_eight_bit_file(f) for f in pair.files)


def _eight_bit_file(path: Path) -> bool:
    if path.suffix.lower() == ".npy":
        return npy_header(path)[1] in (np.uint8, np.bool_)
    from PIL import Image

    try:
        with Image.open(path) as img:
            return img.mode in _EIGHT_BIT_MODES
    except OSError:
        return True  # the decode step reports the file


def _decode_pair(
    pair: Pair, cfg: DataConfig, in_channels: int, dtype: np.dtype
) -> tuple[np.ndarray, np.ndarray]:
    image = read_image_channels(pair.files)
    mask = read_mask(pair.mask, cfg.num_classes, cfg.mask_threshold, cfg.label_values)
    if mask.shape != image.shape[:2]:
        raise ValueError(
            f"{pair.mask}: mask size {mask.shape[1]}×{mask.shape[0]} (W×H) differs from image {pair.image} "
            f"size {image.shape[1]}×{image.shape[0]}"
        )
    chw = to_model_channels(resize_image(image, cfg.image_size), in_channels, pair.image)
    if dtype == np.float32 and chw.dtype == np.uint8:
        chw = chw.astype(np.float32) / 255.0
    return chw, resize_mask(mask, cfg.image_size)


def _slice_count(path: Path) -> int:
    import nibabel as nib

    img = nib.load(str(path))
    ornt = slice_orientation(img.affine)
    return int(img.shape[int(np.flatnonzero(ornt[:, 0] == 2)[0])])


def _build(
    cfg: DataConfig,
    pairs: list[Pair],
    in_channels: int,
    folder: Path | None,
    progress: Callable[[int, int], None] | None,
) -> ArrayStore:
    height, width = cfg.image_size
    skipped: list[str] = []
    records: list[dict] = []
    if cfg.is_volume:
        counts = []
        for pair in pairs:
            try:
                counts.append(_slice_count(pair.image))
            except Exception as error:  # noqa: BLE001 - reported with the file below
                raise ValueError(f"{pair.image}: unreadable NIfTI header ({error})") from error
        total, dtype = sum(counts), np.dtype(np.float32)
    else:
        counts = [1] * len(pairs)
        total = len(pairs)
        dtype = np.dtype(np.uint8) if all(_eight_bit(p) for p in pairs) else np.dtype(np.float32)
    shape_images, shape_masks = (total, in_channels, height, width), (total, height, width)
    if folder is None:
        images, masks = np.zeros(shape_images, dtype), np.zeros(shape_masks, np.uint8)
    else:
        images = np.lib.format.open_memmap(folder / "images.npy", "w+", dtype, shape_images)
        masks = np.lib.format.open_memmap(folder / "masks.npy", "w+", np.uint8, shape_masks)
    row = 0
    for n, (pair, count) in enumerate(zip(pairs, counts, strict=True)):
        try:
            if cfg.is_volume:
                data, meta = load_volume_channels(pair.files)
                labels = load_label_volume(pair.mask, meta, data.shape, cfg.num_classes, cfg.label_values)
                slices = volume_to_slices(data, cfg, meta.affine).numpy()
                if slices.shape[1] != in_channels:
                    raise ValueError(
                        f"{pair.image}: {slices.shape[1]} channel(s), expected in_channels={in_channels}"
                    )
                label_slices = labels_to_slices(labels, meta.affine, cfg.image_size).numpy()
                images[row : row + count] = slices
                masks[row : row + count] = label_slices
                for k in range(count):
                    records.append(
                        {
                            "id": f"{pair.id}_z{k:04d}",
                            "volume": pair.id,
                            "slice_index": k,
                            "foreground": bool(label_slices[k].any()),
                            "row": row + k,
                        }
                    )
            else:
                images[row], masks[row] = _decode_pair(pair, cfg, in_channels, dtype)
                records.append({"id": pair.id, "foreground": bool(masks[row].any()), "row": row})
        except (ValueError, FileNotFoundError) as error:
            if not cfg.skip_bad:
                raise
            skipped.append(str(error))
            logger.warning("skipping: %s", error)
        row += count
        if progress is not None:
            progress(n + 1, len(pairs))
    if skipped:
        logger.warning("skipped %d of %d sample(s) with bad files (skip_bad=True)", len(skipped), len(pairs))
    if folder is not None:
        images.flush()
        masks.flush()
    return ArrayStore(images, masks, records, skipped)


def load_or_build(
    cfg: DataConfig, split: str, pairs: list[Pair], progress: Callable[[int, int], None] | None = None
) -> ArrayStore:
    """The preprocessed arrays of a split: from the cache when present, else decoded (and cached if enabled).

    Args:
        cfg: Data config (``use_cache`` and ``cache_dir`` choose memory or disk).
        split: Split name (part of the key).
        pairs: The split's sources.
        progress: Called as ``progress(done, total)`` while building.

    Raises:
        FileNotFoundError, ValueError: a bad source file (unless ``skip_bad``), named in the message.
    """
    in_channels = resolve_in_channels(cfg, uniform_channels(cfg, pairs))
    if not cfg.use_cache:
        return _build(cfg, pairs, in_channels, None, progress)
    key = cache_key(cfg, split, pairs, in_channels)
    final = cfg.cache_root / "arrays" / f"{cfg.format}-{split}-{key}"
    # arrays/ and the entry are hlfnet's: a link there is refused, never written through nor deleted through
    check_target(final / "meta.json", cfg.cache_root)
    if (final / "meta.json").is_file():
        logger.debug("cache hit %s", final)
        try:
            return _open(final)
        except (OSError, ValueError, KeyError, TypeError, EOFError) as error:
            # a cache entry is hlfnet's own, rebuilt from the sources: a damaged one is replaced, not fatal
            logger.warning(
                "%s: damaged cache entry (%s: %s); rebuilding it", final, type(error).__name__, error
            )
            shutil.rmtree(final, ignore_errors=True)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=temporary_prefix(final.name), suffix=".tmp", dir=final.parent))
    try:
        start = time.perf_counter()
        store = _build(cfg, pairs, in_channels, tmp, progress)
        meta = {
            "version": CACHE_VERSION,
            "key": key,
            "config": cfg.to_dict(),
            "split": split,
            "in_channels": in_channels,
            "records": store.records,
            "skipped": store.skipped,
        }
        (tmp / "meta.json").write_text(json.dumps(meta))
        del store
        try:
            os.rename(tmp, final)
            logger.info(
                "cached %s split (%d pairs) in %.1f s at %s",
                split,
                len(pairs),
                time.perf_counter() - start,
                final,
            )
        except OSError:
            logger.info("another run finished cache entry %s first; using it", final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return _open(final)


def _open(folder: Path) -> ArrayStore:
    meta = json.loads((folder / "meta.json").read_text())
    images = np.load(folder / "images.npy", mmap_mode="r", allow_pickle=False)
    masks = np.load(folder / "masks.npy", mmap_mode="r", allow_pickle=False)
    if images.shape[0] != masks.shape[0] or images.shape[0] < len(meta["records"]):
        raise ValueError(
            f"{len(meta['records'])} records but arrays of {images.shape[0]} and {masks.shape[0]}"
        )
    return ArrayStore(images, masks, meta["records"], meta.get("skipped", []), folder)
