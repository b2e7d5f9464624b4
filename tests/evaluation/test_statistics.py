"""Paired statistics of ``hlfnet compare``: checked against hand-worked cases and textbook values."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from hlfnet.cli import main
from hlfnet.evaluation.statistics import bootstrap_mean_ci, paired_comparison


def _evaluation(folder: Path, scores: dict[str, float]) -> Path:
    folder.mkdir(parents=True)
    with open(folder / "per_case.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "original_dice", "original_jaccard", "original_accuracy"])
        for case, value in scores.items():
            writer.writerow([case, value, value / 2, 0.9])
    return folder


def test_bootstrap_of_a_constant_difference_is_that_constant() -> None:
    low, high = bootstrap_mean_ci(np.full(30, 0.02))
    assert low == pytest.approx(0.02) and high == pytest.approx(0.02)


def test_bootstrap_interval_matches_the_normal_approximation() -> None:
    # For n = 400 draws with sd 1, the mean's 95 % interval is about mean +- 1.96 / sqrt(400) = +- 0.098.
    values = np.random.default_rng(3).normal(0.0, 1.0, 400)
    values = (values - values.mean()) / values.std()
    low, high = bootstrap_mean_ci(values)
    assert low == pytest.approx(-0.098, abs=0.01) and high == pytest.approx(0.098, abs=0.01)


def test_wilcoxon_of_five_positive_differences_is_exactly_one_sixteenth(tmp_path: Path) -> None:
    # All five differences positive with distinct ranks: W- = 0, exact two-sided p = 2 / 2^5 = 0.0625.
    ids = [f"c{i}" for i in range(5)]
    a = _evaluation(tmp_path / "a", dict.fromkeys(ids, 0.5))
    b = _evaluation(tmp_path / "b", {c: 0.5 + 0.01 * (i + 1) for i, c in enumerate(ids)})
    (dice,) = paired_comparison(a, b, metrics=("dice",))
    assert dice.wilcoxon_p == pytest.approx(0.0625)
    assert dice.mean_difference == pytest.approx(0.03)
    assert dice.cases == 5
    assert not dice.significant  # p >= 0.05 although the interval excludes 0


def test_identical_runs_show_no_difference(tmp_path: Path) -> None:
    scores = {f"c{i}": i / 10 for i in range(8)}
    a, b = _evaluation(tmp_path / "a", scores), _evaluation(tmp_path / "b", scores)
    for result in paired_comparison(a, b):
        assert result.mean_difference == 0 and result.wilcoxon_p == 1.0 and not result.significant


def test_runs_scored_on_different_cases_are_refused(tmp_path: Path) -> None:
    a = _evaluation(tmp_path / "a", {"c1": 0.5, "c2": 0.6})
    b = _evaluation(tmp_path / "b", {"c1": 0.5, "c3": 0.6})
    with pytest.raises(ValueError, match="different cases"):
        paired_comparison(a, b)


def test_compare_prints_the_paired_table(tmp_path: Path, capsys) -> None:
    import json

    rng = np.random.default_rng(0)
    for name, shift in (("unet", 0.0), ("hlfnet", 0.05)):
        folder = _evaluation(
            tmp_path / name / "evaluation" / "test",
            {f"c{i}": 0.6 + shift + 0.1 * rng.random() for i in range(40)},
        )
        summary = {
            "run": name,
            "model": name,
            "parameters": 1000,
            "split": "test",
            "cases": 40,
            "primary": "original",
            "levels": {"original": {"dice": 0.7, "jaccard": 0.6, "accuracy": 0.9}},
        }
        (folder / "summary.json").write_text(json.dumps(summary))
    assert main(["compare", str(tmp_path / "unet"), str(tmp_path / "hlfnet")]) == 0
    out = capsys.readouterr().out
    assert "Wilcoxon" in out and "hlfnet − unet" in out and "other better" in out
