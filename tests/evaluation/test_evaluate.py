"""evaluate_run end to end on real data, checked against ISIC's own scorer and against the written NIfTI."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from hlfnet.evaluation.evaluate import evaluate_run, score_labels, task_metrics
from hlfnet.evaluation.metrics import BINARY_METRICS
from hlfnet.evaluation.predictor import Predictor

from .conftest import isic_files, make_run

segmentation = pytest.importorskip("isic_challenge_scoring.segmentation")


@pytest.mark.realdata
@pytest.mark.slow
def test_end_to_end_isic_scorer_on_written_pngs_equals_evaluate(
    trained_isic_run: Path, tmp_path: Path
) -> None:
    """Train tiny -> predict real ISIC images -> isic-challenge-scoring on the PNGs == hlfnet evaluate."""
    from tests.conftest import shared_data_root

    isic_root = shared_data_root() / "isic2017"
    test_ids = json.loads((trained_isic_run / "split.json").read_text())["test"]
    images, truth = tmp_path / "images", tmp_path / "truth"
    images.mkdir()
    truth.mkdir()
    for case_id in test_ids:
        image, mask = isic_files(isic_root, case_id)
        shutil.copy(image, images)
        shutil.copy(mask, truth)
    Predictor.from_path(trained_isic_run).predict(images, tmp_path / "pred")
    official = segmentation.SegmentationScore.from_dir(truth, tmp_path / "pred").macro_average

    result = evaluate_run(trained_isic_run, split="test", output=tmp_path / "eval")
    ours = result.summary["levels"]["original"]
    assert result.summary["cases"] == len(test_ids) == 6
    assert ours["jaccard"] > 0.3, "the tiny network learnt nothing: this comparison would be vacuous"
    for key in BINARY_METRICS:
        theirs = official["threshold_jaccard" if key == "thresholded_jaccard" else key]
        assert ours[key] == pytest.approx(float(theirs), abs=1e-6), key
    with (tmp_path / "eval" / "per_case.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["id"] for r in rows] == test_ids
    assert {"original_jaccard", "network_jaccard"} <= set(rows[0])
    assert "| original (primary) | 6 |" in (tmp_path / "eval" / "summary.md").read_text()


@pytest.mark.realdata
def test_spleen_per_slice_and_per_volume(spleen_root: Path, tmp_path: Path) -> None:
    data = {
        "format": "msd",
        "root": str(spleen_root),
        "image_size": [64, 64],
        "in_channels": 1,
        "cache_dir": str(tmp_path / "cache"),
    }
    run = make_run(tmp_path / "ct", data, in_channels=1, split={"train": [], "val": [], "test": ["spleen_1"]})
    result = evaluate_run(run, split="test", threshold=0.45)
    summary = json.loads((run / "evaluation" / "test" / "summary.json").read_text())
    assert summary["primary"] == "slice" and summary["counts"] == {"slice": 30, "volume": 1}
    assert len(result.slices) == 30 and (run / "evaluation" / "test" / "per_slice.csv").is_file()
    # the per-volume Dice is the 3-D Dice of the NIfTI that `predict` writes against the label file
    (written,) = Predictor.from_path(run, threshold=0.45).predict(
        spleen_root / "imagesTr" / "spleen_1.nii.gz", tmp_path / "out"
    )
    pred = np.asarray(nib.load(written).dataobj)
    label = np.asarray(nib.load(spleen_root / "labelsTr" / "spleen_1.nii.gz").dataobj).astype(np.uint8)
    # boundary metrics too: in the file's own voxel order with its zooms, equal to evaluate's (slice layout)
    zooms = tuple(float(z) for z in nib.load(written).header.get_zooms()[:3])
    expected = score_labels(pred, label, 2, surface=True, spacing=zooms)
    assert "thresholded_jaccard" not in summary["levels"]["volume"]  # ISIC's column, not the spleen's
    for key in (*task_metrics("msd"), "hd95", "assd", "nsd"):
        assert summary["levels"]["volume"][key] == pytest.approx(expected[key], abs=1e-6)


def test_bad_split(tiny_run: Path) -> None:
    with pytest.raises(ValueError, match="split must be one of"):
        evaluate_run(tiny_run, split="holdout")


def test_synthetic_run_is_scored_on_its_split_written_as_files(tiny_run: Path) -> None:
    """A synthetic run goes through the file path: its test split is written once as PNGs, then scored."""
    import torch

    from hlfnet.data import DataConfig, build_dataset
    from hlfnet.evaluation.metrics import scores_from_logits
    from hlfnet.models import load_model

    result = evaluate_run(tiny_run, split="test", progress=False)
    folder = tiny_run / "evaluation" / "synthetic-data" / "test"
    assert len(list((folder / "images").glob("*.png"))) == len(list((folder / "masks").glob("*.png"))) == 48
    assert result.summary["cases"] == 48 and (tiny_run / "evaluation" / "test" / "summary.json").is_file()
    # Same numbers as scoring the in-memory synthetic items directly (sizes match: nothing is resized).
    model, info = load_model(tiny_run / "model.safetensors")
    dataset = build_dataset(DataConfig.from_dict(info["data"]), "test", augment=False)
    with torch.no_grad():
        batch = torch.stack([dataset[i]["image"] for i in range(len(dataset))])
        masks = torch.stack([dataset[i]["mask"] for i in range(len(dataset))])
        direct = scores_from_logits(model(batch), masks)["dice"].mean().item()
    assert result.summary["levels"]["network"]["dice"] == pytest.approx(direct, abs=1e-6)


@pytest.mark.realdata
def test_run_split_ids_missing_from_the_data(isic_root: Path, tmp_path: Path) -> None:
    data = {"format": "isic2017", "root": str(isic_root), "image_size": [32, 48], "cache_dir": str(tmp_path)}
    run = make_run(tmp_path / "r", data, split={"train": [], "val": ["ISIC_9999999"], "test": []})
    with pytest.raises(ValueError, match=r"not in the data, e.g. 'ISIC_9999999'"):
        evaluate_run(run, split="val")
