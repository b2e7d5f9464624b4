"""Inference preprocessing equals training preprocessing; volumes slice and restack with their geometry."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch
from PIL import Image

from hlfnet.data import DataConfig, build_dataset, preprocess_image, slices_to_volume, volume_to_slices
from hlfnet.data.preprocess import to_model_channels
from tests.data.helpers import ct_volume, lesion_pair, ras_affine, write_folder, write_nifti


def test_preprocess_image_matches_the_training_items_exactly(tmp_path):
    root = write_folder(tmp_path / "f", n=4, size=(50, 70))
    cfg = DataConfig(
        format="folder",
        root=str(root),
        image_size=(32, 48),
        cache_dir=str(tmp_path / "c"),
        split_fractions=(0.5, 0.25, 0.25),
    )
    ds = build_dataset(cfg, "train", augment=False)
    assert ds.in_channels == 4
    for i in range(len(ds)):
        item = ds[i]
        tensor, original = preprocess_image(root / "images" / f"{item['id']}.png", cfg)
        assert original == (50, 70)
        assert torch.equal(tensor, item["image"])


def test_grey_into_a_four_channel_model_is_replicated_plus_grey():
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4)
    out = to_model_channels(grey[..., None], 4)
    assert out.shape == (4, 3, 4)
    for c in range(4):
        np.testing.assert_array_equal(out[c], grey)


def test_grey_channel_is_pillow_luma_of_rgb():
    image, _ = lesion_pair()
    out = to_model_channels(image, 4)
    np.testing.assert_array_equal(out[3], np.asarray(Image.fromarray(image).convert("L")))
    np.testing.assert_array_equal(out[:3], image.transpose(2, 0, 1))


def test_array_input_and_channel_mismatch():
    image, _ = lesion_pair()
    tensor, size = preprocess_image(image, DataConfig(image_size=(16, 16)))
    assert tensor.shape == (4, 16, 16) and tensor.dtype == torch.float32 and size == (30, 40)
    assert float(tensor.min()) >= 0 and float(tensor.max()) <= 1
    with pytest.raises(ValueError, match="2 channel"):
        preprocess_image(np.zeros((8, 8, 2), np.uint8), DataConfig(image_size=(8, 8)))


def _lps(affine: np.ndarray, shape) -> np.ndarray:
    """The same voxels stored with x and y flipped (LPS storage order)."""
    flip = np.diag([-1.0, -1.0, 1.0, 1.0])
    flip[0, 3], flip[1, 3] = shape[0] - 1, shape[1] - 1
    return affine @ flip


def test_slices_have_one_orientation_whatever_the_storage_order(tmp_path):
    data, label = ct_volume((20, 16, 6))
    cfg = DataConfig(format="nifti", root=str(tmp_path), image_size=(16, 20))
    ras = write_nifti(tmp_path / "ras.nii.gz", data, ras_affine())
    lps = write_nifti(tmp_path / "lps.nii.gz", data[::-1, ::-1].copy(), _lps(ras_affine(), data.shape))
    a, b = volume_to_slices(ras, cfg), volume_to_slices(lps, cfg)
    assert a.shape == (6, 1, 16, 20)
    assert torch.equal(a, b)
    # Radiological view (PLS): columns run from patient right to left, so RAS +x (towards the patient's
    # right) maps to low columns; rows run anterior (+y) to posterior.
    organ_cols = np.nonzero(label[:, :, 3].T[::-1, ::-1].any(axis=0))[0]
    assert organ_cols.max() < 10  # the organ is at high x in RAS, so on the left half of the image
    fg = (a[3, 0] > 0.95).any(dim=0).nonzero().flatten().numpy()
    assert set(fg) == set(organ_cols)
    assert a.min() == 0 and a.max() == 1


def test_ct_window_and_min_max():
    # Without an affine the array is taken as already in the slice layout (rows, cols, slices).
    hu = np.array([-1000, -57, -57, 53.5, 53.5, 164, 164, 2000], np.float32)
    data = np.repeat(hu[:, None, None], 8, axis=1)  # rows vary, columns repeat, one slice
    window = DataConfig(format="nifti", root="/x", image_size=(8, 8), ct_window=(-57, 164))
    out = volume_to_slices(data, window)
    assert out.shape == (1, 1, 8, 8)
    np.testing.assert_allclose(out[0, 0, :, 3].numpy(), [0, 0, 0, 0.5, 0.5, 1, 1, 1], atol=1e-6)
    minmax = DataConfig(format="nifti", root="/x", image_size=(8, 8))
    np.testing.assert_allclose(
        volume_to_slices(data, minmax)[0, 0, :, 3].numpy(), (hu + 1000) / 3000, atol=1e-6
    )


def test_nan_volume_array_is_refused():
    data = np.zeros((4, 4, 2), np.float32)
    data[1, 1, 1] = np.nan
    with pytest.raises(ValueError, match="1 NaN/inf"):
        volume_to_slices(data, DataConfig(format="nifti", root="/x", image_size=(8, 8)))


def test_stacking_back_gives_the_source_geometry(tmp_path):
    data, label = ct_volume((20, 16, 6))
    for name, affine in (("ras", ras_affine()), ("lps", _lps(ras_affine(), data.shape))):
        stored_data = data if name == "ras" else data[::-1, ::-1].copy()
        stored_label = label if name == "ras" else label[::-1, ::-1].copy()
        image = write_nifti(tmp_path / f"{name}.nii.gz", stored_data, affine)
        labels = write_nifti(tmp_path / f"{name}_l.nii.gz", stored_label, affine)
        cfg = DataConfig(format="nifti", root=str(tmp_path), image_size=(32, 40))
        from hlfnet.data.preprocess import labels_to_slices

        pred = labels_to_slices(np.asarray(nib.load(labels).dataobj), affine, cfg.image_size)
        out = slices_to_volume(pred.numpy(), image, tmp_path / "out" / f"{name}_pred.nii.gz")
        written = nib.load(out)
        assert written.shape == stored_data.shape
        np.testing.assert_allclose(written.affine, affine)
        assert written.get_data_dtype() == np.uint8
        np.testing.assert_array_equal(np.asarray(written.dataobj), stored_label)
        assert written.header.get_zooms() == nib.load(image).header.get_zooms()
    subset = slices_to_volume(pred[2:4].numpy(), image, tmp_path / "s.nii.gz", slice_indices=[2, 3])
    sub = np.asarray(nib.load(subset).dataobj)
    assert sub[..., [0, 1, 4, 5]].sum() == 0 and sub.sum() > 0
    with pytest.raises(ValueError, match="6 axial slices"):
        slices_to_volume(pred[:3].numpy(), image, tmp_path / "x.nii.gz")


def test_in_channels_without_a_source_reads_the_first_file(tmp_path):
    from hlfnet.data import resolve_in_channels

    colour = write_folder(tmp_path / "c", n=1)
    grey = write_folder(tmp_path / "g", n=1, grey=True)
    assert resolve_in_channels(DataConfig(format="folder", root=str(colour))) == 4
    assert resolve_in_channels(DataConfig(format="folder", root=str(grey))) == 1
    assert resolve_in_channels(DataConfig(format="folder", root=str(grey), in_channels=3)) == 3
    assert resolve_in_channels(DataConfig()) == 4
    four_d = np.zeros((4, 4, 2, 3), np.float32)
    write_nifti(tmp_path / "v" / "images" / "a.nii.gz", four_d, ras_affine())
    write_nifti(tmp_path / "v" / "labels" / "a.nii.gz", np.zeros((4, 4, 2), np.uint8), ras_affine())
    assert resolve_in_channels(DataConfig(format="nifti", root=str(tmp_path / "v"))) == 3
