"""``hlfnet score`` against the official ISIC scorer on a folder of synthetic masks (no shared data needed)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hlfnet.cli import main
from hlfnet.evaluation.score import pair_folders, score_folders


def _blob(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    cy, cx = rng.uniform(0.3, 0.7) * shape[0], rng.uniform(0.3, 0.7) * shape[1]
    ry, rx = rng.uniform(0.1, 0.35) * shape[0], rng.uniform(0.1, 0.35) * shape[1]
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    """ISIC layout: truths ``ISIC_nnnnnnn_segmentation.png``, predictions ``ISIC_nnnnnnn.png`` (hlfnet predict's)."""
    rng = np.random.default_rng(7)
    truth, pred = tmp_path / "truth", tmp_path / "pred"
    truth.mkdir()
    pred.mkdir()
    for i in range(12):
        shape = (int(rng.integers(40, 90)), int(rng.integers(40, 90)))
        t = _blob(rng, shape)
        p = _blob(rng, shape) if i % 3 else np.zeros(shape, bool)  # some empty predictions
        if i == 5:
            t = np.zeros(shape, bool)  # an empty truth: sensitivity 1 by the scorer's convention
        case = f"ISIC_{i:07d}"
        Image.fromarray((t * 255).astype(np.uint8)).save(truth / f"{case}_segmentation.png")
        Image.fromarray((p * 255).astype(np.uint8)).save(pred / f"{case}.png")
    (pred / "predictions.json").write_text("{}")  # what hlfnet predict writes beside the masks: ignored
    return pred, truth


def test_scores_match_the_official_isic_scorer(folders: tuple[Path, Path]) -> None:
    segmentation = pytest.importorskip("isic_challenge_scoring.segmentation")
    pred, truth = folders
    official = segmentation.SegmentationScore.from_dir(truth, pred).macro_average
    ours = score_folders(pred, truth).summary["mean"]
    for key, theirs in (("threshold_jaccard", "thresholded_jaccard"),):
        assert ours[theirs] == pytest.approx(official[key], abs=1e-6)
    for metric in ("accuracy", "sensitivity", "specificity", "jaccard", "dice"):
        assert ours[metric] == pytest.approx(official[metric], abs=1e-6), metric


def test_cli_writes_per_case_csv_and_summary(folders: tuple[Path, Path], tmp_path: Path, capsys) -> None:
    pred, truth = folders
    out = tmp_path / "scores"
    assert main(["score", "--pred", str(pred), "--gt", str(truth), "--output", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["cases"] == 12
    assert (out / "per_case.csv").read_text().splitlines()[0].startswith("id,")
    assert "jaccard" in capsys.readouterr().out
    # a rerun replaces its own files, never refuses them
    assert main(["score", "--pred", str(pred), "--gt", str(truth), "--output", str(out)]) == 0


def test_a_missing_prediction_is_an_error_naming_the_case(folders: tuple[Path, Path], capsys) -> None:
    pred, truth = folders
    (pred / "ISIC_0000003.png").unlink()
    with pytest.raises(ValueError, match="ISIC_0000003"):
        pair_folders(pred, truth)
    assert main(["score", "--pred", str(pred), "--gt", str(truth)]) == 2
    assert "ISIC_0000003" in capsys.readouterr().err


def test_hand_worked_pair_and_extra_predictions_ignored(tmp_path: Path) -> None:
    truth, pred = tmp_path / "gt", tmp_path / "pred"
    truth.mkdir()
    pred.mkdir()
    t = np.zeros((4, 4), np.uint8)
    t[:2, :2] = 255  # 4 foreground pixels
    p = np.zeros((4, 4), np.uint8)
    p[:2, :3] = 255  # 6 predicted: TP 4, FP 2, FN 0, TN 10
    Image.fromarray(t).save(truth / "case_mask.png")
    Image.fromarray(p).save(pred / "case.png")
    Image.fromarray(p).save(pred / "other.png")
    result = score_folders(pred, truth)
    (case,) = result.cases
    assert case["jaccard"] == pytest.approx(4 / 6)
    assert case["dice"] == pytest.approx(8 / 10)
    assert case["accuracy"] == pytest.approx(14 / 16)
    assert "thresholded_jaccard" not in case  # ISIC 2018's column: for ISIC case ids only
    assert result.ignored == ["other"]


def test_volumes_are_scored_as_3d_cases(tmp_path: Path) -> None:
    import nibabel as nib

    truth, pred = tmp_path / "gt", tmp_path / "pred"
    truth.mkdir()
    pred.mkdir()
    t = np.zeros((6, 6, 4), np.uint8)
    t[1:4, 1:4, 1:3] = 1  # 18 voxels
    p = np.zeros_like(t)
    p[1:4, 1:4, 1:2] = 1  # 9 voxels, all inside: Jaccard 9/18
    affine = np.diag([0.8, 0.8, 3.0, 1.0])
    nib.save(nib.Nifti1Image(t, affine), truth / "spleen_1.nii.gz")
    nib.save(nib.Nifti1Image(p, affine), pred / "spleen_1.nii.gz")
    (case,) = score_folders(pred, truth).cases
    assert case["jaccard"] == pytest.approx(0.5)
    assert case["dice"] == pytest.approx(2 * 9 / 27)
