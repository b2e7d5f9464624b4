"""Paired statistics over per-case scores: is the margin between two networks real?

Two runs evaluated on the same cases (``hlfnet evaluate``'s ``per_case.csv``) are compared case by case: the
difference ``other - reference`` of each case's score, its mean with a 95 % percentile-bootstrap confidence
interval (cases resampled with replacement, seeded), and the two-sided Wilcoxon signed-rank test of the
per-case differences (``scipy.stats.wilcoxon``; zero differences dropped, Wilcoxon's convention).
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["PairedResult", "bootstrap_mean_ci", "paired_comparison", "paired_markdown", "read_per_case"]


@dataclass(frozen=True)
class PairedResult:
    """``other`` minus ``reference`` on one metric, over the cases both runs scored."""

    reference: str
    other: str
    metric: str
    cases: int
    mean_reference: float
    mean_other: float
    mean_difference: float
    ci_low: float
    ci_high: float
    wilcoxon_p: float

    @property
    def significant(self) -> bool:
        """The 95 % interval excludes 0 and Wilcoxon's p < 0.05."""
        return (self.ci_low > 0 or self.ci_high < 0) and self.wilcoxon_p < 0.05


def read_per_case(path: str | os.PathLike[str], column: str) -> dict[str, float]:
    """``{case id: score}`` from a ``per_case.csv`` column (e.g. ``original_jaccard``).

    Raises:
        FileNotFoundError: no such file. ValueError: the column is missing or holds a non-number.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found; run `hlfnet evaluate` on the run first")
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        if column not in (reader.fieldnames or []) or "id" not in (reader.fieldnames or []):
            raise ValueError(f"{path}: no 'id' and {column!r} columns (has {reader.fieldnames})")
        scores = {}
        for row in reader:
            try:
                scores[row["id"]] = float(row[column])
            except ValueError:
                raise ValueError(
                    f"{path}: case {row['id']!r}: {column} is {row[column]!r}, not a number"
                ) from None
    return scores


def bootstrap_mean_ci(
    values: np.ndarray, resamples: int = 10_000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile-bootstrap confidence interval of the mean of ``values`` (cases resampled with replacement)."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        raise ValueError("bootstrap of an empty sample")
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    for start in range(0, resamples, 1000):  # in blocks: bounded memory for large test sets
        stop = min(resamples, start + 1000)
        idx = rng.integers(0, values.size, size=(stop - start, values.size))
        means[start:stop] = values[idx].mean(axis=1)
    alpha = (1.0 - confidence) / 2
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return float(low), float(high)


def _wilcoxon_p(differences: np.ndarray) -> float:
    from scipy.stats import wilcoxon

    if not np.any(differences != 0):
        return 1.0
    return float(wilcoxon(differences, zero_method="wilcox", alternative="two-sided").pvalue)


def paired_comparison(
    reference: str | os.PathLike[str],
    other: str | os.PathLike[str],
    split: str = "test",
    level: str = "original",
    metrics: tuple[str, ...] = ("dice", "jaccard", "accuracy"),
    resamples: int = 10_000,
    seed: int = 0,
) -> list[PairedResult]:
    """Compare two evaluated runs case by case on each of ``metrics``.

    Args:
        reference: run folder (or an evaluation folder holding ``per_case.csv``) of the baseline.
        other: the run compared with it.
        split: the evaluated split (``RUN/evaluation/<split>/per_case.csv``).
        level: ``original`` (ISIC: the masks' own size) or ``network``; for volumes ``slice`` reads
            ``per_slice.csv``.
        metrics: per-case columns to compare.
        resamples: bootstrap resamples.
        seed: bootstrap seed.

    Raises:
        ValueError: the runs share no case, or a case of one is missing from the other.
    """
    results = []
    for metric in metrics:
        column = f"{level}_{metric}"
        a = read_per_case(_per_case_file(reference, split, level), column)
        b = read_per_case(_per_case_file(other, split, level), column)
        if set(a) != set(b):
            only = sorted(set(a) ^ set(b))
            raise ValueError(
                f"{reference} and {other}: evaluated on different cases ({len(only)} not in both, e.g. "
                f"{only[0]!r}); evaluate both on the same split"
            )
        ids = sorted(a)
        if not ids:
            raise ValueError(f"{reference}: no cases in its {split} evaluation")
        ref_scores = np.array([a[i] for i in ids])
        other_scores = np.array([b[i] for i in ids])
        diff = other_scores - ref_scores
        low, high = bootstrap_mean_ci(diff, resamples=resamples, seed=seed)
        results.append(
            PairedResult(
                reference=Path(reference).name,
                other=Path(other).name,
                metric=metric,
                cases=len(ids),
                mean_reference=float(ref_scores.mean()),
                mean_other=float(other_scores.mean()),
                mean_difference=float(diff.mean()),
                ci_low=low,
                ci_high=high,
                wilcoxon_p=_wilcoxon_p(diff),
            )
        )
    return results


def _per_case_file(run: str | os.PathLike[str], split: str, level: str) -> Path:
    name = "per_slice.csv" if level == "slice" else "per_case.csv"
    run = Path(run)
    return run / name if (run / name).is_file() else run / "evaluation" / split / name


def paired_markdown(results: list[PairedResult]) -> str:
    """One row per (pair, metric): means, mean difference [95 % CI], Wilcoxon p, and a plain verdict."""
    lines = [
        "| comparison | metric | cases | reference | other | difference [95 % CI] | Wilcoxon p | verdict |",
        "|---|---|---:|---:|---:|---|---:|---|",
    ]
    for r in results:
        verdict = (
            ("other better" if r.mean_difference > 0 else "reference better")
            if r.significant
            else "no significant difference"
        )
        lines.append(
            f"| {r.other} − {r.reference} | {r.metric} | {r.cases} | {r.mean_reference:.4f} | {r.mean_other:.4f} "
            f"| {r.mean_difference:+.4f} [{r.ci_low:+.4f}, {r.ci_high:+.4f}] | {r.wilcoxon_p:.3g} | {verdict} |"
        )
    return "\n".join(lines) + "\n"
