"""2-D patches of volumes (nnU-Net's ``2d``): in-plane target spacing, slice patches, slice-wise sliding windows."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
import torch

from hlfnet import create_model
from hlfnet.cli import main
from hlfnet.data import DataConfig
from hlfnet.data.patches import PatchDataset
from hlfnet.data.plan import Case, full_target, make_plan
from hlfnet.evaluation import Predictor
from hlfnet.evaluation.predictor.windows import window_probabilities
from tests.data.helpers import write_nifti
from tests.engine.test_patch_pipeline import _volumes


def _slice_cfg(root, tmp_path, **changes) -> DataConfig:
    base = dict(
        format="msd",
        root=str(root),
        split_file=str(root / "split.json"),
        cache_dir=str(tmp_path / "cache"),
        preprocessing="patch",
        spatial_dims=2,
    )
    return DataConfig(**{**base, **changes})


def test_the_plan_resamples_in_plane_and_keeps_each_slice_spacing(tmp_path):
    root = _volumes(tmp_path / "data")  # 24 x 20 x 12 voxels of 2 x 2 x 3 mm
    plan = make_plan(_slice_cfg(root, tmp_path), base_channels=4, depth=2)
    assert plan.spatial_dims == 2 and plan.target_spacing == [2.0, 2.0]
    assert plan.median_shape == [24, 20] and len(plan.patch_size) == 2
    assert full_target([1.0, 1.5], (2.0, 2.0, 3.0)) == (1.0, 1.5, 3.0)
    assert full_target(None, (2.0, 2.0, 3.0)) is None
    with pytest.raises(ValueError, match=r"two in-plane spacings"):
        _slice_cfg(root, tmp_path, target_spacing=(1.0, 1.0, 3.0))


def test_training_patches_are_parts_of_one_axial_slice(tmp_path):
    # slice z holds the value z everywhere: a patch from one slice holds one value only
    image = np.broadcast_to(np.arange(6, dtype=np.float32), (1, 20, 18, 6)).copy()
    label = np.zeros((20, 18, 6), dtype=np.int64)
    label[5:9, 5:9, 2] = 1
    cfg = DataConfig(
        format="msd",
        root=str(tmp_path),
        preprocessing="patch",
        spatial_dims=2,
        patch_size=(16, 16),
        patches_per_epoch=40,
        rotate_degrees=0.0,
        scale_range=(1.0, 1.0),
        augment=True,
    )
    assert cfg.is_slice_plan and cfg.window_size == (16, 16, 1)
    ds = PatchDataset([Case("c", image, label, None)], cfg)
    for i in range(len(ds)):
        item = ds[i]
        assert item["image"].shape == (1, 16, 16) and item["mask"].shape == (1, 16, 16)
        values = torch.unique(torch.round(item["image"] * 10) / 10)  # intensity augmentation scales slightly
        assert float(values.max() - values.min()) < 1.0  # one slice, not a mix of slices


def test_slice_windows_equal_the_plain_forward_pass_of_each_slice():
    torch.manual_seed(0)
    model = create_model("unet", in_channels=1, base_channels=4, depth=2).eval()
    cfg = DataConfig(
        format="msd",
        root="x",
        preprocessing="patch",
        spatial_dims=2,
        patch_size=(16, 24),
        normalization="zscore",
    )
    predictor = Predictor(model, cfg, device="cpu", tta=False)
    volume = torch.randn(1, 16, 24, 5)  # one window covers each 16 x 24 slice
    probabilities = window_probabilities(predictor, volume)
    assert probabilities.shape == (1, 16, 24, 5)
    with torch.no_grad():
        for z in range(5):
            expected = torch.sigmoid(model(volume[None, :, :, :, z]))[0]
            np.testing.assert_allclose(probabilities[..., z].numpy(), expected.numpy(), atol=1e-5)


def test_tiny_slice_plan_trains_and_predicts_another_grid(tmp_path):
    root = _volumes(tmp_path / "data")
    run = tmp_path / "run"
    sets = [
        "data.format=msd",
        f"data.root={root}",
        f"data.split_file={root / 'split.json'}",
        f"data.cache_dir={tmp_path / 'cache'}",
        "data.patch_size=[16,16]",
        "data.patches_per_epoch=6",
        "model.base_channels=4",
        "model.depth=2",
        "train.max_epochs=2",
        "train.progress_bar=false",
    ]
    assert (
        main(
            ["train", "--config", "patch_2d", "--run-dir", str(run), *[a for s in sets for a in ("--set", s)]]
        )
        == 0
    )
    plan = json.loads((run / "plan.json").read_text())
    assert (
        plan["spatial_dims"] == 2 and plan["target_spacing"] == [2.0, 2.0] and plan["normalization"] == "ct"
    )
    # another grid: 1 x 1.5 x 2 mm, x flipped (LAS): written back with its own shape and affine
    source = nib.load(str(root / "imagesTr" / "case2.nii.gz"))
    data = np.repeat(np.asarray(source.dataobj)[::-1], 2, axis=0)[:, :, :10]  # 48 x 20 x 10
    affine = np.diag([-1.0, 1.5, 2.0, 1.0])
    las = write_nifti(tmp_path / "in" / "other.nii.gz", data, affine)
    assert main(["predict", "--model", str(run), "--input", str(las), "--output", str(tmp_path / "out")]) == 0
    written = nib.load(str(tmp_path / "out" / "other.nii.gz"))
    assert written.shape == (48, 20, 10) and nib.aff2axcodes(written.affine) == ("L", "A", "S")
    np.testing.assert_allclose(written.affine, affine)
    assert main(["evaluate", str(run), "--split", "val"]) == 0
    summary = json.loads((run / "evaluation" / "val" / "summary.json").read_text())
    assert summary["cases"] == 1
