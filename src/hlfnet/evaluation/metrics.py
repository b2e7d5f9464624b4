"""Segmentation metrics computed exactly as the ISIC challenge scorer computes them.

The conventions are those of ``isic-challenge-scoring`` 5.6.0 (``isic_challenge_scoring.metrics``), checked in
``tests/evaluation/test_metrics.py`` against the package itself on synthetic masks (and real ISIC 2017 masks when present):

* ``accuracy = (TP + TN) / (TP + TN + FP + FN)``;
* ``sensitivity = TP / (TP + FN)``, **1** when the mask is empty (``TP + FN == 0``);
* ``specificity = TN / (TN + FP)``, **1** when the mask covers the whole image (``TN + FP == 0``);
* ``jaccard = TP / (TP + FP + FN)`` and ``dice = 2TP / (2TP + FP + FN)``, both **1** when prediction and mask
  are both empty (``TP + FP + FN == 0``);
* ``thresholded_jaccard`` (ISIC 2018's ranking metric): the Jaccard index, or 0 where it is below 0.65.

Every score is per image (the first dimension is the batch) over any number of spatial dimensions, so a
``(B, H, W)`` batch of slices and a ``(1, D, H, W)`` volume (3D Dice per patient) go through the same code.
The challenge then averages per-image scores over images (a macro average), which is what
:func:`mean_scores` does.

Boundary metrics (:func:`surface_scores`) are MONAI's, per foreground class, in the units of ``spacing``
(mm for volumes with a header, pixels otherwise):

* ``hd95`` — :func:`monai.metrics.compute_hausdorff_distance` with ``percentile=95`` (symmetric);
* ``assd`` — :func:`monai.metrics.compute_average_surface_distance` with ``symmetric=True``;
* ``nsd`` — :func:`monai.metrics.compute_surface_dice` (normalised surface Dice) at ``tolerance``.

Empty masks, stated because MONAI leaves them to the caller (it gives NaN or inf and a warning): a class
absent from both prediction and truth scores **NaN** in all three (nothing to measure; left out of means, as
MONAI's ``do_metric_reduction`` does); a class present in only one of them scores NSD **0** (MONAI's rule)
and HD95 = ASSD = **the diagonal of the image** in the same units (the largest possible distance, so that a
missed or hallucinated structure is penalised as far as possible while means stay finite).
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor

__all__ = [
    "BINARY_METRICS",
    "JACCARD_THRESHOLD",
    "binary_confusion",
    "binary_scores",
    "scores_from_confusion",
    "multiclass_scores",
    "foreground_mean",
    "scores_from_logits",
    "mean_scores",
    "SURFACE_METRICS",
    "surface_scores",
]

BINARY_METRICS: tuple[str, ...] = (
    "dice",
    "jaccard",
    "accuracy",
    "sensitivity",
    "specificity",
    "thresholded_jaccard",
)
"""Keys of :func:`binary_scores`, in the order tables show them."""

JACCARD_THRESHOLD = 0.65
"""ISIC 2018: a per-image Jaccard below this scores 0."""


def _as_bool(x: Tensor, name: str) -> Tensor:
    if x.dtype == torch.bool:
        return x
    bad = (x != 0) & (x != 1)
    if bool(bad.any()):
        values = torch.unique(x[bad])[:5].tolist()
        raise ValueError(
            f"{name} must be boolean or hold only 0 and 1 (threshold probabilities, divide 0/255 masks by 255); "
            f"found values such as {values}"
        )
    return x != 0


def binary_confusion(pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Per-image confusion counts of a binary segmentation.

    Args:
        pred: predicted foreground ``(B, *S)``, boolean or 0/1 of any dtype.
        target: ground-truth foreground, same shape and encoding.

    Returns:
        ``(tp, fp, fn, tn)``, each an int64 tensor ``(B,)``.

    Raises:
        ValueError: shapes differ, there is no batch dimension, or a value is not 0/1.
    """
    if pred.shape != target.shape:
        raise ValueError(
            f"pred and target must have the same shape, got {tuple(pred.shape)} and {tuple(target.shape)}"
        )
    if pred.ndim < 2:
        raise ValueError(
            f"expected (B, *spatial) with at least one spatial dimension, got shape {tuple(pred.shape)}"
        )
    p = _as_bool(pred, "pred").flatten(1)
    t = _as_bool(target, "target").flatten(1)
    tp = (p & t).sum(1, dtype=torch.int64)
    fp = (p & ~t).sum(1, dtype=torch.int64)
    fn = (~p & t).sum(1, dtype=torch.int64)
    tn = p.shape[1] - tp - fp - fn
    return tp, fp, fn, tn


def _ratio(numerator: Tensor, denominator: Tensor) -> Tensor:
    """``numerator / denominator``, 1 where the denominator is 0 (the scorer's "freebie")."""
    numerator = numerator.to(torch.float64)
    denominator = denominator.to(torch.float64)
    empty = denominator == 0
    return torch.where(empty, torch.ones_like(numerator), numerator / torch.where(empty, 1.0, denominator))


def scores_from_confusion(tp: Tensor, fp: Tensor, fn: Tensor, tn: Tensor) -> dict[str, Tensor]:
    """The ISIC scores from confusion counts (any matching shapes); see the module docstring for the rules.

    Returns:
        A dictionary with the keys of :data:`BINARY_METRICS`, float64 tensors of the counts' shape.
    """
    jaccard = _ratio(tp, tp + fp + fn)
    return {
        "dice": _ratio(2 * tp, 2 * tp + fp + fn),
        "jaccard": jaccard,
        "accuracy": _ratio(tp + tn, tp + tn + fp + fn),
        "sensitivity": _ratio(tp, tp + fn),
        "specificity": _ratio(tn, tn + fp),
        "thresholded_jaccard": torch.where(jaccard >= JACCARD_THRESHOLD, jaccard, torch.zeros_like(jaccard)),
    }


def binary_scores(pred: Tensor, target: Tensor) -> dict[str, Tensor]:
    """Per-image Dice, Jaccard, accuracy, sensitivity, specificity and thresholded Jaccard.

    Args:
        pred: predicted foreground ``(B, *S)``, boolean or 0/1.
        target: ground truth, same shape and encoding.

    Returns:
        ``{metric: float64 tensor (B,)}`` with the keys of :data:`BINARY_METRICS`.

    Raises:
        ValueError: as :func:`binary_confusion`.
    """
    return scores_from_confusion(*binary_confusion(pred, target))


def multiclass_scores(pred: Tensor, target: Tensor, num_classes: int) -> dict[str, Tensor]:
    """One-vs-rest ISIC scores of every class of a label map.

    Args:
        pred: predicted labels ``(B, *S)``, integers in ``[0, num_classes)``.
        target: true labels, same shape.
        num_classes: number of classes ``K`` including the background 0.

    Returns:
        ``{metric: float64 tensor (B, K)}``; column ``k`` scores "class ``k``" against "not ``k``".

    Raises:
        ValueError: shapes differ, ``num_classes < 2``, or a label is outside ``[0, num_classes)``.
    """
    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2 (background + one class), got {num_classes}")
    if pred.shape != target.shape:
        raise ValueError(
            f"pred and target must have the same shape, got {tuple(pred.shape)} and {tuple(target.shape)}"
        )
    if pred.is_floating_point() or target.is_floating_point():
        raise ValueError(f"labels must be integers, got dtypes {pred.dtype} and {target.dtype}")
    for name, labels in (("pred", pred), ("target", target)):
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
            raise ValueError(
                f"{name} labels must lie in [0, {num_classes}), found {int(labels.min())}..{int(labels.max())}"
            )
    per_class = [binary_scores(pred == k, target == k) for k in range(num_classes)]
    return {metric: torch.stack([s[metric] for s in per_class], dim=1) for metric in BINARY_METRICS}


def foreground_mean(scores: dict[str, Tensor]) -> dict[str, Tensor]:
    """Average :func:`multiclass_scores` over the foreground classes ``1 .. K-1``: ``(B, K) -> (B,)``."""
    return {metric: value[:, 1:].mean(dim=1) for metric, value in scores.items()}


def scores_from_logits(logits: Tensor, target: Tensor) -> dict[str, Tensor]:
    """Per-image scores straight from network logits, for validation during training.

    Args:
        logits: ``(B, K, *S)``; ``K == 1`` is binary (foreground where ``logit > 0``, i.e. sigmoid > 0.5),
            ``K > 1`` is multi-class (argmax; scores averaged over the foreground classes).
        target: ``(B, 1, *S)`` or ``(B, *S)`` integer labels (0/1 when ``K == 1``).

    Returns:
        ``{metric: float64 tensor (B,)}`` with the keys of :data:`BINARY_METRICS`.
    """
    if logits.ndim < 3:
        raise ValueError(f"expected logits (B, K, *S), got shape {tuple(logits.shape)}")
    if target.ndim == logits.ndim:
        if target.shape[1] != 1:
            raise ValueError(f"target must be (B, 1, *S) or (B, *S), got shape {tuple(target.shape)}")
        target = target[:, 0]
    if logits.shape[1] == 1:
        return binary_scores(logits[:, 0] > 0, target)
    return foreground_mean(multiclass_scores(logits.argmax(dim=1), target.long(), logits.shape[1]))


def mean_scores(scores: dict[str, Tensor]) -> dict[str, float]:
    """Macro average over images, as the challenge reports: ``{metric: (B,)} -> {metric: float}``."""
    return {metric: float(value.to(torch.float64).mean()) for metric, value in scores.items()}


SURFACE_METRICS: tuple[str, ...] = ("hd95", "assd", "nsd")
"""Keys of :func:`surface_scores`, in the order tables show them."""


def surface_scores(
    pred: Tensor,
    target: Tensor,
    num_classes: int,
    spacing: tuple[float, ...] | None = None,
    tolerance: float = 1.0,
) -> dict[str, Tensor]:
    """HD95, ASSD and NSD of every foreground class of one case, with MONAI (see the module docstring).

    Args:
        pred: predicted labels ``(*S)`` (2-D or 3-D), integers in ``[0, num_classes)``.
        target: true labels, same shape.
        num_classes: classes including background.
        spacing: size of a pixel/voxel per axis of ``S`` (mm); ``None`` = 1 (distances in pixels).
        tolerance: NSD tolerance, in the units of ``spacing``.

    Returns:
        ``{"hd95", "assd", "nsd"}: float64 tensor (num_classes - 1,)``, entry ``k - 1`` for class ``k``.

    Raises:
        ValueError: shapes differ, not 2-D/3-D, ``spacing`` of the wrong length, ``tolerance`` < 0.
    """
    from monai.metrics import (
        compute_average_surface_distance,
        compute_hausdorff_distance,
        compute_surface_dice,
    )

    if pred.shape != target.shape:
        raise ValueError(
            f"pred and target must have the same shape, got {tuple(pred.shape)} and {tuple(target.shape)}"
        )
    if pred.ndim not in (2, 3):
        raise ValueError(f"surface metrics need a 2-D or 3-D label map, got shape {tuple(pred.shape)}")
    spacing = tuple(float(s) for s in spacing) if spacing is not None else (1.0,) * pred.ndim
    if len(spacing) != pred.ndim or min(spacing) <= 0:
        raise ValueError(f"spacing must give {pred.ndim} positive sizes, got {list(spacing)}")
    if tolerance < 0:
        raise ValueError(f"NSD tolerance must be ≥ 0, got {tolerance}")
    diagonal = float(sum((n * s) ** 2 for n, s in zip(pred.shape, spacing, strict=True)) ** 0.5)
    out = {m: torch.full((num_classes - 1,), float("nan"), dtype=torch.float64) for m in SURFACE_METRICS}
    for k in range(1, num_classes):
        p, t = pred == k, target == k
        has_p, has_t = bool(p.any()), bool(t.any())
        if not has_p and not has_t:
            continue
        if has_p != has_t:
            out["hd95"][k - 1] = out["assd"][k - 1] = diagonal
            out["nsd"][k - 1] = 0.0
            continue
        y_pred, y = p[None, None].float(), t[None, None].float()
        with warnings.catch_warnings():
            # MONAI 1.5+ warns about its own internal use of a deprecated argument of get_mask_edges
            warnings.simplefilter("ignore", FutureWarning)
            out["hd95"][k - 1] = float(
                compute_hausdorff_distance(y_pred, y, include_background=True, percentile=95, spacing=spacing)
            )
            out["assd"][k - 1] = float(
                compute_average_surface_distance(
                    y_pred, y, include_background=True, symmetric=True, spacing=spacing
                )
            )
            out["nsd"][k - 1] = float(
                compute_surface_dice(y_pred, y, [float(tolerance)], include_background=True, spacing=spacing)
            )
    return out
