"""``hlfnet score``: a folder of predicted masks against a folder of ground truths (``nnUNetv2_evaluate_folder``).

Cases are paired by name: a prediction ``<id>.png`` (what ``hlfnet predict`` writes) or ``<id>.nii[.gz]``
matches a ground truth with the same name, or with the suffix ``_segmentation`` (the ISIC layout, any case) or
``_mask``. Each pair is scored exactly as the ISIC challenge scorer does (:func:`hlfnet.evaluation.score_labels`:
per image, at the masks' own size; volumes as one 3-D case), and the per-case scores are averaged.

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
_MASK_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".npy")
_TRUTH_TAG = re.compile(r"(_segmentation|_mask)$", re.IGNORECASE)


@dataclass
class ScoreResult:
    """Per-case scores and their means."""

    cases: list[dict[str, Any]]
    summary: dict[str, Any]
    output: Path | None = None
    ignored: list[str] = field(default_factory=list)


def _case_key(path: Path) -> str | None:
    from hlfnet.data.io import is_nifti, nifti_stem

    if is_nifti(path):
        stem = nifti_stem(path)
    elif path.suffix.lower() in _MASK_SUFFIXES:
        stem = path.stem
    else:
        return None
    return _TRUTH_TAG.sub("", stem)


def _files(folder: Path, role: str) -> dict[str, Path]:
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such {role} folder")
    from hlfnet.data.io import check_regular_file

    found: dict[str, Path] = {}
    unknown: list[str] = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or (path.is_dir() and not path.is_symlink()):
            continue
        key = _case_key(path)
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
            f"{folder}: no mask files (PNG, JPEG, BMP, TIFF, .npy, .nii, .nii.gz) in this {role} folder"
        )
    return found


def pair_folders(
    pred: str | os.PathLike[str], truth: str | os.PathLike[str]
) -> tuple[list[tuple[str, Path, Path]], list[str]]:
    """``[(case id, prediction, ground truth)]`` sorted by id, and the prediction ids without a ground truth.

    Raises:
        FileNotFoundError: a missing folder. ValueError: no masks, duplicate cases, or ground truths without
            a prediction (lists them).
    """
    predictions, truths = _files(Path(pred), "prediction"), _files(Path(truth), "ground-truth")
    missing = sorted(set(truths) - set(predictions))
    if missing:
        raise ValueError(
            f"{pred}: no prediction for {len(missing)} ground-truth case(s) of {truth}, e.g. {missing[:3]}"
        )
    ignored = sorted(set(predictions) - set(truths))
    return [(key, predictions[key], truths[key]) for key in sorted(truths)], ignored


def _read_pair(prediction: Path, truth: Path, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    from hlfnet.data.io import is_nifti, read_mask

    if is_nifti(prediction) != is_nifti(truth):
        raise ValueError(f"{prediction} and {truth}: one is a NIfTI volume, the other a 2-D mask")
    if not is_nifti(prediction):
        pred, gt = read_mask(prediction, num_classes), read_mask(truth, num_classes)
    else:
        from hlfnet.data import load_volume
        from hlfnet.data.io import load_label_volume

        volume, meta = load_volume(prediction)
        pred = load_label_volume(prediction, meta, volume.shape, num_classes)
        gt = load_label_volume(truth, meta, volume.shape, num_classes)  # same shape and affine, or an error
    if pred.shape != gt.shape:
        raise ValueError(f"{prediction}: shape {pred.shape} differs from its ground truth {truth} {gt.shape}")
    return pred, gt


def score_folders(
    pred: str | os.PathLike[str],
    truth: str | os.PathLike[str],
    num_classes: int = 2,
    output: str | os.PathLike[str] | None = None,
) -> ScoreResult:
    """Score every prediction in ``pred`` against its ground truth in ``truth``.

    Args:
        pred: folder of predicted masks (0/255 or 0/1 PNG, class indices for ``num_classes > 2``, NIfTI).
        truth: folder of ground truths (``<id>.png``, ``<id>_segmentation.png``, ``<id>.nii.gz``...).
        num_classes: classes including background (binary: 2).
        output: folder to write ``per_case.csv``, ``summary.json`` and ``summary.md`` into (hlfnet's output
            policy: only its own earlier files are replaced).

    Returns:
        The :class:`ScoreResult`.
    """
    from hlfnet.evaluation.evaluate import score_labels

    pairs, ignored = pair_folders(pred, truth)
    if ignored:
        logger.warning(
            "%s: %d prediction(s) without a ground truth ignored, e.g. %s", pred, len(ignored), ignored[:3]
        )
    cases = []
    for key, prediction, gt_path in pairs:
        p, t = _read_pair(prediction, gt_path, num_classes)
        cases.append({"id": key, **score_labels(p, t, num_classes)})
    metrics = [k for k in cases[0] if k != "id"]
    summary = {
        "predictions": str(pred),
        "ground_truth": str(truth),
        "cases": len(cases),
        "num_classes": num_classes,
        "mean": {m: float(np.mean([c[m] for c in cases])) for m in metrics},
        "ignored_predictions": ignored,
    }
    result = ScoreResult(cases=cases, summary=summary, ignored=ignored)
    if output is not None:
        result.output = _write(Path(output), cases, summary)
    return result


def summary_table(summary: dict[str, Any]) -> str:
    """The means as a one-row markdown table."""
    metrics = list(summary["mean"])
    header = "| cases | " + " | ".join(m.replace("_", " ") for m in metrics) + " |"
    row = f"| {summary['cases']} | " + " | ".join(f"{summary['mean'][m]:.4f}" for m in metrics) + " |"
    return "\n".join([header, "|---:|" + "---:|" * len(metrics), row]) + "\n"


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
