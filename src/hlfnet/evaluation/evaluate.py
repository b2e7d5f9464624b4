"""``hlfnet evaluate``: score a run on a split, as the ISIC challenge and the paper do.

2-D data (ISIC, bring-your-own folders) is scored per image at two resolutions:

* ``original`` — the prediction brought back to the original mask size (probabilities resized bilinearly,
  then thresholded: exactly what ``hlfnet predict`` writes), against the mask file itself. This is the
  challenge's protocol and the level Table 1 uses.
* ``network`` — at the network input size, against the mask resized nearest-neighbour as in training.

Volumes (spleen) are scored per slice at the network size (the paper: 380 test slices, background-only
slices dropped when the data config drops them for that split) and per volume (3-D Dice per patient at the
volume's own resolution).

Outputs, in ``RUN/evaluation/<split>/`` unless told otherwise: ``per_case.csv`` (one row per image or
volume), ``per_slice.csv`` (volumes only), ``summary.json`` (the mean of every metric at every level, the
model and the settings) and ``summary.md`` (a markdown table).
"""

from __future__ import annotations

import csv
import json
import logging
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hlfnet.atomic import atomic_write_bytes, owned_outputs
from hlfnet.evaluation.metrics import (
    BINARY_METRICS,
    SURFACE_METRICS,
    binary_scores,
    foreground_mean,
    multiclass_scores,
    surface_scores,
)

__all__ = [
    "EvaluationResult",
    "case_means",
    "csv_bytes",
    "evaluate_run",
    "score_labels",
    "summary_markdown",
    "task_metrics",
]

logger = logging.getLogger(__name__)


@dataclass
class EvaluationResult:
    """Scores of one run on one split.

    Attributes:
        summary: what ``summary.json`` holds (``levels``: ``{level: {metric: mean}}``, ``primary``, ...).
        cases: one dictionary per image or volume: ``id`` plus ``<level>_<metric>`` columns.
        slices: one dictionary per scored slice (volumes only).
        output: the folder the files were written to, or ``None``.
    """

    summary: dict[str, Any]
    cases: list[dict[str, Any]]
    slices: list[dict[str, Any]] = field(default_factory=list)
    output: Path | None = None


def score_labels(
    pred: np.ndarray,
    target: np.ndarray,
    num_classes: int,
    surface: bool = False,
    spacing: tuple[float, ...] | None = None,
    tolerance: float = 1.0,
    fov: np.ndarray | None = None,
) -> dict[str, float]:
    """Scores of one case: the ISIC metrics (binary, or the mean over foreground classes, one-vs-rest), per-class
    Dice and Jaccard for multi-class (``dice_class<k>``, ``jaccard_class<k>``), and with ``surface`` the
    boundary metrics HD95, ASSD and NSD (:func:`~hlfnet.evaluation.metrics.surface_scores`; the mean over
    foreground classes, and ``hd95_class<k>``... for multi-class).

    Args:
        pred: ``uint8`` labels of any shape.
        target: labels of the same shape.
        num_classes: classes including background.
        surface: also compute HD95/ASSD/NSD (needs 2-D or 3-D labels).
        spacing: pixel/voxel size per axis for the boundary metrics (``None`` = pixels).
        tolerance: NSD tolerance in the units of ``spacing``.
        fov: field-of-view mask, same shape (non-zero = scored): the overlap metrics count only pixels inside
            it; outside it both labels are set to background before the boundary metrics.

    Raises:
        ValueError: shapes differ.
    """
    if pred.shape != target.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from ground truth shape {target.shape}")
    if fov is not None:
        if fov.shape != pred.shape:
            raise ValueError(
                f"field-of-view mask shape {fov.shape} differs from the labels' shape {pred.shape}"
            )
        inside = np.asarray(fov) != 0
        pred, target = np.where(inside, pred, 0), np.where(inside, target, 0)
        p = torch.from_numpy(np.ascontiguousarray(pred[inside]))[None]
        t = torch.from_numpy(np.ascontiguousarray(target[inside]))[None]
    else:
        p = torch.from_numpy(np.array(pred, copy=True))[None]
        t = torch.from_numpy(np.array(target, copy=True))[None]
    if num_classes == 2:
        out = {k: float(v[0]) for k, v in binary_scores(p > 0, t > 0).items()}
    else:
        per_class = multiclass_scores(p.long(), t.long(), num_classes)
        out = {k: float(v[0]) for k, v in foreground_mean(per_class).items()}
        for metric in ("dice", "jaccard"):
            out.update({f"{metric}_class{k}": float(per_class[metric][0, k]) for k in range(1, num_classes)})
    if surface:
        boundary = surface_scores(
            torch.from_numpy(np.asarray(pred).astype(np.int64)),
            torch.from_numpy(np.asarray(target).astype(np.int64)),
            num_classes,
            spacing,
            tolerance,
        )
        for metric in SURFACE_METRICS:
            values = boundary[metric]
            out[metric] = float("nan") if bool(values.isnan().all()) else float(values.nanmean())
            if num_classes > 2:
                out.update({f"{metric}_class{k}": float(values[k - 1]) for k in range(1, num_classes)})
    return out


def case_means(rows: list[dict[str, Any]], prefix: str = "") -> dict[str, float]:
    """Mean of every metric column over cases; NaN entries (a boundary metric with both masks empty) left out.

    Args:
        rows: per-case dictionaries.
        prefix: only columns ``<prefix><metric>`` (``"original_"``), returned without the prefix.
    """
    columns = [
        k
        for k in dict.fromkeys(k for r in rows for k in r)
        if k.startswith(prefix) and all(isinstance(r[k], float) for r in rows if k in r)
    ]
    out = {}
    for column in columns:
        values = np.array([r[column] for r in rows if column in r], dtype=np.float64)
        finite = values[~np.isnan(values)]
        out[column[len(prefix) :]] = float(finite.mean()) if finite.size else float("nan")
    return out


def task_metrics(dataset: str) -> tuple[str, ...]:
    """The overlap metrics a table shows for a data set: thresholded Jaccard (ISIC 2018's) only for ISIC."""
    return (
        BINARY_METRICS
        if dataset == "isic2017"
        else tuple(m for m in BINARY_METRICS if m != "thresholded_jaccard")
    )


def _means(rows: list[dict[str, Any]], level: str) -> dict[str, float]:
    return case_means(rows, f"{level}_") if rows else {}


def pairs_for_split(cfg: Any, split: str, ids: list[str] | None) -> list[Any]:
    """The (id, image, mask) pairs of ``split``, restricted to the run's own split ids when given."""
    from hlfnet.data.layouts import discover
    from hlfnet.data.splits import split_pairs

    if ids is None:
        return split_pairs(cfg, split)
    by_id = {p.id: p for p in discover(cfg).all_pairs()}
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise ValueError(
            f"{cfg.root}: {len(missing)} case(s) of the run's {split} split are not in the data, e.g. {missing[0]!r} "
            f"(pass --data to evaluate on another data folder with its own split)"
        )
    return [by_id[i] for i in ids]


def _evaluate_images(
    predictor: Any, pairs: list[Any], cfg: Any, boundary: dict[str, Any]
) -> list[dict[str, Any]]:
    from hlfnet.data.io import read_mask
    from hlfnet.data.preprocess import resize_mask

    rows = []
    predictions = predictor.predict_images([p.channels or p.image for p in pairs], ids=[p.id for p in pairs])
    bar = predictor.progress_bar(len(pairs), "img")
    try:
        for pair, pred in zip(pairs, predictions, strict=True):
            truth = read_mask(pair.mask, cfg.num_classes, cfg.mask_threshold, cfg.label_values)
            if truth.shape != pred.mask.shape:
                raise ValueError(
                    f"{pair.mask}: mask size {truth.shape} differs from image {pair.image} size {pred.mask.shape}"
                )
            row: dict[str, Any] = {"id": pair.id}
            # a native-resolution plan predicts at the image's own size: its network level is the original
            network_truth = truth if cfg.is_patch_plan else resize_mask(truth, cfg.image_size)
            levels = {
                "original": score_labels(pred.mask, truth, cfg.num_classes, **boundary),
                "network": score_labels(pred.network_mask, network_truth, cfg.num_classes),
            }
            for level, scores in levels.items():
                row.update({f"{level}_{m}": v for m, v in scores.items()})
            rows.append(row)
            bar.update(1)
    finally:
        bar.close()
    return rows


def layout_spacing(meta: Any) -> tuple[float, float, float]:
    """Voxel size (mm) along the axes of a volume in the ``(slice, row, column)`` layout evaluation uses."""
    from hlfnet.data.preprocess import slice_orientation

    zooms = np.sqrt((np.asarray(meta.affine)[:3, :3] ** 2).sum(axis=0))
    layout = [0.0, 0.0, 0.0]
    for in_axis, (out_axis, _flip) in enumerate(slice_orientation(meta.affine)):
        layout[int(out_axis)] = float(zooms[in_axis])
    return layout[2], layout[0], layout[1]


def _evaluate_volumes(
    predictor: Any, pairs: list[Any], cfg: Any, split: str, boundary: dict[str, Any]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    from hlfnet.data.io import load_label_volume, load_volume
    from hlfnet.data.preprocess import labels_to_slices, reorient_to_slices

    drop_background = split in cfg.drop_background_slices
    cases, slices = [], []
    bar = predictor.progress_bar(len(pairs), "volume")
    try:
        for pair in pairs:
            volume, meta = load_volume(pair.image)
            labels = load_label_volume(pair.mask, meta, volume.shape, cfg.num_classes, cfg.label_values)
            pred = predictor.predict_volume_array(pair.files)
            truth = np.ascontiguousarray(np.transpose(reorient_to_slices(labels, meta.affine), (2, 0, 1)))
            truth_network = (
                truth  # a native-resolution plan: slices at the volume's own size
                if cfg.is_patch_plan
                else labels_to_slices(labels, meta.affine, cfg.image_size).numpy()
            )
            row: dict[str, Any] = {"id": pair.id}
            row.update(
                {
                    f"volume_{m}": v
                    for m, v in score_labels(
                        pred.labels, truth, cfg.num_classes, spacing=layout_spacing(meta), **boundary
                    ).items()
                }
            )
            volume_slices = []
            for index in range(truth_network.shape[0]):
                if drop_background and not truth_network[index].any():
                    continue
                scores = score_labels(pred.network_labels[index], truth_network[index], cfg.num_classes)
                volume_slices.append(
                    {"id": f"{pair.id}:{index}", "volume": pair.id, "slice_index": index}
                    | {f"slice_{m}": v for m, v in scores.items()}
                )
            row["slices"] = len(volume_slices)
            row.update({f"slice_{m}": v for m, v in _means(volume_slices, "slice").items()})
            cases.append(row)
            slices.extend(volume_slices)
            bar.update(1)
    finally:
        bar.close()
    return cases, slices


def csv_bytes(rows: list[dict[str, Any]]) -> bytes:
    """Rows of a table as CSV bytes, the columns in order of first appearance (per_case.csv, per_slice.csv)."""
    import io

    columns = list(dict.fromkeys(k for r in rows for k in r))
    handle = io.StringIO()
    writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return handle.getvalue().encode()


#: What ``hlfnet evaluate`` writes into its folder (re-evaluating replaces these, and only these).
EVALUATION_FILES = ("per_case.csv", "per_slice.csv", "summary.json", "summary.md")


def file_sha256(path: str | os.PathLike[str]) -> str:
    """sha256 of a file (the weights an evaluation scored)."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def stale_reason(summary: dict[str, Any], summary_file: str | os.PathLike[str]) -> str | None:
    """Why an evaluation no longer describes its weights (they changed since), or ``None`` when it does.

    Summaries record the sha256 of the weights they scored; older ones without it are stale when the weights
    are newer than the summary.
    """
    settings = summary.get("settings") if isinstance(summary.get("settings"), dict) else {}
    weights = settings.get("weights")
    if not weights or not Path(weights).is_file():
        return None
    recorded = settings.get("weights_sha256")
    if recorded:
        return (
            None
            if file_sha256(weights) == recorded
            else f"{weights} changed since it was scored (sha256 differs)"
        )
    if Path(weights).stat().st_mtime > Path(summary_file).stat().st_mtime:
        return f"{weights} is newer than the evaluation"
    return None


def check_fresh(summary: dict[str, Any], summary_file: str | os.PathLike[str], run: Any = None) -> None:
    """Refuse an evaluation whose weights changed since it was written (a resumed or retrained run).

    Raises:
        UserError: naming the summary, the weights and the command that re-scores them.
    """
    from hlfnet.errors import UserError

    reason = stale_reason(summary, summary_file)
    if reason is not None:
        split = summary.get("split", "test")
        raise UserError(
            f"{summary_file}: stale evaluation: {reason}; re-score with `hlfnet evaluate "
            f"{run if run is not None else Path(summary_file).parent.parent.parent} --split {split}`"
        )


def metric_columns(scores: dict[str, float]) -> tuple[list[str], list[str]]:
    """The summary columns present in ``scores``: the main ones (overlap, then boundary) and the per-class ones."""
    main = [m for m in (*BINARY_METRICS, *SURFACE_METRICS) if m in scores]
    per_class = sorted(
        (k for k in scores if "_class" in k),
        key=lambda k: (int(k.rsplit("_class", 1)[1]), k.rsplit("_class", 1)[0]),
    )
    return main, per_class


def _cell(value: float | None) -> str:
    if value is None:
        return "—"  # not computed at this level
    return "n/a" if value != value else f"{value:.4f}"


def _label(metric: str) -> str:
    return {"hd95": "HD95", "assd": "ASSD", "nsd": "NSD"}.get(metric, metric.replace("_", " ").capitalize())


def summary_markdown(summary: dict[str, Any]) -> str:
    """Markdown tables of a summary: one row per level, one column per metric; per-class scores below."""
    levels = summary["levels"]
    first = next(iter(levels.values()), {})
    main, _ = metric_columns(first)
    header = ["Level", "Cases", *[_label(m) for m in main]]
    lines = [
        f"**{summary['run']}** ({summary['paper_name']}, {summary['parameters'] / 1e6:.2f}M parameters) on the "
        f"{summary['split']} split of {summary['dataset']}",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for level, scores in levels.items():
        marker = " (primary)" if level == summary["primary"] else ""
        count = summary["counts"].get(level, "")
        lines.append(
            f"| {level}{marker} | {count} | " + " | ".join(_cell(scores.get(m)) for m in main) + " |"
        )
    for level, scores in levels.items():
        _, per_class = metric_columns(scores)
        if per_class:
            lines += ["", f"Per class ({level}):", "", class_table(scores)]
    settings = summary["settings"]
    lines += [
        "",
        f"TTA: {settings['tta']}, largest component: {settings['largest_component']}, "
        f"threshold: {settings['threshold']}, backend: {settings['backend']}.",
    ]
    if settings.get("surface_metrics"):
        lines.append(
            f"HD95/ASSD in {settings['surface_units']}, NSD at tolerance {settings['nsd_tolerance']} "
            f"{settings['surface_units']}, at the {'volume' if settings['surface_units'] == 'mm' else 'original'} "
            "level only (—); n/a = no case with the structure in prediction or truth."
        )
    return "\n".join(lines) + "\n"


def class_table(scores: dict[str, float]) -> str:
    """A markdown table with one row per class: ``dice_class1``, ``hd95_class1``... → class, Dice, HD95..."""
    _, per_class = metric_columns(scores)
    classes = sorted({int(k.rsplit("_class", 1)[1]) for k in per_class})
    metrics = [m for m in (*BINARY_METRICS, *SURFACE_METRICS) if f"{m}_class{classes[0]}" in scores]
    rows = [
        "| Class | " + " | ".join(_label(m) for m in metrics) + " |",
        "|---|" + "---|" * len(metrics),
    ]
    for k in classes:
        rows.append(
            f"| {k} | " + " | ".join(_cell(scores.get(f"{m}_class{k}", float("nan"))) for m in metrics) + " |"
        )
    return "\n".join(rows)


def synthetic_as_folder(cfg: Any, split: str, root: Path) -> Any:
    """The synthetic split written once as PNG files (``RUN/evaluation/synthetic-data/<split>``), as a folder config.

    Synthetic data lives in memory; writing it lets a synthetic run go through exactly the path of real data
    (files in, files scored), with the same ids as the run's ``split.json``.
    """
    from hlfnet.data.synthetic import write_synthetic_folder

    count = cfg.synthetic_count(split)
    if count < 1:
        raise ValueError(f"{root}: the synthetic {split} split is empty")
    folder = root / "evaluation" / "synthetic-data" / split
    if not (folder / "masks").is_dir() or len(list((folder / "masks").iterdir())) != count:
        write_synthetic_folder(
            folder, split, count, cfg.image_size, cfg.seed, cfg.num_classes, replace_unmarked=True
        )
    changed = replace(cfg, format="folder", root=str(folder), mask_suffix=None, use_cache=False)
    changed.validate()
    return changed


def _has_own_split(cfg: Any) -> bool:
    from hlfnet.data.layouts import discover

    return cfg.format != "synthetic" and discover(cfg).official


def _drop_unshown(rows: list[dict[str, Any]], dataset: str) -> None:
    if dataset != "isic2017":
        for row in rows:
            for key in [k for k in row if k.endswith("thresholded_jaccard")]:
                del row[key]


def evaluate_run(
    run: str | os.PathLike[str],
    split: str = "test",
    data_root: str | os.PathLike[str] | None = None,
    data_overrides: dict[str, Any] | None = None,
    output: str | os.PathLike[str] | None = None,
    write: bool = True,
    checkpoint: str = "best",
    surface: bool = True,
    nsd_tolerance: float = 1.0,
    all_cases: bool | None = None,
    **predictor_options: Any,
) -> EvaluationResult:
    """Score a run on one split and write ``per_case.csv``, ``summary.json`` and ``summary.md``.

    Args:
        run: run folder (or weights with a ``model.json`` recording the data).
        split: ``"val"`` or ``"test"`` (``"train"`` also works).
        data_root: evaluate on this data folder (same format) with its own split, instead of the run's data
            and the run's ``split.json``.
        data_overrides: other ``DataConfig`` fields to change (e.g. ``{"format": "folder"}``).
        output: where to write; default ``RUN/evaluation/<split>``.
        write: write the files (``False``: only return the result).
        checkpoint: ``"best"`` (default) or ``"last"`` weights of a run folder; ``last`` is written to
            ``RUN/evaluation/<split>-last`` so it never replaces the best weights' evaluation.
        surface: also report the boundary metrics HD95, ASSD and NSD (at the original image size, and per
            volume in mm).
        nsd_tolerance: NSD tolerance, in pixels for 2-D images and mm for volumes (default 1).
        all_cases: score every case of the data folder instead of one split; ``None`` = when ``data_root``
            is given and its layout has no split folders of its own (a foreign folder is scored whole).
        **predictor_options: options of :class:`~hlfnet.evaluation.predictor.Predictor` (``tta``,
            ``largest_component``, ``batch_size``, ``backend``, ``progress``...).

    Returns:
        The :class:`EvaluationResult`.

    Raises:
        FileNotFoundError: missing run, weights or data.
        ValueError: unknown split, a data config that does not match the run, missing cases, bad files.
    """
    from hlfnet.data.config import SPLITS
    from hlfnet.evaluation.predictor import Predictor
    from hlfnet.experiment.run_folder import load_run
    from hlfnet.models import count_parameters, get_model_spec

    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    loaded = load_run(run, checkpoint=checkpoint)
    backend = predictor_options.pop("backend", "torch")
    predictor = Predictor.from_run(loaded, backend=backend, **predictor_options)
    cfg = predictor.cfg
    changes = dict(data_overrides or {})
    if data_root is not None:
        changes["root"] = str(data_root)
    if changes:
        cfg = replace(cfg, **changes)
        cfg.validate()
        predictor.cfg = cfg
    ids = loaded.split.get(split) if (loaded.split is not None and data_root is None) else None
    if cfg.format == "synthetic":
        if ids is None:  # no split.json: the whole synthetic split, as training drew it
            from hlfnet.data.synthetic import synthetic_ids

            ids = synthetic_ids(split, cfg.synthetic_count(split))
        cfg = predictor.cfg = synthetic_as_folder(cfg, split, loaded.output_folder("the synthetic data"))
    if all_cases is None:
        all_cases = data_root is not None and not _has_own_split(cfg)
    if all_cases:
        from hlfnet.data.layouts import discover

        pairs = sorted(discover(cfg).all_pairs(), key=lambda p: p.id)
        split = "all"
    else:
        pairs = pairs_for_split(cfg, split, ids)
    if not pairs:
        raise ValueError(f"{cfg.root}: the {split} split is empty")
    logger.info("evaluating %s on %d %s case(s) of %s", loaded.name, len(pairs), split, cfg.root)
    boundary = {"surface": surface, "tolerance": nsd_tolerance}
    slices: list[dict[str, Any]] = []
    if cfg.is_volume:
        cases, slices = _evaluate_volumes(predictor, pairs, cfg, split, boundary)
        counts = {"slice": len(slices), "volume": len(cases)}
        primary = "slice"
    else:
        cases = _evaluate_images(predictor, pairs, cfg, boundary)
        counts = {"original": len(cases), "network": len(cases)}
        primary = "original"
    _drop_unshown(cases, cfg.format)
    _drop_unshown(slices, cfg.format)
    if cfg.is_volume:
        levels = {"slice": _means(slices, "slice"), "volume": _means(cases, "volume")}
    else:
        levels = {"original": _means(cases, "original"), "network": _means(cases, "network")}
    try:
        paper_name = get_model_spec(loaded.model_name).paper_name
    except KeyError:
        paper_name = loaded.model_name
    summary = {
        "run": loaded.name,
        "model": loaded.model_name,
        "paper_name": paper_name,
        "parameters": count_parameters(loaded.model),
        "split": split,
        "dataset": cfg.format,
        "data_root": cfg.root,
        "cases": len(cases),
        "primary": primary,
        "levels": {k: v for k, v in levels.items() if v},
        "counts": counts,
        "settings": {
            "tta": predictor.tta,
            "largest_component": predictor.largest_component,
            "threshold": predictor.threshold,
            "backend": backend,
            "surface_metrics": surface,
            "nsd_tolerance": nsd_tolerance if surface else None,
            "surface_units": ("mm" if cfg.is_volume else "pixels") if surface else None,
            "label_values": list(cfg.label_values) if cfg.label_values is not None else None,
            "weights": str(loaded.weights),
            "weights_sha256": file_sha256(loaded.weights) if Path(loaded.weights).is_file() else None,
        },
    }
    result = EvaluationResult(summary=summary, cases=cases, slices=slices)
    if write:
        folder = (
            Path(output)
            if output is not None
            else loaded.output_folder("the evaluation")
            / "evaluation"
            / (split if checkpoint == "best" else f"{split}-last")
        )
        files = {
            "per_case.csv": csv_bytes(cases),
            **({"per_slice.csv": csv_bytes(slices)} if slices else {}),
            "summary.json": json.dumps(summary, indent=2).encode(),
            "summary.md": summary_markdown(summary).encode(),
        }
        # Re-scoring replaces the files an earlier evaluation wrote here, never anyone else's (hlfnet.atomic).
        legacy = EVALUATION_FILES if output is None else ()
        with owned_outputs(folder, list(files), "evaluation", overwrite=True, legacy=legacy):
            for name, data in files.items():
                atomic_write_bytes(folder / name, data, root=folder)
        result.output = folder
        logger.info("wrote %s", folder)
    return result
