"""The paper's Table 1 from run folders: Dice, Jaccard, Accuracy and parameters per network.

Each run must have been evaluated first (``hlfnet evaluate RUN --split test`` writes
``RUN/evaluation/test/summary.json``); :func:`compare_runs` reads those summaries, never re-evaluates, so the
table shows exactly the numbers ``evaluate`` reported. Like the paper, the columns are the networks and the rows
the metrics; the CSV has one row per run for further analysis.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["PAPER_TABLE1", "TableRow", "compare_runs", "summary_path", "table_markdown", "table_csv"]

TABLE_METRICS: tuple[str, ...] = ("dice", "jaccard", "accuracy")

PAPER_TABLE1: dict[str, dict[str, dict[str, float]]] = {
    "isic2017": {
        "unet": {"dice": 0.838, "jaccard": 0.754, "accuracy": 0.930},
        "resunet": {"dice": 0.841, "jaccard": 0.755, "accuracy": 0.931},
        "hlfnet_hfe": {"dice": 0.859, "jaccard": 0.777, "accuracy": 0.935},
        "hlfnet_lfe": {"dice": 0.862, "jaccard": 0.783, "accuracy": 0.935},
        "hlfnet": {"dice": 0.866, "jaccard": 0.788, "accuracy": 0.939},
    },
    "spleen": {
        "unet": {"dice": 0.937, "jaccard": 0.886},
        "resunet": {"dice": 0.942, "jaccard": 0.894},
        "hlfnet_hfe": {"dice": 0.957, "jaccard": 0.919},
        "hlfnet_lfe": {"dice": 0.960, "jaccard": 0.923},
        "hlfnet": {"dice": 0.964, "jaccard": 0.931},
    },
}
"""The paper's Table 1 (test sets), keyed by dataset and registered network name."""


def summary_path(run: str | os.PathLike[str], split: str = "test") -> Path:
    """Where ``hlfnet evaluate`` writes a run's summary: ``RUN/evaluation/<split>/summary.json``."""
    return Path(run) / "evaluation" / split / "summary.json"


@dataclass
class TableRow:
    """One network's column of Table 1."""

    run: str
    model: str
    paper_name: str
    parameters: int
    metrics: dict[str, float]
    level: str
    cases: int


def _read_summary(run: Path, split: str) -> dict[str, Any]:
    path = summary_path(run, split)
    if not run.is_dir():
        raise FileNotFoundError(f"{run}: no such run folder")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found; run `hlfnet evaluate {run} --split {split}` first")
    from hlfnet.limits import read_json

    summary = read_json(path, "evaluation summary")
    try:
        summary["levels"][summary["primary"]]
    except (KeyError, TypeError) as error:
        raise ValueError(
            f"{path}: not an evaluation summary written by hlfnet evaluate ({error!r})"
        ) from None
    from hlfnet.evaluation.evaluate import check_fresh

    check_fresh(summary, path, run)  # the weights changed since (a resumed run): refuse, say how to re-score
    return summary


def compare_runs(
    runs: list[str | os.PathLike[str]], split: str = "test", level: str | None = None
) -> list[TableRow]:
    """Collect Table 1 from evaluated runs.

    Args:
        runs: run folders, each evaluated on ``split``.
        split: which evaluation to read.
        level: which scores: ``None`` = each summary's primary level (ISIC: the original mask resolution, as the
            challenge; spleen: per slice, as the paper); or ``"original"``, ``"network"``, ``"slice"``,
            ``"volume"``.

    Returns:
        One :class:`TableRow` per run, in the order given.

    Raises:
        FileNotFoundError: a run or its summary is missing (says which command writes it).
        ValueError: a summary is malformed or lacks the requested level.
    """
    if not runs:
        raise ValueError("compare needs at least one run folder")
    rows = []
    for run in map(Path, runs):
        summary = _read_summary(run, split)
        chosen = level or summary["primary"]
        if chosen not in summary["levels"]:
            raise ValueError(
                f"{summary_path(run, split)}: no {chosen!r} scores; it has {sorted(summary['levels'])}"
            )
        rows.append(
            TableRow(
                run=run.name,
                model=summary["model"],
                paper_name=summary.get("paper_name", summary["model"]),
                parameters=int(summary["parameters"]),
                metrics={k: float(v) for k, v in summary["levels"][chosen].items()},
                level=chosen,
                cases=int(summary.get("cases", 0)),
            )
        )
    return rows


def _format_parameters(n: int) -> str:
    return f"{n / 1e6:.2f}×10^6"


def table_markdown(rows: list[TableRow], paper: str | None = None) -> str:
    """Markdown in the paper's layout: one column per network, rows Dice, Jaccard, Accuracy, Parameters.

    Args:
        rows: from :func:`compare_runs`.
        paper: ``"isic2017"`` or ``"spleen"`` to show the paper's value beside each measured one.
    """
    if paper is not None and paper not in PAPER_TABLE1:
        raise ValueError(f"paper must be one of {sorted(PAPER_TABLE1)}, got {paper!r}")
    header = ["Metric", *[f"{r.paper_name} ({r.run})" for r in rows]]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for metric in TABLE_METRICS:
        if not any(metric in r.metrics for r in rows):
            continue
        cells = [metric.capitalize()]
        for r in rows:
            cell = f"{r.metrics[metric]:.3f}" if metric in r.metrics else "–"
            reference = PAPER_TABLE1.get(paper or "", {}).get(r.model, {}).get(metric)
            if reference is not None:
                cell += f" (paper {reference:.3f})"
            cells.append(cell)
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("| Parameters | " + " | ".join(_format_parameters(r.parameters) for r in rows) + " |")
    levels = sorted({r.level for r in rows})
    lines.append("")
    lines.append(
        f"Scores: mean over {', '.join(str(r.cases) for r in rows)} cases; level {', '.join(levels)}."
    )
    return "\n".join(lines) + "\n"


def table_csv(rows: list[TableRow]) -> str:
    """CSV, one row per run: run, model, paper_name, level, cases, parameters and every metric."""
    present = {m for r in rows for m in r.metrics}
    metrics = [m for m in TABLE_METRICS if m in present] + sorted(present - set(TABLE_METRICS))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["run", "model", "paper_name", "level", "cases", "parameters", *metrics])
    for r in rows:
        writer.writerow(
            [
                r.run,
                r.model,
                r.paper_name,
                r.level,
                r.cases,
                r.parameters,
                *[r.metrics.get(m, "") for m in metrics],
            ]
        )
    return buffer.getvalue()
