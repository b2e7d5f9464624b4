"""The native-resolution plan: values derived from the data against hand-computed ones, and its errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from hlfnet.data import DataConfig
from hlfnet.data.plan import (
    fit_patch_size,
    foreground_statistics,
    load_case,
    make_plan,
    normalize,
    read_modality,
    target_spacing,
)
from tests.data.helpers import write_nifti


def test_target_spacing_is_the_median_for_isotropic_data():
    spacings = np.array([[1.0, 1.0, 1.0], [1.0, 1.2, 2.0], [0.8, 1.0, 2.5]])
    shapes = np.array([[100, 100, 100]] * 3)
    target, note = target_spacing(spacings, shapes)
    assert target == pytest.approx([1.0, 1.0, 2.0])  # medians by hand; 2.0 < 3 x 1.0: not anisotropic
    assert note == "median spacing"


def test_target_spacing_of_anisotropic_data_takes_the_10th_percentile_of_the_coarse_axis():
    # z: 5, 4, 3, 2.5 mm (median 3.5 > 3 x 0.8) and 40 slices against 512 pixels: nnU-Net's anisotropic case
    spacings = np.array([[0.8, 0.8, 5.0], [0.8, 0.8, 4.0], [0.8, 0.8, 3.0], [0.8, 0.8, 2.5]])
    shapes = np.array([[512, 512, 40]] * 4)
    target, note = target_spacing(spacings, shapes)
    # 10th percentile of [2.5, 3, 4, 5] by linear interpolation: position 0.1 x 3 = 0.3 -> 2.5 + 0.3 x 0.5
    assert target == pytest.approx([0.8, 0.8, 2.65])
    assert note.startswith("anisotropic: axis 2")


def test_target_spacing_keeps_the_median_when_the_coarse_axis_has_many_voxels():
    # z coarse (4 mm vs 1 mm) but with as many voxels along z as in-plane: not the anisotropic rule
    spacings = np.array([[1.0, 1.0, 4.0]] * 3)
    shapes = np.array([[64, 64, 64]] * 3)
    assert target_spacing(spacings, shapes)[0] == pytest.approx([1.0, 1.0, 4.0])


def test_foreground_statistics_by_hand():
    low, high, mean, std = foreground_statistics([np.arange(100.0), np.arange(100.0, 200.0)])
    # pooled 0..199: linear percentiles at positions 0.005 x 199 and 0.995 x 199
    assert low == pytest.approx(0.995)
    assert high == pytest.approx(198.005)
    assert mean == pytest.approx(99.5)
    assert std == pytest.approx(math.sqrt((200**2 - 1) / 12))  # population std of 0..n-1


def test_foreground_statistics_refuse_no_foreground():
    with pytest.raises(ValueError, match="no foreground voxels"):
        foreground_statistics([np.zeros(0)])


def test_ct_normalisation_clips_then_scores():
    image = np.array([[[-1000.0, 0.0, 50.0, 2000.0]]])  # (C=1, 1, 4)
    out = normalize(image, "ct", [(-100.0, 100.0, 20.0, 40.0)])
    assert out.ravel().tolist() == pytest.approx(
        [(-100 - 20) / 40, (0 - 20) / 40, (50 - 20) / 40, (100 - 20) / 40]
    )


def test_zscore_and_rgb_normalisation():
    image = np.array([[[1.0, 3.0]], [[10.0, 10.0]]])
    z = normalize(image, "zscore")
    assert z[0].ravel().tolist() == pytest.approx([-1.0, 1.0])  # mean 2, std 1
    assert z[1].ravel().tolist() == pytest.approx([0.0, 0.0])  # constant channel: std floored, no NaN
    assert normalize(np.array([[[0.0, 255.0]]]), "rgb").ravel().tolist() == pytest.approx([0.0, 1.0])
    with pytest.raises(ValueError, match="data.normalization"):
        normalize(image, "minmax")


def test_patch_size_shrinks_the_largest_axis_until_two_patches_fit():
    # 300 bytes x 8 channels x 2 patches x voxels <= budget; start 128 x 112 x 96 (multiples of 16)
    budget = 300 * 8 * 2 * (96 * 96 * 96)
    patch, batch = fit_patch_size([120, 100, 90], 3, 8, 4, budget)
    # 128,112,96 -> 112,112,96 -> 96,112,96 -> 96,96,96 (= budget): stop
    assert (patch, batch) == ([96, 96, 96], 2)


def test_2d_batch_is_what_fits_between_2_and_12():
    one = 300 * 16 * 256 * 256
    assert fit_patch_size([500, 500], 2, 16, 4, 5 * one, [256, 256]) == ([256, 256], 5)
    assert fit_patch_size([500, 500], 2, 16, 4, 100 * one, [256, 256]) == ([256, 256], 12)
    assert fit_patch_size([500, 500], 2, 16, 4, 1, [256, 256]) == ([256, 256], 2)


def _ct_dataset(root: Path, spacings: list[tuple[float, float, float]]) -> Path:
    entries = []
    for i, spacing in enumerate(spacings):
        data = np.full((12, 10, 8), -500, dtype=np.int16)
        label = np.zeros((12, 10, 8), dtype=np.uint8)
        label[4:8, 3:7, 2:6] = 1
        data[label == 1] = 100 + 10 * i  # foreground of case i: all voxels 100 + 10 i
        affine = np.diag([*spacing, 1.0])
        write_nifti(root / "imagesTr" / f"c{i}.nii.gz", data, affine)
        write_nifti(root / "labelsTr" / f"c{i}.nii.gz", label, affine)
        entries.append({"image": f"./imagesTr/c{i}.nii.gz", "label": f"./labelsTr/c{i}.nii.gz"})
    meta = {"name": "t", "modality": {"0": "CT"}, "labels": {"0": "bg", "1": "fg"}, "training": entries}
    (root / "dataset.json").write_text(json.dumps(meta))
    return root


def test_make_plan_on_synthetic_ct_volumes(tmp_path):
    root = _ct_dataset(tmp_path / "ct", [(1.0, 1.0, 2.0), (1.0, 1.0, 3.0), (1.0, 1.0, 4.0)])
    cfg = DataConfig(
        format="msd",
        root=str(root),
        preprocessing="patch",
        spatial_dims=3,
        split_fractions=(1.0, 0.0, 0.0),
        cache_dir=str(tmp_path / "cache"),
    )
    plan = make_plan(cfg, base_channels=8, depth=2)
    assert read_modality(root) == "CT"
    assert plan.normalization == "ct"
    assert plan.target_spacing == pytest.approx([1.0, 1.0, 3.0])  # medians
    # 64 foreground voxels per case (4 x 4 x 4), values 100, 110, 120: pooled percentiles and moments by hand
    low, high, mean, std = plan.intensity_stats[0]
    assert (low, high) == (pytest.approx(100.0), pytest.approx(120.0))
    assert mean == pytest.approx(110.0)
    assert std == pytest.approx(math.sqrt(200 / 3))
    # median shape at 1 x 1 x 3 mm: z of 8 slices at 2, 3, 4 mm -> 5.33, 8, 10.67 -> median 8
    assert plan.median_shape == [12, 10, 8]
    assert [c["spacing"] for c in plan.cases] == [[1.0, 1.0, 2.0], [1.0, 1.0, 3.0], [1.0, 1.0, 4.0]]


def test_load_case_resamples_to_the_target_spacing(tmp_path):
    root = _ct_dataset(tmp_path / "ct", [(1.0, 1.0, 2.0)])
    cfg = DataConfig(
        format="msd",
        root=str(root),
        preprocessing="patch",
        spatial_dims=3,
        split_fractions=(1.0, 0.0, 0.0),
        cache_dir=str(tmp_path / "cache"),
        normalization="ct",
        intensity_stats=((0.0, 200.0, 100.0, 50.0),),
        target_spacing=(2.0, 2.0, 1.0),
        patch_size=(8, 8, 8),
    )
    from hlfnet.data.splits import split_pairs

    case = load_case(split_pairs(cfg, "train")[0], cfg)
    # 12 x 10 x 8 voxels of 1 x 1 x 2 mm at 2 x 2 x 1 mm: 6 x 5 x 16
    assert case.image.shape == (1, 6, 5, 16) and case.label.shape == (6, 5, 16)
    assert case.geometry.stored_shape == (12, 10, 8)
    # background -500 clipped to 0: (0 - 100) / 50 = -2 far from the organ
    assert case.image[0, 0, 0, 0] == pytest.approx(-2.0)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"spatial_dims": 3, "format": "folder"}, "data.spatial_dims=3 needs a volume format"),
        ({"spatial_dims": 4}, "data.spatial_dims must be 2 or 3"),
        ({"patch_size": (64,)}, "data.patch_size must have 2 sizes"),
        ({"foreground_oversample": 1.5}, "data.foreground_oversample"),
        ({"scale_range": (2.0, 1.0)}, "data.scale_range"),
    ],
)
def test_patch_plan_settings_are_checked(changes, message):
    base = {"format": "folder", "root": "x", "preprocessing": "patch"}
    with pytest.raises(ValueError, match=message):
        DataConfig(**{**base, **changes})


def test_resize_plan_refuses_3d():
    with pytest.raises(ValueError, match="spatial_dims=3 needs data.preprocessing: patch"):
        DataConfig(format="msd", root="x", spatial_dims=3)


def test_plan_command_prints_writes_and_never_replaces_a_foreign_file(tmp_path, capsys):
    from hlfnet.cli import main

    root = _ct_dataset(tmp_path / "ct", [(1.0, 1.0, 2.0), (1.0, 1.0, 4.0)])
    args = [
        "plan",
        "--data",
        str(root),
        "--set",
        "data.split_fractions=[1,0,0]",
        "--set",
        f"data.cache_dir={tmp_path}",
    ]
    out = tmp_path / "out" / "plan.json"
    assert main([*args, "--output", str(out)]) == 0
    written = json.loads(out.read_text())
    assert written["spatial_dims"] == 3 and written["target_spacing"] == pytest.approx([1.0, 1.0, 3.0])
    assert "target spacing: [1.0, 1.0, 3.0]" in capsys.readouterr().out
    assert main([*args, "--output", str(out)]) == 2  # exists: --overwrite needed
    assert main([*args, "--output", str(out), "--overwrite"]) == 0
    foreign = tmp_path / "out" / "notes.json"
    foreign.write_text("mine")
    assert main([*args, "--output", str(foreign), "--overwrite"]) == 2
    assert foreign.read_text() == "mine"
