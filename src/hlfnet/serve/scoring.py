"""Scores of ``hlfnet serve``: a predicted mask against a ground truth, as ``hlfnet score`` computes them.

Both masks are read in the served model's encoding (binary: {0, 1} or {0, 255}; multi-class: class indices, or
the run's ``data.label_values``) and scored by :func:`hlfnet.evaluation.score_labels`: the ISIC metrics (for
multi-class the mean over the foreground classes), per-class Dice and IoU (Jaccard), and HD95, ASSD and NSD
(MONAI's; pixels for 2-D masks, mm from the NIfTI header for volumes; NSD tolerance 1 in those units).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from hlfnet.serve.uploads import ApiError, Upload, check_image

__all__ = ["ClassInfo", "NSD_TOLERANCE", "ScoringRule", "score_uploads", "truth_pictures"]

#: NSD tolerance of the served scores, in the masks' units (pixels for 2-D, mm for volumes).
NSD_TOLERANCE = 1.0
#: Per-class keys of :func:`hlfnet.evaluation.score_labels`, in the order the page shows them.
CLASS_METRICS = ("dice", "jaccard", "hd95", "assd", "nsd")


@dataclass(frozen=True)
class ClassInfo:
    """One class of the served model: its index, the value its masks store, its name, the colour of its
    predicted area and of its ground-truth outline (``hlfnet.evaluation.palette``; background ``"none"``)."""

    index: int
    value: int
    name: str
    colour: str
    outline: str


@dataclass(frozen=True)
class ScoringRule:
    """How masks are read and scored for the served model.

    Attributes:
        num_classes: classes including background (binary: 2).
        label_values: the value stored for each class (``None``: class indices; binary 0/255 also read).
        classes: :class:`ClassInfo` of every class, background first.
    """

    num_classes: int
    label_values: tuple[int, ...] | None
    classes: tuple[ClassInfo, ...]


def _finite(value: float) -> float | None:
    """JSON has no NaN: a boundary metric of a class absent from both masks is ``null``."""
    return None if math.isnan(value) else float(value)


def read_labels(upload: Upload, what: str, rule: ScoringRule) -> np.ndarray:
    """Class indices of a 2-D mask or a NIfTI label volume, in the served model's encoding.

    Raises:
        ApiError: 400 ``unreadable_mask`` naming the upload (never the server's path).
    """
    from hlfnet.data import read_mask
    from hlfnet.data.io import labels_to_classes, read_label_data

    try:
        if upload.kind == "image":
            return read_mask(upload.path, rule.num_classes, label_values=rule.label_values)
        data = read_label_data(upload.path)
        if rule.num_classes == 2 and rule.label_values is None:  # any non-zero label is the foreground
            return (
                labels_to_classes(data, int(data.max()) + 1 if data.size else 2, None, upload.name) > 0
            ).astype(np.uint8)
        return labels_to_classes(data, rule.num_classes, None, upload.name, rule.label_values)
    except (ValueError, OSError, EOFError) as error:
        text = str(error).replace(str(upload.path), upload.name).splitlines()[0][:300]
        raise ApiError(400, "unreadable_mask", f"{what}: {text}") from None


def _spacing(upload: Upload) -> tuple[float, ...] | None:
    """The voxel size (mm) of a NIfTI upload in its stored axis order; ``None`` (pixels) for images."""
    if upload.kind != "volume":
        return None
    import nibabel as nib

    return tuple(float(z) for z in nib.load(str(upload.path)).header.get_zooms()[:3])


def score_arrays(
    pred: np.ndarray, truth: np.ndarray, rule: ScoringRule, spacing: tuple[float, ...] | None, surface: bool
) -> dict[str, Any]:
    """The answer of a score: ``scores`` (means, as ``score_labels``), ``per_class`` and the units."""
    from hlfnet.evaluation import score_labels

    if pred.shape != truth.shape:
        raise ApiError(
            400,
            "shape_mismatch",
            f"prediction shape {list(pred.shape)} differs from ground truth shape {list(truth.shape)}",
        )
    scores = score_labels(
        pred, truth, rule.num_classes, surface=surface, spacing=spacing, tolerance=NSD_TOLERANCE
    )
    per_class = []
    for info in rule.classes[1:]:
        row: dict[str, Any] = {"class": info.index, "value": info.value, "name": info.name}
        for metric in CLASS_METRICS:
            key = metric if rule.num_classes == 2 else f"{metric}_class{info.index}"
            if key in scores:
                row[metric] = _finite(scores[key])
        per_class.append(row)
    return {
        "scores": {k: _finite(v) for k, v in scores.items()},
        "per_class": per_class,
        "surface_units": ("mm" if spacing else "pixels") if surface else None,
        "nsd_tolerance": NSD_TOLERANCE if surface else None,
    }


def score_uploads(
    prediction: Upload, truth: Upload, max_pixels: int, rule: ScoringRule, surface: bool = True
) -> tuple[dict[str, Any], np.ndarray]:
    """Score two uploads; also returns the ground truth's class indices (for :func:`truth_pictures`).

    Raises:
        ApiError: 400 for a kind mismatch, an unreadable mask or different shapes; 413 above the pixel limit.
    """
    if prediction.kind != truth.kind:
        raise ApiError(400, "mismatch", "prediction and ground truth must both be images or both be volumes")
    if truth.kind == "image":
        check_image(truth, max_pixels)
        check_image(prediction, max_pixels)
    pred = read_labels(prediction, "prediction", rule)
    gt = read_labels(truth, "ground truth", rule)
    return score_arrays(pred, gt, rule, _spacing(truth), surface), gt


def truth_pictures(truth: Upload, labels: np.ndarray) -> dict[str, Any]:
    """The ground truth as class-index PNGs for the page's outlines: ``ground_truth_png`` for an image,
    ``ground_truth_slices`` (the axial slices, as the page shows the volume) for a volume."""
    from hlfnet.serve.encoding import b64, png_bytes

    if truth.kind == "image":
        return {"ground_truth_png": b64(png_bytes(labels.astype(np.uint8)))}
    import nibabel as nib

    from hlfnet.data.preprocess import reorient_to_slices

    slices = reorient_to_slices(labels, nib.load(str(truth.path)).affine)
    return {
        "ground_truth_slices": [
            b64(png_bytes(np.ascontiguousarray(slices[..., k]).astype(np.uint8)))
            for k in range(slices.shape[-1])
        ]
    }
