"""Writers: predictions as files — 8-bit PNG masks and probability maps, NIfTI label and probability volumes.

Every file is written atomically, never through a symlink and, given the output folder ``root``, never outside
it (:mod:`hlfnet.atomic`). Masks are never lossy: binary masks are written 0/255, multi-class masks as the class
indices — or, given the data's ``label_values``, in the user's own encoding (class ``k`` → ``label_values[k]``;
16-bit PNG when a value exceeds 255). Probability maps go to the ``probabilities/`` sub-folder of an output folder (:data:`PROBABILITY_DIR`):
``<stem>.png`` for a binary model, ``<stem>_class<k>.png`` for every foreground class ``k`` otherwise, and
``<stem>.nii.gz`` (the foreground probability) for a volume.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

__all__ = [
    "PROBABILITY_DIR",
    "probability_names",
    "encode_labels",
    "write_mask_png",
    "write_probability_maps",
    "write_probability_png",
    "write_volume_prediction",
]

#: The sub-folder of an output folder that holds probability maps.
PROBABILITY_DIR = "probabilities"


def write_mask_png(
    mask: np.ndarray,
    path: str | os.PathLike[str],
    num_classes: int = 2,
    root: str | os.PathLike[str] | None = None,
    label_values: tuple[int, ...] | None = None,
) -> Path:
    """Write labels as an 8-bit grey PNG: binary as 0/255, multi-class as the class indices, or with
    ``label_values`` as those values (class ``k`` → ``label_values[k]``; 16-bit when one exceeds 255).

    The file is written atomically and never through a symlink (:mod:`hlfnet.atomic`); with ``root`` it must
    lie inside that folder.

    Raises:
        ValueError: ``path`` does not end in ``.png`` (masks are never written lossy).
        OutputRefused: ``path`` is a symlink or lies outside ``root``.
    """
    from PIL import Image

    from hlfnet.atomic import atomic_path

    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"{path}: masks are written as PNG only (lossless), not {path.suffix!r}")
    if label_values is not None:
        data = encode_labels(mask, label_values)
    else:
        data = (mask > 0).astype(np.uint8) * 255 if num_classes == 2 else mask.astype(np.uint8)
    with atomic_path(path, root) as tmp:
        image = Image.fromarray(data) if data.dtype == np.uint16 else Image.fromarray(data, mode="L")
        image.save(tmp, format="PNG", optimize=False, compress_level=1)
    return path


def encode_labels(labels: np.ndarray, label_values: tuple[int, ...]) -> np.ndarray:
    """Class indices → the stored values ``label_values[k]`` (``uint8``, or ``uint16`` above 255)."""
    if max(label_values) > 65535:
        raise ValueError(f"label values above 65535 cannot be written as PNG: {list(label_values)}")
    table = np.asarray(label_values, dtype=np.uint8 if max(label_values) <= 255 else np.uint16)
    return table[np.asarray(labels, dtype=np.intp)]


def write_probability_png(
    probability: np.ndarray, path: str | os.PathLike[str], root: str | os.PathLike[str] | None = None
) -> Path:
    """Write a probability map ``(H, W)`` in [0, 1] as an 8-bit PNG (``round(255 p)``), atomically."""
    from PIL import Image

    from hlfnet.atomic import atomic_path

    path = Path(path)
    with atomic_path(path, root) as tmp:
        Image.fromarray(np.rint(np.clip(probability, 0, 1) * 255).astype(np.uint8), mode="L").save(
            tmp, format="PNG", compress_level=1
        )
    return path


def probability_names(stem: str, kind: str, out_channels: int) -> list[str]:
    """The probability files of one input (``kind`` ``"image"`` or ``"volume"``), inside :data:`PROBABILITY_DIR`."""
    if kind == "volume":
        return [f"{stem}.nii.gz"]
    if out_channels == 1:
        return [f"{stem}.png"]
    return [f"{stem}_class{k}.png" for k in range(1, out_channels)]


def write_probability_maps(
    probabilities: np.ndarray, folder: Path, stem: str, root: str | os.PathLike[str] | None = None
) -> None:
    """Write an image's probabilities ``(K, H, W)`` into ``folder`` as named by :func:`probability_names`."""
    if probabilities.shape[0] == 1:
        write_probability_png(probabilities[0], folder / f"{stem}.png", root)
    else:
        for k in range(1, probabilities.shape[0]):
            write_probability_png(probabilities[k], folder / f"{stem}_class{k}.png", root)


def write_volume_prediction(
    labels: np.ndarray,
    probabilities: np.ndarray,
    reference: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    probabilities_path: str | os.PathLike[str] | None = None,
    root: str | os.PathLike[str] | None = None,
    label_values: tuple[int, ...] | None = None,
) -> Path:
    """Write a volume's labels as a NIfTI with the geometry (affine and header) of the input volume.

    Args:
        labels: ``uint8`` ``(N, rows, cols)`` in the axial slice layout of ``hlfnet.data``.
        probabilities: ``float32`` ``(N, K, rows, cols)``.
        reference: the input NIfTI whose geometry the outputs take.
        out_path: output NIfTI (``uint8`` labels).
        probabilities_path: also write the foreground probability (``uint8``, ``round(255 p)``; multi-class:
            1 - p(background)) there, with the same geometry.
        root: the output folder both files must stay inside.
        label_values: write class ``k`` as ``label_values[k]`` (values up to 255).

    Returns:
        ``out_path``.
    """
    from hlfnet.data.preprocess import slices_to_volume

    if probabilities_path is not None:
        foreground = probabilities[:, 0] if probabilities.shape[1] == 1 else 1.0 - probabilities[:, 0]
        slices_to_volume(np.rint(foreground * 255).astype(np.uint8), reference, probabilities_path, root=root)
    if label_values is not None:
        if max(label_values) > 255:
            raise ValueError(
                f"label values {list(label_values)} exceed 255: NIfTI predictions are written as uint8; predict "
                "class indices instead (--class-indices)"
            )
        labels = encode_labels(labels, label_values)
    return slices_to_volume(labels, reference, out_path, root=root)
