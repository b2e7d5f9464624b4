"""Native-resolution plans end to end: sliding windows, 3-D training, prediction on another grid, scoring."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from hlfnet import create_model
from hlfnet.cli import main
from hlfnet.data import DataConfig
from hlfnet.evaluation import Predictor
from tests.data.helpers import write_nifti


def _patch_cfg(**changes) -> DataConfig:
    base = {
        "format": "folder",
        "root": "x",
        "preprocessing": "patch",
        "normalization": "rgb",
        "in_channels": 1,
        "patch_size": (32, 48),
    }
    return DataConfig(**{**base, **changes})


def test_sliding_window_equals_the_plain_forward_pass_when_one_window_covers_the_image():
    torch.manual_seed(0)
    model = create_model("hlfnet", in_channels=1, base_channels=4, depth=2).eval()
    image = (np.random.default_rng(0).random((32, 48)) * 255).astype(np.uint8)
    predictor = Predictor(model, _patch_cfg(), device="cpu")
    prediction = predictor.predict_image(image, keep_probabilities=True)
    with torch.no_grad():
        expected = torch.sigmoid(model(torch.from_numpy(image / 255.0).float()[None, None]))[0]
    np.testing.assert_allclose(prediction.probabilities, expected.numpy(), atol=1e-5)
    assert prediction.mask.shape == (32, 48)
    np.testing.assert_array_equal(prediction.mask, (expected[0].numpy() > 0.5).astype(np.uint8))


def test_sliding_windows_cover_an_image_larger_than_the_window_at_its_own_size():
    model = create_model("unet", in_channels=1, base_channels=4, depth=2).eval()
    predictor = Predictor(model, _patch_cfg(patch_size=(16, 16)), device="cpu")
    prediction = predictor.predict_image(np.zeros((37, 50), dtype=np.uint8), keep_probabilities=True)
    assert prediction.mask.shape == (37, 50) and prediction.probabilities.shape == (1, 37, 50)


def test_a_3d_network_needs_a_3d_plan():
    model = create_model("unet", in_channels=1, base_channels=4, depth=2, spatial_dims=3)
    with pytest.raises(ValueError, match="predicts with 2-D networks"):
        Predictor(model, _patch_cfg(), device="cpu")


def _volumes(root: Path, n: int = 3) -> Path:
    """MSD-layout CT-like volumes, 2 x 2 x 3 mm, a bright box (label 1) in each."""
    entries = []
    rng = np.random.default_rng(0)
    for i in range(n):
        data = rng.normal(-100, 20, (24, 20, 12)).astype(np.int16)
        label = np.zeros(data.shape, dtype=np.uint8)
        label[6 + i : 14 + i, 5:13, 3:9] = 1
        data[label == 1] = 200
        affine = np.diag([2.0, 2.0, 3.0, 1.0])
        write_nifti(root / "imagesTr" / f"case{i}.nii.gz", data, affine)
        write_nifti(root / "labelsTr" / f"case{i}.nii.gz", label, affine)
        entries.append({"image": f"./imagesTr/case{i}.nii.gz", "label": f"./labelsTr/case{i}.nii.gz"})
    meta = {"name": "t", "modality": {"0": "CT"}, "labels": {"0": "bg", "1": "box"}, "training": entries}
    (root / "dataset.json").write_text(json.dumps(meta))
    (root / "split.json").write_text(json.dumps({"train": ["case0", "case1"], "val": ["case2"], "test": []}))
    return root


def test_tiny_3d_train_predict_on_another_grid_and_score(tmp_path, capsys):
    root = _volumes(tmp_path / "data")
    run = tmp_path / "run"
    sets = [
        f"data.root={root}",
        f"data.split_file={root / 'split.json'}",
        f"data.cache_dir={tmp_path / 'cache'}",
        "data.patch_size=[16,16,8]",
        "data.patches_per_epoch=4",
        "model.base_channels=4",
        "model.depth=2",
        "train.max_epochs=2",
        "train.lr=0.01",
        "train.progress_bar=false",
    ]
    args = ["train", "--config", "patch_3d", "--run-dir", str(run)]
    assert main([*args, *[a for s in sets for a in ("--set", s)]]) == 0
    plan = json.loads((run / "plan.json").read_text())
    assert plan["spatial_dims"] == 3 and plan["normalization"] == "ct"
    assert plan["target_spacing"] == [2.0, 2.0, 3.0] and plan["patch_size"] == [16, 16, 8]
    sidecar = json.loads((run / "model.json").read_text())
    assert sidecar["kwargs"]["spatial_dims"] == 3 and sidecar["data"]["patch_size"] == [16, 16, 8]

    # another patient's grid: 1 x 1.5 x 2 mm, x stored flipped (LAS), another shape
    source = nib.load(str(root / "imagesTr" / "case2.nii.gz"))
    data = np.asarray(source.dataobj)[::-1]
    data = np.repeat(np.repeat(data, 2, axis=0), 2, axis=2)[:, :, :20]  # 48 x 20 x 20
    affine = np.diag([-1.0, 1.5, 2.0, 1.0])
    las = write_nifti(tmp_path / "in" / "other.nii.gz", data, affine)
    out = tmp_path / "out"
    assert main(["predict", "--model", str(run), "--input", str(las), "--output", str(out)]) == 0
    written = nib.load(str(out / "other.nii.gz"))
    assert written.shape == (48, 20, 20)
    np.testing.assert_allclose(written.affine, affine)
    assert nib.aff2axcodes(written.affine) == ("L", "A", "S")
    assert set(np.unique(np.asarray(written.dataobj)).tolist()) <= {0, 1}

    # the run's own validation case, scored by evaluate at the volume's own size
    capsys.readouterr()
    assert main(["evaluate", str(run), "--split", "val"]) == 0
    summary = json.loads((run / "evaluation" / "val" / "summary.json").read_text())
    assert summary["cases"] == 1

    # the report draws the evaluated slices at the volume's own size: rows A→P (y, 20), columns R→L (x, 24),
    # each slice through the box holding its 8 × 8 cross-section
    from hlfnet.evaluation.predictor import Predictor as RunPredictor
    from hlfnet.evaluation.report_cases import load_native_cases
    from hlfnet.experiment import load_run

    predictor = RunPredictor.from_run(load_run(run), tta=False)
    pair = type(
        "Pair",
        (),
        {
            "image": root / "imagesTr" / "case2.nii.gz",
            "files": (root / "imagesTr" / "case2.nii.gz",),
            "mask": root / "labelsTr" / "case2.nii.gz",
        },
    )
    rows = [("best", {"id": "case2:5", "volume": "case2", "slice_index": "5", "slice_jaccard": "0.5"})]
    (case,) = load_native_cases(predictor, predictor.cfg, {"case2": pair}, rows, volume=True)
    assert case.truth.shape == case.picture.shape == case.prediction.shape == (20, 24)
    assert int(case.truth.sum()) == 64 and 0.0 <= case.picture.min() and case.picture.max() <= 1.0
    assert main(["report", str(run), "--split", "val"]) == 0
    page = (run / "report.html").read_text()
    assert "alt='overlays'" in page and "at its own size" in page


def test_a_2d_native_run_reports_each_case_at_its_own_size(tmp_path):
    from tests.data.helpers import write_folder

    root = write_folder(tmp_path / "data", n=6, size=(40, 56))
    split = {"train": ["case0", "case1", "case2"], "val": ["case3"], "test": ["case4", "case5"]}
    (tmp_path / "split.json").write_text(json.dumps(split))
    run = tmp_path / "run"
    sets = [
        f"data.root={root}",
        f"data.split_file={tmp_path / 'split.json'}",
        f"data.cache_dir={tmp_path / 'cache'}",
        "data.patch_size=[32,32]",
        "data.patches_per_epoch=4",
        "model.base_channels=4",
        "model.depth=2",
        "train.max_epochs=1",
        "train.progress_bar=false",
    ]
    args = ["train", "--config", "patch_2d", "--run-dir", str(run)]
    assert main([*args, *[a for s in sets for a in ("--set", s)]]) == 0
    assert main(["report", str(run), "--split", "test"]) == 0
    page = (run / "report.html").read_text()
    assert "alt='overlays'" in page and "at its own size" in page and "patches [32, 32]" in page
