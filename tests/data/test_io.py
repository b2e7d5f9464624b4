"""Readers: the documented conversion rules and every bad-file case."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from hlfnet.data import read_image, read_mask
from hlfnet.data.io import load_label_volume, load_volume
from tests.data.helpers import lesion_pair, ras_affine, write_nifti


def test_rgb_and_grey_8bit_stay_uint8(tmp_path):
    image, _ = lesion_pair()
    Image.fromarray(image).save(tmp_path / "a.png")
    Image.fromarray(image[..., 0]).save(tmp_path / "g.bmp")
    assert read_image(tmp_path / "a.png").shape == (30, 40, 3)
    grey = read_image(tmp_path / "g.bmp")
    assert grey.shape == (30, 40, 1) and grey.dtype == np.uint8


def test_rgba_drops_alpha(tmp_path):
    image, _ = lesion_pair()
    rgba = np.dstack([image, np.full(image.shape[:2], 7, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    np.testing.assert_array_equal(read_image(tmp_path / "a.png"), image)


def test_palette_image_expands_through_palette(tmp_path):
    image, _ = lesion_pair()
    pal = Image.fromarray(image).quantize(8)
    pal.save(tmp_path / "p.png")
    out = read_image(tmp_path / "p.png")
    np.testing.assert_array_equal(out, np.asarray(pal.convert("RGB")))


def test_16bit_is_min_max_scaled_to_float(tmp_path):
    array = np.array([[1000, 2000], [3000, 5000]], np.uint16)
    Image.fromarray(array).save(tmp_path / "d.png")
    out = read_image(tmp_path / "d.png")
    assert out.dtype == np.float32 and out.shape == (2, 2, 1)
    np.testing.assert_allclose(out[..., 0], [[0, 0.25], [0.5, 1.0]])


def test_npy_gives_any_channel_count(tmp_path):
    np.save(tmp_path / "x.npy", np.arange(2 * 3 * 5, dtype=np.float64).reshape(2, 3, 5))
    out = read_image(tmp_path / "x.npy")
    assert out.shape == (2, 3, 5) and out.min() == 0 and out.max() == 1


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_truncated_image_is_named(tmp_path, suffix):
    image, _ = lesion_pair((64, 64))
    path = tmp_path / f"cut{suffix}"
    Image.fromarray(image).save(path)
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(ValueError, match=f"cut{suffix}.*(truncated|unreadable)"):
        read_image(path)


def test_not_an_image_and_missing_file(tmp_path):
    (tmp_path / "x.png").write_text("hello")
    with pytest.raises(ValueError, match="x.png"):
        read_image(tmp_path / "x.png")
    with pytest.raises(FileNotFoundError, match="nope.png"):
        read_image(tmp_path / "nope.png")


def test_multiframe_is_refused(tmp_path):
    frames = [Image.fromarray(np.full((4, 4), v, np.uint8)) for v in (0, 255)]
    frames[0].save(tmp_path / "m.tif", save_all=True, append_images=frames[1:])
    with pytest.raises(ValueError, match="m.tif.*multi-frame"):
        read_image(tmp_path / "m.tif")


def test_binary_masks_0_255_and_0_1(tmp_path):
    _, mask = lesion_pair()
    Image.fromarray(mask).save(tmp_path / "a.png")
    Image.fromarray((mask > 0).astype(np.uint8)).save(tmp_path / "b.png")
    a, b = read_mask(tmp_path / "a.png"), read_mask(tmp_path / "b.png")
    np.testing.assert_array_equal(a, b)
    assert set(np.unique(a)) == {0, 1}


def test_jpeg_mask_values_are_refused_with_the_values_then_rescued_by_threshold(tmp_path):
    yy, xx = np.mgrid[0:32, 0:32]
    mask = (((yy - 15.3) ** 2 + (xx - 16.7) ** 2) < 81).astype(np.uint8) * 255
    Image.fromarray(mask).save(tmp_path / "m.jpg", quality=60)
    with pytest.raises(ValueError, match=r"m\.jpg.*outside the declared binary label set"):
        read_mask(tmp_path / "m.jpg")
    fixed = read_mask(tmp_path / "m.jpg", mask_threshold=127)
    assert abs(int(fixed.sum()) - int(mask.sum() // 255)) < 10


def test_stray_values_are_listed(tmp_path):
    Image.fromarray(np.array([[0, 3], [252, 255]], np.uint8)).save(tmp_path / "m.png")
    with pytest.raises(ValueError, match=r"\[3, 252\]"):
        read_mask(tmp_path / "m.png")


def test_multiclass_masks(tmp_path):
    Image.fromarray(np.array([[0, 1], [2, 3]], np.uint8)).save(tmp_path / "m.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "m.png", num_classes=4), [[0, 1], [2, 3]])
    with pytest.raises(ValueError, match=r"m\.png.*\[3\].*0\.\.2"):
        read_mask(tmp_path / "m.png", num_classes=3)


def test_palette_mask_uses_indices_and_colour_mask_is_refused(tmp_path):
    pal = Image.fromarray(np.array([[0, 1], [1, 2]], np.uint8), "P")
    pal.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * 759)
    pal.save(tmp_path / "p.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "p.png", num_classes=3), [[0, 1], [1, 2]])
    Image.fromarray(np.array([[[255, 0, 0], [0, 0, 0]]], np.uint8)).save(tmp_path / "c.png")
    with pytest.raises(ValueError, match="c.png.*colour mask"):
        read_mask(tmp_path / "c.png")


def test_grey_rgb_mask_is_accepted(tmp_path):
    _, mask = lesion_pair()
    Image.fromarray(np.dstack([mask] * 3)).save(tmp_path / "m.png")
    assert read_mask(tmp_path / "m.png").max() == 1


def test_volume_nan_is_refused_with_count(tmp_path):
    data = np.zeros((4, 4, 3), np.float32)
    data[0, 0, 0] = np.nan
    data[1, 1, 1] = np.inf
    path = write_nifti(tmp_path / "v.nii.gz", data, ras_affine())
    with pytest.raises(ValueError, match=r"v\.nii\.gz: 2 NaN/inf"):
        load_volume(path)


def test_label_shape_and_affine_mismatch(tmp_path):
    image = write_nifti(tmp_path / "i.nii.gz", np.zeros((4, 4, 3), np.int16), ras_affine())
    data, meta = load_volume(image)
    bad_shape = write_nifti(tmp_path / "s.nii.gz", np.zeros((4, 4, 2), np.uint8), ras_affine())
    with pytest.raises(
        ValueError, match=r"s\.nii\.gz: label shape \(4, 4, 2\) differs from image .*i\.nii\.gz"
    ):
        load_label_volume(bad_shape, meta, data.shape, 2)
    bad_affine = write_nifti(tmp_path / "a.nii.gz", np.zeros((4, 4, 3), np.uint8), ras_affine((1, 1, 1)))
    with pytest.raises(ValueError, match=r"a\.nii\.gz: label affine differs"):
        load_label_volume(bad_affine, meta, data.shape, 2)


def test_truncated_nifti_is_named(tmp_path):
    path = write_nifti(
        tmp_path / "t.nii.gz", np.random.default_rng(0).normal(size=(20, 20, 20)), ras_affine()
    )
    path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(ValueError, match="t.nii.gz"):
        load_volume(path)


def test_multiclass_label_volume_and_stray_labels(tmp_path):
    image = write_nifti(tmp_path / "i.nii.gz", np.zeros((4, 4, 2), np.int16), ras_affine())
    labels = np.zeros((4, 4, 2), np.uint8)
    labels[0, 0, 0], labels[1, 1, 1] = 1, 2
    path = write_nifti(tmp_path / "l.nii.gz", labels, ras_affine())
    data, meta = load_volume(image)
    np.testing.assert_array_equal(load_label_volume(path, meta, data.shape, 3), labels)
    with pytest.raises(ValueError, match=r"l\.nii\.gz: mask values \[2\]"):
        load_label_volume(path, meta, data.shape, 2)
