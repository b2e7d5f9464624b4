"""A built-in **synthetic** skin-lesion data set: procedural, needs no download, for demos and fast tests.

Each image is a dermoscopy-like scene drawn from a seed: a skin-coloured background with low- and
mid-frequency texture, pixel noise and a dark vignette, a few hair-like strokes, and one lesion — a blob whose
radius varies smoothly with angle, darker and mottled, with a soft border. The mask is the lesion (for
``num_classes`` K > 2, classes 2..K-1 are nested darker cores). The images are **not** medical data; they only
make the pipeline and a short training run meaningful (the lesion is clearly separable, so Dice rises fast).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

__all__ = ["SPLIT_CODES", "synthetic_ids", "generate_synthetic", "write_synthetic_folder"]

logger = logging.getLogger(__name__)

SPLIT_CODES = {"train": 0, "val": 1, "test": 2}


def synthetic_ids(split: str, count: int) -> list[str]:
    """Ids of the synthetic images of a split: ``synthetic_<split>_<index:05d>``."""
    return [f"synthetic_{split}_{i:05d}" for i in range(count)]


def _upsample(field: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    # Pillow, single-threaded: torch's small interpolations stall on busy machines.
    from PIL import Image

    plane = Image.fromarray(field[0].astype(np.float32), "F").resize((size[1], size[0]), Image.BICUBIC)
    return np.asarray(plane)[None]


def _one(rng: np.random.Generator, size: tuple[int, int], num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    height, width = size
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    # Background: skin tone × (coarse + medium texture) × vignette + pixel noise.
    skin = np.array([rng.uniform(190, 235), rng.uniform(140, 185), rng.uniform(115, 160)], np.float32)
    texture = 1.0 + 0.06 * _upsample(rng.standard_normal((1, 4, 5)), size)[0]
    texture += 0.03 * _upsample(rng.standard_normal((1, 24, 32)), size)[0]
    ry, rx = (yy - height / 2) / (height / 2), (xx - width / 2) / (width / 2)
    vignette = 1.0 - rng.uniform(0.1, 0.35) * np.clip(rx**2 + ry**2 - 0.6, 0, None)
    image = skin[:, None, None] * (texture * vignette)[None]
    # Lesion: radius r(θ) = r0 (1 + Σ a_k cos(kθ + φ_k)), soft border.
    r0 = rng.uniform(0.18, 0.36) * min(height, width)
    cy = height / 2 + rng.uniform(-0.18, 0.18) * height
    cx = width / 2 + rng.uniform(-0.18, 0.18) * width
    theta = np.arctan2(yy - cy, xx - cx)
    radius = np.full_like(theta, r0)
    for k in range(2, 6):
        radius += r0 * rng.uniform(0, 0.12 / (k - 1)) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    rel = np.hypot(yy - cy, xx - cx) / radius  # < 1 inside the lesion
    alpha = 1.0 / (1.0 + np.exp(np.clip((rel - 1.0) * rng.uniform(12, 30), -30, 30)))
    darkness = rng.uniform(0.35, 0.65)
    lesion_tone = (
        skin * darkness * np.array([1.0, rng.uniform(0.75, 0.95), rng.uniform(0.7, 0.95)], np.float32)
    )
    mottle = 1.0 + 0.12 * _upsample(rng.standard_normal((1, 12, 16)), size)[0]
    lesion = lesion_tone[:, None, None] * mottle[None]
    mask = (rel < 1.0).astype(np.uint8)
    for k in range(2, num_classes):
        core = rel < 1.0 - 0.6 * (k - 1) / (num_classes - 1)
        lesion = np.where(core[None], lesion * 0.7, lesion)
        mask[core] = k
    image = image * (1 - alpha[None]) + lesion * alpha[None]
    # Hair: 0-3 dark, thin, slightly curved strokes.
    for _ in range(rng.integers(0, 4)):
        a, b = rng.uniform(0, 2 * np.pi), rng.uniform(-0.002, 0.002)
        py, px = rng.uniform(0, height), rng.uniform(0, width)
        dist = np.abs(
            (yy - py) * np.cos(a) - (xx - px) * np.sin(a) + b * ((xx - px) ** 2 + (yy - py) ** 2) / 2
        )
        image = image * (1 - 0.6 * np.clip(1.2 - dist, 0, 1))[None]
    image += rng.normal(0, 3.0, image.shape).astype(np.float32)
    rgb = np.clip(np.round(image), 0, 255).astype(np.uint8).transpose(1, 2, 0)
    return rgb, mask


def generate_synthetic(
    split: str, count: int, size: tuple[int, int], seed: int = 0, num_classes: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``count`` synthetic images and masks; image ``i`` of a split depends only on ``(seed, split, i)``.

    Args:
        split: ``"train"``, ``"val"`` or ``"test"``.
        count: Number of images.
        size: ``(H, W)``.
        seed: Seed.
        num_classes: 2 = lesion/background; K > 2 adds nested cores as classes 2..K-1.

    Returns:
        ``(images, masks)``: ``uint8`` ``(N, H, W, 3)`` RGB and ``uint8`` ``(N, H, W)`` class indices.

    Raises:
        ValueError: unknown split.
    """
    if split not in SPLIT_CODES:
        raise ValueError(f"split must be one of {tuple(SPLIT_CODES)}, got {split!r}")
    images = np.empty((count, *size, 3), np.uint8)
    masks = np.empty((count, *size), np.uint8)
    for i in range(count):
        rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, SPLIT_CODES[split], i])
        images[i], masks[i] = _one(rng, tuple(size), num_classes)
    logger.debug("generated %d synthetic %s images of size %s", count, split, size)
    return images, masks


def write_synthetic_folder(
    out: str | os.PathLike[str],
    split: str,
    count: int,
    size: tuple[int, int],
    seed: int = 0,
    num_classes: int = 2,
    replace_unmarked: bool = False,
) -> Path:
    """Write a split of the synthetic data as a bring-your-own folder: ``images/<id>.png``, ``masks/<id>.png``.

    Ids are :func:`synthetic_ids`, so a run's ``split.json`` finds its cases in the folder (``format: folder``).
    Binary masks are written 0/255, multi-class masks as class indices.

    ``out`` must be new, empty, or hold only an earlier synthetic export (listed in its
    ``.hlfnet-output.json``; ``replace_unmarked`` also accepts these file names without a marker).

    Returns:
        ``out``.

    Raises:
        OutputRefused: ``out`` holds other files (a real data set), or a target is a symlink.
    """
    from PIL import Image

    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    from hlfnet.atomic import MARKER, atomic_path, check_target, is_temporary, owned_entries, record_outputs
    from hlfnet.errors import OutputRefused

    out = Path(out)
    ids = synthetic_ids(split, count)
    names = [f"{sub}/{case_id}.png" for case_id in ids for sub in ("images", "masks")]
    # Never into a real data set: the folder may hold only what an earlier synthetic export wrote.
    if out.is_dir():
        owned = owned_entries(out, legacy=names if replace_unmarked else ())
        for entry in sorted(out.rglob("*")):
            relative = entry.relative_to(out).as_posix()
            if entry.is_dir() and not entry.is_symlink() and relative in ("images", "masks"):
                continue
            if relative != MARKER and not is_temporary(entry.name) and relative not in owned:
                raise OutputRefused(
                    f"{entry}: {out} holds files hlfnet did not write (a real data set?); synthetic data is "
                    "written only into a new or empty folder (choose another --out)"
                )
    for name in names:
        check_target(out / name, out)
    images, masks = generate_synthetic(split, count, tuple(size), seed, num_classes)
    scale = 255 if num_classes == 2 else 1
    record_outputs(out, names, "synthetic")
    for case_id, image, mask in zip(ids, images, masks, strict=True):
        for sub, array in (("images", image), ("masks", (mask * scale).astype(np.uint8))):
            with atomic_path(out / sub / f"{case_id}.png", out) as tmp:
                Image.fromarray(array).save(tmp, format="PNG")
    return out
