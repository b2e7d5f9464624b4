"""``hlfnet score``: a folder of predicted masks against a folder of ground truths (``nnUNetv2_evaluate_folder``).

Cases are paired by name: a prediction ``<id>.png`` (what ``hlfnet predict`` writes) or ``<id>.nii[.gz]``
matches a ground truth with the same name, or with the suffix ``_segmentation`` (the ISIC layout, any case) or
``_mask``; a prediction's nnU-Net channel tag ``_0000`` is dropped (``hlfnet predict`` on ``imagesTs/``); or the suffix given as ``gt_suffix`` (``_lesion`` for ``IMD002_lesion.bmp``). Each pair is scored
exactly as the ISIC challenge scorer does (:func:`hlfnet.evaluation.score_labels`: per image, at the masks'
own size; volumes as one 3-D case), with per-class Dice/Jaccard for multi-class and the boundary metrics HD95,
ASSD and NSD (MONAI's; in mm from a NIfTI header, else in pixels unless ``spacing`` is given); the per-case
scores are averaged (a boundary metric is left out of the mean for a case without the structure in either
mask). Thresholded Jaccard (ISIC 2018's) is reported only when every case id is an ISIC id.

A ground truth without a prediction is an error (a missing case would flatter the mean); predictions without a
ground truth are ignored with a warning.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["ScoreResult", "pair_folders", "score_folders"]

logger = logging.getLogger(__name__)

#: Read with the mask rule (:func:`hlfnet.data.read_mask`); a JPEG mask whose compression added stray values is
#: refused naming the file and the values, never dropped.
_MASK_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif", ".npy")
# nnU-Net's first channel file (``case_0000.png``, what `hlfnet predict imagesTs/` names its output) is case ``case``
_PREDICTION_TAG = re.compile(r"(_segmentation|_mask|_0000)$", re.IGNORECASE)
_FOV_TAG = re.compile(r"(_fov|_mask)$", re.IGNORECASE)
_ISIC_ID = re.compile(r"^ISIC_\d+$")
_TRUTH_TAG = re.compile(r"(_segmentation|_mask)$", re.IGNORECASE)


@dataclass
class ScoreResult:
    """Per-case scores and their means."""

    cases: list[dict[str, Any]]
    summary: dict[str, Any]
    output: Path | None = None
    ignored: list[str] = field(default_factory=list)


def _case_key(path: Path, tag: re.Pattern[str] = _TRUTH_TAG) -> str | None:
    from hlfnet.data.io import is_nifti, nifti_stem

    if is_nifti(path):
        stem = nifti_stem(path)
    elif path.suffix.lower() in _MASK_SUFFIXES:
        stem = path.stem
    else:
        return None
    return tag.sub("", stem)


def _files(folder: Path, role: str, tag: re.Pattern[str] = _TRUTH_TAG) -> dict[str, Path]:
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such {role} folder")
    from hlfnet.data.io import check_regular_file

    found: dict[str, Path] = {}
    unknown: list[str] = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or (path.is_dir() and not path.is_symlink()):
            continue
        key = _case_key(path, tag)
        if key is None:
            unknown.append(path.name)
            continue
        check_regular_file(path, "a mask")  # a FIFO or broken link named like a mask is named, not skipped
        if key in found:
            raise ValueError(
                f"{folder}: two {role} files for case {key!r}: {found[key].name} and {path.name}"
            )
        found[key] = path
    if unknown:
        logger.warning(
            "%s: %d file(s) that are not masks ignored in this %s folder, e.g. %s",
            folder,
            len(unknown),
            role,
            unknown[:3],
        )
    if not found:
        raise ValueError(
            f"{folder}: no mask files (PNG, JPEG, BMP, TIFF, GIF, .npy, .nii, .nii.gz) in this {role} folder"
        )
    return found


def truth_tag(gt_suffix: str | None) -> re.Pattern[str]:
    """The ground-truth name ending stripped to get the case id: ``_segmentation``/``_mask``, or ``gt_suffix``."""
    if gt_suffix is None:
        return _TRUTH_TAG
    return re.compile(f"{re.escape(gt_suffix)}$", re.IGNORECASE)


def pair_folders(
    pred: str | os.PathLike[str], truth: str | os.PathLike[str], gt_suffix: str | None = None
) -> tuple[list[tuple[str, Path, Path]], list[str]]:
    """``[(case id, prediction, ground truth)]`` sorted by id, and the prediction ids without a ground truth.

    ``gt_suffix`` replaces the default ground-truth endings (``_segmentation``, ``_mask``).

    Raises:
        FileNotFoundError: a missing folder. ValueError: no masks, duplicate cases, or ground truths without
            a prediction (lists them).
    """
    predictions = _files(Path(pred), "prediction", _PREDICTION_TAG)
    truths = _files(Path(truth), "ground-truth", truth_tag(gt_suffix))
    missing = sorted(set(truths) - set(predictions))
    if missing:
        raise ValueError(
            f"{pred}: no prediction for {len(missing)} ground-truth case(s) of {truth}, e.g. {missing[:3]}"
        )
    ignored = sorted(set(predictions) - set(truths))
    return [(key, predictions[key], truths[key]) for key in sorted(truths)], ignored


def _read_pair(
    prediction: Path, truth: Path, num_classes: int, label_values: tuple[int, ...] | None
) -> tuple[np.ndarray, np.ndarray, tuple[float, ...] | None]:
    """Prediction and truth as class indices, and the voxel size (mm) of NIfTI volumes (``None`` for 2-D)."""
    from hlfnet.data.io import is_nifti, read_mask

    if is_nifti(prediction) != is_nifti(truth):
        raise ValueError(f"{prediction} and {truth}: one is a NIfTI volume, the other a 2-D mask")
    spacing = None
    if not is_nifti(prediction):
        pred = read_mask(prediction, num_classes, label_values=label_values)
        gt = read_mask(truth, num_classes, label_values=label_values)
    else:
        from hlfnet.data import load_volume
        from hlfnet.data.io import load_label_volume

        volume, meta = load_volume(prediction)
        pred = load_label_volume(prediction, meta, volume.shape, num_classes, label_values)
        # same shape and affine, or an error
        gt = load_label_volume(truth, meta, volume.shape, num_classes, label_values)
        spacing = tuple(float(z) for z in np.sqrt((meta.affine[:3, :3] ** 2).sum(axis=0)))
    if pred.shape != gt.shape:
        raise ValueError(f"{prediction}: shape {pred.shape} differs from its ground truth {truth} {gt.shape}")
    return pred, gt, spacing


def _read_fov(fovs: dict[str, Path], folder: Path, key: str, shape: tuple[int, ...]) -> np.ndarray:
    from hlfnet.data.io import raw_mask

    if key not in fovs:
        raise FileNotFoundError(
            f"{folder}: no field-of-view mask for case {key!r} (<case>, <case>_fov or <case>_mask)"
        )
    fov = raw_mask(fovs[key])
    if fov.shape != shape:
        raise ValueError(f"{fovs[key]}: field-of-view mask shape {fov.shape} differs from the case's {shape}")
    return fov


def score_folders(
    pred: str | os.PathLike[str],
    truth: str | os.PathLike[str],
    num_classes: int = 2,
    output: str | os.PathLike[str] | None = None,
    gt_suffix: str | None = None,
    label_values: tuple[int, ...] | None = None,
    surface: bool = True,
    spacing: tuple[float, ...] | None = None,
    tolerance: float = 1.0,
    fov: str | os.PathLike[str] | None = None,
) -> ScoreResult:
    """Score every prediction in ``pred`` against its ground truth in ``truth``.

    Args:
        pred: folder of predicted masks (0/255 or 0/1 PNG, class indices for ``num_classes > 2``, NIfTI).
        truth: folder of ground truths (``<id>.png``, ``<id>_segmentation.png``, ``<id>.nii.gz``...).
        num_classes: classes including background (binary: 2).
        output: folder to write ``per_case.csv``, ``summary.json`` and ``summary.md`` into (hlfnet's output
            policy: only its own earlier files are replaced).
        gt_suffix: ground-truth name ending after the case id (``_lesion``); default ``_segmentation``/``_mask``.
        label_values: stored value of each class in both folders (``(0, 128, 255)``); sets ``num_classes``.
        surface: also compute HD95, ASSD and NSD.
        spacing: pixel size per axis for 2-D masks (default 1: pixels); volumes use their header.
        tolerance: NSD tolerance in mm (volumes) or in the units of ``spacing``.
        fov: folder of field-of-view masks (``<case>``, ``<case>_fov`` or ``<case>_mask``; non-zero = scored).

    Returns:
        The :class:`ScoreResult`.
    """
    from hlfnet.data.io import is_nifti
    from hlfnet.evaluation.evaluate import case_means, score_labels

    if label_values is not None:
        label_values = tuple(int(v) for v in label_values)
        if len(label_values) < 2 or len(set(label_values)) != len(label_values):
            raise ValueError(f"label_values must list at least 2 distinct values, got {list(label_values)}")
        num_classes = len(label_values)
    pairs, ignored = pair_folders(pred, truth, gt_suffix)
    if ignored:
        logger.warning(
            "%s: %d prediction(s) without a ground truth ignored, e.g. %s", pred, len(ignored), ignored[:3]
        )
    fovs = _files(Path(fov), "field-of-view", _FOV_TAG) if fov is not None else {}
    cases = []
    for key, prediction, gt_path in pairs:
        p, t, volume_spacing = _read_pair(prediction, gt_path, num_classes, label_values)
        mask = _read_fov(fovs, Path(fov), key, p.shape) if fov is not None else None
        scores = score_labels(
            p,
            t,
            num_classes,
            surface=surface,
            spacing=volume_spacing or spacing,
            tolerance=tolerance,
            fov=mask,
        )
        cases.append({"id": key, **scores})
    if not all(_ISIC_ID.match(c["id"]) for c in cases):
        for case in cases:
            case.pop("thresholded_jaccard", None)
    means = case_means(cases)
    units = "mm" if spacing or any(is_nifti(prediction) for _, prediction, _ in pairs) else "pixels"
    summary = {
        "predictions": str(pred),
        "ground_truth": str(truth),
        "cases": len(cases),
        "num_classes": num_classes,
        "mean": means,
        "label_values": list(label_values) if label_values is not None else None,
        "surface_units": units if surface else None,
        "nsd_tolerance": tolerance if surface else None,
        "field_of_view": str(fov) if fov is not None else None,
        "ignored_predictions": ignored,
    }
    result = ScoreResult(cases=cases, summary=summary, ignored=ignored)
    if output is not None:
        result.output = _write(Path(output), cases, summary)
    return result


def summary_table(summary: dict[str, Any]) -> str:
    """The means as a one-row markdown table, and a per-class table for multi-class."""
    from hlfnet.evaluation.evaluate import class_table, metric_columns

    means = summary["mean"]
    main, per_class = metric_columns(means)
    labels = {"hd95": "HD95", "assd": "ASSD", "nsd": "NSD"}
    header = "| cases | " + " | ".join(labels.get(m, m.replace("_", " ")) for m in main) + " |"
    row = (
        f"| {summary['cases']} | "
        + " | ".join("n/a" if means[m] != means[m] else f"{means[m]:.4f}" for m in main)
        + " |"
    )
    text = "\n".join([header, "|---:|" + "---:|" * len(main), row]) + "\n"
    if per_class:
        text += "\n" + class_table(means) + "\n"
    if summary.get("surface_units"):
        text += (
            f"\nHD95/ASSD in {summary['surface_units']}, NSD at tolerance {summary['nsd_tolerance']}; n/a = no "
            "case with the structure in prediction or truth.\n"
        )
    return text


def _write(folder: Path, cases: list[dict[str, Any]], summary: dict[str, Any]) -> Path:
    from hlfnet.atomic import atomic_write_bytes, owned_outputs

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(cases[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(cases)
    files = {
        "per_case.csv": buffer.getvalue(),
        "summary.json": json.dumps(summary, indent=2),
        "summary.md": summary_table(summary),
    }
    # its own earlier scores only, never another file nor another command's (an evaluation's summary.json)
    with owned_outputs(folder, list(files), "score", overwrite=True):
        for name, text in files.items():
            atomic_write_bytes(folder / name, text.encode(), root=folder)
    return folder
