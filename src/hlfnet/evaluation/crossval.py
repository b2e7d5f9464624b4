"""``hlfnet evaluate FOLDER``: the cross-validation of the folds ``hlfnet train --fold N`` wrote, as nnU-Net.

Each fold is scored on its own validation cases (the cases it never trained on, from its ``split.json``) with
:func:`~hlfnet.evaluation.evaluate.evaluate_run`; the table has one row per fold and a **pooled** row: the
mean over every validation case of every fold (each case scored once, by the fold that held it out). The
columns are those of ``hlfnet evaluate`` (per class for multi-class).

**Post-processing chosen by cross-validation.** Each fold's validation cases are scored a second time with
the largest connected component of every class kept. Removing components of class ``k`` turns them into
background and changes no other class's Dice, so the choice is made per class: the largest component of class
``k`` is kept when it raises the pooled mean Dice of class ``k`` (strictly) at the level ``hlfnet predict``
writes (``original`` for 2-D images, ``volume`` for volumes). The decision goes to ``postprocessing.json``,
which ``hlfnet predict --model FOLDER`` applies (:mod:`hlfnet.evaluation.predictor.ensemble`).

Outputs, in ``FOLDER/crossval/`` (or ``output``): ``per_case.csv`` (``fold``, ``id`` and the metric columns,
without post-processing), ``summary.json``, ``summary.md`` and ``postprocessing.json``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hlfnet.atomic import atomic_write_bytes, owned_outputs
from hlfnet.evaluation.evaluate import case_means, class_table, csv_bytes, evaluate_run, metric_columns
from hlfnet.evaluation.predictor.ensemble import (
    CROSSVAL_DIR,
    POSTPROCESSING_FILE,
    check_compatible,
    ensemble_members,
)

__all__ = [
    "CROSSVAL_FILES",
    "CrossValidationResult",
    "choose_postprocessing",
    "crossval_markdown",
    "crossvalidate",
    "fold_runs",
]

logger = logging.getLogger(__name__)

#: What a cross-validation writes into its folder (re-running replaces these, and only these).
CROSSVAL_FILES = ("per_case.csv", "summary.json", "summary.md", POSTPROCESSING_FILE)


@dataclass
class CrossValidationResult:
    """The cross-validation of a set of folds.

    Attributes:
        summary: what ``summary.json`` holds: ``folds``, ``levels`` (pooled means per level), ``per_fold``
            (``{fold: {level: means}}``), ``counts``, ``primary``, ``settings``, ``postprocessing``.
        cases: one row per validation case: ``fold``, ``id`` and ``<level>_<metric>`` columns.
        postprocessing: the decision (what ``postprocessing.json`` holds).
        output: the folder written to, or ``None``.
    """

    summary: dict[str, Any]
    cases: list[dict[str, Any]]
    postprocessing: dict[str, Any]
    output: Path | None = None


def fold_runs(folds: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[Path]:
    """The fold run folders named by ``folds``: a folder of ``fold_<N>`` run folders, ``"A,B,..."``, or a list.

    Raises:
        ValueError: ``folds`` names a single run (or nothing that holds folds).
    """
    if isinstance(folds, (list, tuple)):
        return [Path(f) for f in folds]
    members = ensemble_members(folds)
    if members is None:
        raise ValueError(
            f"{folds}: not a cross-validation: give a folder holding fold_<N> run folders (what "
            "`hlfnet train --fold N` writes) or a comma-separated list of fold run folders"
        )
    return members


def _fold_of(run: Any, path: Path, checked: dict[str, Any]) -> int:
    """The fold number of a run, checking that it is a held-out fold of the same cross-validation."""
    fold = run.data.get("fold")
    if fold is None:
        raise ValueError(f"{path}: not a cross-validation fold (data.fold is null); train it with --fold N")
    if not isinstance(fold, int):
        raise ValueError(
            f"{path}: fold {fold!r} trains on every case and has no held-out cases; leave it out of the "
            "cross-validation (predict with it on its own)"
        )
    for key in ("num_folds", "seed", "format", "root", "split_file", "split_fractions"):
        value = run.data.get(key)
        if key in checked and checked[key] != value:
            raise ValueError(
                f"{path}: data.{key} is {value!r}, the other folds have {checked[key]!r}; the folds of one "
                "cross-validation share their data and its split"
            )
        checked.setdefault(key, value)
    return fold


def choose_postprocessing(
    plain: list[dict[str, Any]], processed: list[dict[str, Any]], level: str, num_classes: int
) -> dict[str, Any]:
    """Keep the largest component of class ``k`` where it raises the pooled mean Dice of class ``k``.

    Args:
        plain: per-case rows scored without post-processing (``<level>_dice`` / ``<level>_dice_class<k>``).
        processed: the same cases, in the same order, scored with the largest component of every class kept.
        level: the level compared (``original`` or ``volume``).
        num_classes: classes including background.

    Returns:
        What ``postprocessing.json`` holds: ``largest_component_classes`` and, per class, the mean Dice
        without and with, the cases it improves and worsens, and whether it is kept.
    """
    classes: dict[str, Any] = {}
    kept = []
    for k in range(1, num_classes):
        column = f"{level}_dice" if num_classes == 2 else f"{level}_dice_class{k}"
        before = [row[column] for row in plain]
        after = [row[column] for row in processed]
        without, with_ = sum(before) / len(before), sum(after) / len(after)
        keep = with_ > without
        classes[str(k)] = {
            "dice_without": without,
            "dice_with": with_,
            "cases_better": sum(a > b for a, b in zip(after, before, strict=True)),
            "cases_worse": sum(a < b for a, b in zip(after, before, strict=True)),
            "kept": keep,
        }
        if keep:
            kept.append(k)
    return {
        "largest_component_classes": kept,
        "rule": "keep the largest connected component of class k where it raises the mean Dice of class k "
        "over all cross-validation cases",
        "level": level,
        "cases": len(plain),
        "classes": classes,
    }


def crossvalidate(
    folds: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str] | None = None,
    write: bool = True,
    checkpoint: str = "best",
    surface: bool = True,
    nsd_tolerance: float = 1.0,
    postprocessing: bool = True,
    **predictor_options: Any,
) -> CrossValidationResult:
    """Score every fold on its validation cases, pool them, and choose the post-processing.

    Args:
        folds: a folder of ``fold_<N>`` run folders, ``"A,B,..."``, or a list of fold run folders.
        output: where to write; default ``FOLDER/crossval`` (required for a list of folds).
        write: write the files (``False``: only return the result).
        checkpoint, surface, nsd_tolerance: as :func:`~hlfnet.evaluation.evaluate.evaluate_run`.
        postprocessing: also score with the largest component kept and decide per class (a second
            prediction of every validation case).
        **predictor_options: options of :class:`~hlfnet.evaluation.predictor.Predictor` (``tta``,
            ``batch_size``, ``device``...); ``largest_component`` is chosen here, not passed.

    Raises:
        ValueError: runs that are not folds of one cross-validation, a fold twice, networks that disagree, or
            a list of folds without ``output``.
    """
    from hlfnet.evaluation.predictor.loading import network_of_run
    from hlfnet.experiment.run_folder import load_run

    members = fold_runs(folds)
    if output is None and write:
        if isinstance(folds, (list, tuple)) or "," in os.fspath(folds):
            raise ValueError(
                "--output is required for a list of folds (a folder of fold_<N> run folders writes "
                "FOLDER/crossval)"
            )
        output = Path(folds) / CROSSVAL_DIR
    predictor_options.pop("largest_component", None)
    backend = predictor_options.get("backend", "torch")
    checked: dict[str, Any] = {}
    numbers: dict[int, Path] = {}
    networks = []
    for path in members:
        run = load_run(path, checkpoint=checkpoint)
        fold = _fold_of(run, path, checked)
        if fold in numbers:
            raise ValueError(f"{path}: fold {fold} is also {numbers[fold]}; give each fold once")
        numbers[fold] = path
        networks.append(network_of_run(run, backend))
    if len(networks) > 1:
        check_compatible(networks, members)
    options = {"checkpoint": checkpoint, "nsd_tolerance": nsd_tolerance, **predictor_options}
    cases: list[dict[str, Any]] = []
    processed: list[dict[str, Any]] = []
    per_fold: dict[str, dict[str, dict[str, float]]] = {}
    first: dict[str, Any] = {}
    for fold, path in sorted(numbers.items()):
        logger.info("cross-validation: fold %d (%s) on its validation cases", fold, path)
        result = evaluate_run(path, split="val", write=False, surface=surface, **options)
        rows = [{"fold": fold, **row} for row in result.cases]
        cases += rows
        per_fold[str(fold)] = result.summary["levels"]
        first = first or result.summary
        if postprocessing:
            lcc = evaluate_run(
                path, split="val", write=False, surface=False, largest_component=True, **options
            )
            processed += [{"fold": fold, **row} for row in lcc.cases]
    levels = {level: case_means(cases, f"{level}_") for level in first["levels"]}
    num_classes = int(networks[0].out_channels) if networks[0].out_channels > 1 else 2
    level = "volume" if "volume" in levels else "original"
    decision = (
        {**choose_postprocessing(cases, processed, level, num_classes), "folds": sorted(numbers)}
        if postprocessing
        else {"largest_component_classes": [], "rule": "not evaluated", "folds": sorted(numbers)}
    )
    summary = {
        "crossvalidation": True,
        "model": first["model"],
        "paper_name": first["paper_name"],
        "parameters": first["parameters"],
        "dataset": first["dataset"],
        "data_root": first["data_root"],
        "folds": sorted(numbers),
        "num_folds": checked.get("num_folds"),
        "runs": {str(f): str(p) for f, p in sorted(numbers.items())},
        "cases": len(cases),
        "primary": first["primary"],
        "levels": levels,
        "per_fold": per_fold,
        "counts": {str(f): sum(1 for r in cases if r["fold"] == f) for f in sorted(numbers)},
        "settings": {
            **first["settings"],
            "weights": None,
            "weights_sha256": None,
            "largest_component": False,
        },
        "postprocessing": decision,
    }
    result = CrossValidationResult(summary=summary, cases=cases, postprocessing=decision)
    if write:
        folder = Path(output)  # type: ignore[arg-type]
        files = {
            "per_case.csv": csv_bytes(cases),
            "summary.json": json.dumps(summary, indent=2).encode(),
            "summary.md": crossval_markdown(summary).encode(),
            POSTPROCESSING_FILE: (json.dumps(decision, indent=2) + "\n").encode(),
        }
        # re-running replaces what a cross-validation wrote here, never anyone else's files (hlfnet.atomic)
        with owned_outputs(folder, list(files), "evaluation", overwrite=True):
            for name, data in files.items():
                atomic_write_bytes(folder / name, data, root=folder)
        result.output = folder
        logger.info("wrote %s", folder)
    return result


def _label(metric: str) -> str:
    return {"hd95": "HD95", "assd": "ASSD", "nsd": "NSD"}.get(metric, metric.replace("_", " ").capitalize())


def _cell(value: float | None) -> str:
    if value is None:
        return "—"
    return "n/a" if value != value else f"{value:.4f}"


def crossval_markdown(summary: dict[str, Any]) -> str:
    """Markdown of a cross-validation: per level, one row per fold and the pooled row; per class; the
    post-processing decision."""
    lines = [
        f"**Cross-validation** of {summary['paper_name']} ({summary['parameters'] / 1e6:.2f}M parameters), folds "
        f"{', '.join(str(f) for f in summary['folds'])} of {summary['num_folds']}, on {summary['dataset']}: "
        f"{summary['cases']} validation cases, each scored by the fold that held it out",
    ]
    for level, pooled in summary["levels"].items():
        main, _ = metric_columns(pooled)
        marker = " (primary)" if level == summary["primary"] else ""
        lines += [
            "",
            f"Level {level}{marker}:",
            "",
            "| Fold | Cases | " + " | ".join(_label(m) for m in main) + " |",
            "|" + "---|" * (len(main) + 2),
        ]
        for fold in summary["folds"]:
            scores = summary["per_fold"][str(fold)].get(level, {})
            lines.append(
                f"| {fold} | {summary['counts'][str(fold)]} | "
                + " | ".join(_cell(scores.get(m)) for m in main)
                + " |"
            )
        lines.append(
            f"| pooled | {summary['cases']} | " + " | ".join(_cell(pooled.get(m)) for m in main) + " |"
        )
        if metric_columns(pooled)[1]:
            lines += ["", f"Per class, pooled ({level}):", "", class_table(pooled)]
    decision = summary["postprocessing"]
    if decision.get("classes"):
        lines += [
            "",
            f"Largest connected component, mean Dice over the {decision['cases']} cases ({decision['level']}):",
            "",
            "| Class | Dice without | Dice with | cases better / worse | kept |",
            "|---|---|---|---|---|",
        ]
        for k, row in decision["classes"].items():
            lines.append(
                f"| {k} | {row['dice_without']:.4f} | {row['dice_with']:.4f} | {row['cases_better']} / "
                f"{row['cases_worse']} | {'yes' if row['kept'] else 'no'} |"
            )
    return "\n".join(lines) + "\n"
