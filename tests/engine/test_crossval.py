"""Acceptance of issue 17, item 3: ``hlfnet train --fold N`` + ``hlfnet evaluate FOLDER`` gives the cross-validation
table, ``hlfnet predict --model FOLDER`` ensembles the folds. Tiny networks, one short epoch: this checks the
plumbing and the arithmetic of the table against ``evaluate_run`` per fold, not accuracy."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from hlfnet.cli import main
from hlfnet.evaluation.evaluate import evaluate_run
from tests.data.helpers import write_folder


@pytest.fixture(scope="module")
def two_folds(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Folds 0 and 1 of a 2-fold cross-validation of 8 images (2 held out for test), trained by the CLI."""
    tmp = tmp_path_factory.mktemp("cv")
    data = write_folder(tmp / "data", n=8, size=(24, 32))
    config = tmp / "cv.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "name": "cv",
                "model": {"name": "unet", "base_channels": 4, "depth": 2},
                "data": {
                    "format": "folder",
                    "root": str(data),
                    "image_size": [32, 32],
                    "cache_dir": str(tmp / "cache"),
                    "split_fractions": [0.75, 0.0, 0.25],
                    "num_folds": 2,
                },
                "train": {
                    "max_epochs": 1,
                    "batch_size": 3,
                    "lr": 0.01,
                    "progress_bar": False,
                    "log_every_n_steps": 1,
                    "runs_dir": str(tmp / "runs"),
                },
            }
        )
    )
    for fold in ("0", "1"):
        assert main(["train", "--config", str(config), "--fold", fold]) == 0
    return tmp / "runs" / "cv", data


def test_fold_runs_record_their_fold_and_cases(two_folds: tuple[Path, Path]) -> None:
    folder, _ = two_folds
    splits = [json.loads((folder / f"fold_{k}" / "split.json").read_text()) for k in (0, 1)]
    assert [(s["fold"], s["num_folds"], s["seed"]) for s in splits] == [(0, 2, 0), (1, 2, 0)]
    assert splits[0]["test"] == splits[1]["test"] and len(splits[0]["test"]) == 2
    pool = sorted(set(f"case{i}" for i in range(8)) - set(splits[0]["test"]))
    assert sorted(splits[0]["val"] + splits[1]["val"]) == pool  # each training case validated once
    assert splits[0]["train"] == splits[1]["val"] and splits[1]["train"] == splits[0]["val"]
    assert yaml.safe_load((folder / "fold_1" / "config.yaml").read_text())["data"]["fold"] == 1


def test_evaluate_folder_gives_the_cross_validation_table(two_folds: tuple[Path, Path], capsys) -> None:
    folder, _ = two_folds
    assert main(["evaluate", str(folder), "--device", "cpu", "--no-surface-metrics"]) == 0
    printed = capsys.readouterr().out
    assert "| pooled | 6 |" in printed and "| 0 | 3 |" in printed
    out = folder / "crossval"
    summary = json.loads((out / "summary.json").read_text())
    # independently: each fold scored on its own validation split, then the means by hand
    rows = {
        k: evaluate_run(folder / f"fold_{k}", split="val", write=False, surface=False).cases for k in (0, 1)
    }
    pooled = [r["original_dice"] for k in (0, 1) for r in rows[k]]
    assert summary["levels"]["original"]["dice"] == pytest.approx(np.mean(pooled), abs=1e-9)
    for k in (0, 1):
        assert summary["per_fold"][str(k)]["original"]["dice"] == pytest.approx(
            np.mean([r["original_dice"] for r in rows[k]]), abs=1e-9
        )
    lcc = [
        r["original_dice"]
        for k in (0, 1)
        for r in evaluate_run(
            folder / f"fold_{k}", split="val", write=False, surface=False, largest_component=True
        ).cases
    ]
    decision = json.loads((out / "postprocessing.json").read_text())
    row = decision["classes"]["1"]
    assert row["dice_without"] == pytest.approx(np.mean(pooled), abs=1e-9)
    assert row["dice_with"] == pytest.approx(np.mean(lcc), abs=1e-9)
    assert decision["largest_component_classes"] == ([1] if np.mean(lcc) > np.mean(pooled) else [])
    per_case = (out / "per_case.csv").read_text().splitlines()
    assert per_case[0].startswith("fold,id,") and len(per_case) == 7


def test_predict_with_the_folder_ensembles_the_folds(two_folds: tuple[Path, Path], tmp_path: Path) -> None:
    folder, data = two_folds
    code = main(
        [
            "predict",
            "--model",
            str(folder),
            "--input",
            str(data / "images"),
            "--output",
            str(tmp_path / "p"),
            "--device",
            "cpu",
            "--probabilities",
        ]
    )
    assert code == 0
    manifest = json.loads((tmp_path / "p" / "predictions.json").read_text())
    assert manifest["ensemble"] == 2 and len(manifest["weights"]) == 2
    assert len(manifest["files"]) == 8


def test_cross_validation_refuses_options_it_chooses_itself(two_folds: tuple[Path, Path], capsys) -> None:
    folder, _ = two_folds
    assert main(["evaluate", str(folder), "--split", "test"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "drop --split" in err[0]
    assert main(["evaluate", str(folder / "fold_0") + "," + str(folder / "fold_0")]) == 2
    assert "a fold appears twice" in capsys.readouterr().err


def test_choose_postprocessing_by_hand() -> None:
    from hlfnet.evaluation.crossval import choose_postprocessing

    plain = [
        {"original_dice_class1": 0.5, "original_dice_class2": 0.9},
        {"original_dice_class1": 0.7, "original_dice_class2": 0.8},
    ]
    processed = [
        {"original_dice_class1": 0.6, "original_dice_class2": 0.9},
        {"original_dice_class1": 0.7, "original_dice_class2": 0.7},
    ]
    decision = choose_postprocessing(plain, processed, "original", 3)
    # class 1: 0.60 -> 0.65 (kept); class 2: 0.85 -> 0.80 (not kept)
    assert decision["largest_component_classes"] == [1]
    assert decision["classes"]["1"]["dice_without"] == pytest.approx(0.6)
    assert decision["classes"]["1"]["dice_with"] == pytest.approx(0.65)
    assert (decision["classes"]["1"]["cases_better"], decision["classes"]["1"]["cases_worse"]) == (1, 0)
    assert decision["classes"]["2"]["kept"] is False and decision["classes"]["2"]["cases_worse"] == 1
