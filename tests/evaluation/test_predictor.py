"""Predictor: written masks, channel conversion, NIfTI geometry, TTA, largest component and every bad input."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from PIL import Image

from hlfnet.evaluation.predictor import (
    MANIFEST_NAME,
    TTA_FLIPS,
    Predictor,
    collect_inputs,
    largest_component,
    write_mask_png,
)

from .conftest import make_run


def _images(folder: Path, sizes: list[tuple[int, int]], mode: str = "RGB") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i, (h, w) in enumerate(sizes):
        shape = (h, w, 3) if mode == "RGB" else (h, w)
        path = folder / f"case_{i}.png"
        Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8), mode).save(path)
        paths.append(path)
    return paths


def test_folder_written_as_png_0_255_at_original_size(tiny_run: Path, tmp_path: Path) -> None:
    sizes = [(37, 53), (64, 48), (20, 90)]
    _images(tmp_path / "in", sizes)
    predictor = Predictor.from_path(tiny_run, batch_size=2, threshold=0.3)
    written = predictor.predict(tmp_path / "in", tmp_path / "out", save_probabilities=True)
    assert [p.name for p in written] == ["case_0.png", "case_1.png", "case_2.png"]
    for path, (h, w) in zip(written, sizes, strict=True):
        image = Image.open(path)
        assert image.format == "PNG" and image.mode == "L" and image.size == (w, h)
        assert set(np.unique(np.asarray(image)).tolist()) <= {0, 255}
        prob = Image.open(tmp_path / "out" / "probabilities" / path.name)
        assert prob.size == (w, h)
        # the mask is the probability map thresholded (up to the 8-bit rounding of the map)
        p = np.asarray(prob) / 255.0
        m = np.asarray(image) > 0
        assert ((p > 0.3 + 1 / 255) <= m).all() and (m <= (p > 0.3 - 1 / 255)).all()
    manifest = json.loads((tmp_path / "out" / MANIFEST_NAME).read_text())
    assert manifest["model"] == "hlfnet" and manifest["files"] == [p.name for p in written]


def test_masks_are_never_written_as_jpeg(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="PNG only"):
        write_mask_png(np.zeros((4, 4), np.uint8), tmp_path / "mask.jpg")


def test_batching_does_not_change_predictions(tiny_run: Path, tmp_path: Path) -> None:
    paths = _images(tmp_path / "in", [(40, 40)] * 5)
    one = [p.mask for p in Predictor.from_path(tiny_run, batch_size=1, workers=0).predict_images(paths)]
    many = [p.mask for p in Predictor.from_path(tiny_run, batch_size=4, workers=2).predict_images(paths)]
    assert all(np.array_equal(a, b) for a, b in zip(one, many, strict=True))


def test_grey_image_into_four_channel_model_converted_like_training(tiny_run: Path, tmp_path: Path) -> None:
    (grey,) = _images(tmp_path / "grey", [(30, 40)], mode="L")
    rgb = tmp_path / "rgb.png"
    Image.open(grey).convert("RGB").save(rgb)
    predictor = Predictor.from_path(tiny_run)
    x_grey, _, _ = predictor.attention(grey)
    x_rgb, _, _ = predictor.attention(rgb)
    assert x_grey.shape == (4, 32, 48)
    # grey -> RGB by replication plus the grey channel: the same input as the RGB copy of that grey image
    assert torch.equal(x_grey, x_rgb)
    assert torch.equal(x_grey[0], x_grey[3])
    pred = predictor.predict_image(grey)
    assert np.array_equal(pred.mask, predictor.predict_image(rgb).mask)


def test_tta_is_the_mean_over_flips(tiny_run: Path) -> None:
    plain = Predictor.from_path(tiny_run)
    tta = Predictor.from_path(tiny_run, tta=True)
    x = torch.rand(2, 4, 32, 48)
    expected = torch.stack(
        [plain.probabilities(x.flip(d)).flip(d) if d else plain.probabilities(x) for d in TTA_FLIPS]
    )
    assert torch.allclose(tta.probabilities(x), expected.mean(0), atol=1e-6)


def test_largest_component_binary_and_multiclass() -> None:
    mask = np.zeros((10, 10), np.uint8)
    mask[0:2, 0:2] = 1  # 4 pixels
    mask[5:9, 5:9] = 1  # 16 pixels
    mask[3, 3] = 1  # touches (2, 2) diagonally only: joined with full connectivity
    kept = largest_component(mask)
    assert kept[5:9, 5:9].all() and not kept[0:2, 0:2].any() and kept.sum() == 16
    multi = np.zeros((6, 6), np.uint8)
    multi[0, 0] = 2
    multi[4:6, 4:6] = 2
    multi[0:2, 3:5] = 1
    out = largest_component(multi, num_classes=3)
    assert out[0, 0] == 0 and (out[4:6, 4:6] == 2).all() and (out[0:2, 3:5] == 1).all()
    assert np.array_equal(largest_component(np.zeros((3, 3, 3), np.uint8)), np.zeros((3, 3, 3), np.uint8))


def test_multiclass_masks_hold_class_indices(tmp_path: Path) -> None:
    run = make_run(
        tmp_path / "mc", {"format": "synthetic", "image_size": [32, 32], "num_classes": 3}, out_channels=3
    )
    _images(tmp_path / "in", [(20, 24)])
    (path,) = Predictor.from_path(run).predict(tmp_path / "in", tmp_path / "out")
    assert set(np.unique(np.asarray(Image.open(path))).tolist()) <= {0, 1, 2}


# ---------------------------------------------------------------------------------------------- bad input


def test_folder_with_no_images(tiny_run: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"empty: no images"):
        Predictor.from_path(tiny_run).predict(tmp_path / "empty", tmp_path / "out")
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        Predictor.from_path(tiny_run).predict(tmp_path / "missing", tmp_path / "out")


def test_non_image_file_among_images(tiny_run: Path, tmp_path: Path) -> None:
    _images(tmp_path / "in", [(20, 20)])
    (tmp_path / "in" / "notes.txt").write_text("not an image")
    with pytest.raises(ValueError, match=r"not images or NIfTI.*notes\.txt"):
        Predictor.from_path(tiny_run).predict(tmp_path / "in", tmp_path / "out")
    # a pattern chooses the images and leaves the rest alone
    assert len(collect_inputs(tmp_path / "in", "*.png")[0]) == 1
    # a file named like an image that is not one
    (tmp_path / "in" / "notes.txt").unlink()
    (tmp_path / "in" / "fake.png").write_text("not a png")
    with pytest.raises(ValueError, match=r"fake\.png: unreadable"):
        Predictor.from_path(tiny_run).predict(tmp_path / "in", tmp_path / "out")


def test_output_folder_with_predictions_is_refused_unless_overwrite(tiny_run: Path, tmp_path: Path) -> None:
    _images(tmp_path / "in", [(20, 20)])
    predictor = Predictor.from_path(tiny_run)
    predictor.predict(tmp_path / "in", tmp_path / "out")
    with pytest.raises(FileExistsError, match=r"out: already holds predictions.*--overwrite"):
        predictor.predict(tmp_path / "in", tmp_path / "out")
    assert len(predictor.predict(tmp_path / "in", tmp_path / "out", overwrite=True)) == 1


def test_image_whose_channels_the_model_cannot_take(tiny_run: Path, tmp_path: Path) -> None:
    array = np.random.default_rng(0).random((16, 16, 2)).astype(np.float32)
    np.save(tmp_path / "two_channels.npy", array)
    with pytest.raises(ValueError, match=r"two_channels\.npy: image has 2 channel"):
        Predictor.from_path(tiny_run).predict(tmp_path / "two_channels.npy", tmp_path / "out")


def test_2d_model_given_4d_nifti(tmp_path: Path) -> None:
    run = make_run(
        tmp_path / "ct",
        {"format": "msd", "root": str(tmp_path), "image_size": [32, 32], "in_channels": 1},
        in_channels=1,
    )
    path = tmp_path / "four_d.nii.gz"
    nib.save(
        nib.Nifti1Image(np.random.default_rng(0).random((10, 12, 4, 3)).astype(np.float32), np.eye(4)), path
    )
    with pytest.raises(
        ValueError, match=r"four_d\.nii\.gz: 4-D volume .*\(3 channel.*takes slices with 1 channel"
    ):
        Predictor.from_path(run).predict(path, tmp_path / "out")


def test_predictor_refuses_bad_options(tiny_run: Path) -> None:
    with pytest.raises(ValueError, match="threshold"):
        Predictor.from_path(tiny_run, threshold=1.5)
    with pytest.raises(ValueError, match="backend"):
        Predictor.from_path(tiny_run, backend="tensorrt")
    with pytest.raises(
        FileNotFoundError, match=r"export/model\.onnx: not found; write it with `hlfnet export"
    ):
        Predictor.from_path(tiny_run, backend="onnx")


@pytest.mark.realdata
def test_nifti_round_trip_on_real_ct(spleen_root: Path, tmp_path: Path) -> None:
    source = spleen_root / "imagesTr" / "spleen_1.nii.gz"
    data = {"format": "msd", "root": str(spleen_root), "image_size": [64, 64], "in_channels": 1}
    run = make_run(tmp_path / "ct", data, in_channels=1)
    (written,) = Predictor.from_path(run, batch_size=16).predict(
        source, tmp_path / "out", save_probabilities=True
    )
    reference, prediction = nib.load(source), nib.load(written)
    assert written.name == "spleen_1.nii.gz"
    assert prediction.shape == reference.shape == (122, 101, 30)
    assert np.allclose(prediction.affine, reference.affine)
    assert np.array_equal(prediction.header.get_zooms(), reference.header.get_zooms())
    assert prediction.get_data_dtype() == np.uint8
    assert set(np.unique(np.asarray(prediction.dataobj)).tolist()) <= {0, 1}
    probability = nib.load(tmp_path / "out" / "probabilities" / "spleen_1.nii.gz")
    assert probability.shape == reference.shape and np.allclose(probability.affine, reference.affine)


def test_folder_of_volumes_keeps_each_geometry(tmp_path: Path) -> None:
    data = {"format": "nifti", "root": str(tmp_path), "image_size": [16, 16], "in_channels": 1}
    run = make_run(tmp_path / "ct", data, in_channels=1)
    (tmp_path / "vols").mkdir()
    rng = np.random.default_rng(0)
    affines = [
        np.diag([0.8, 0.8, 3.0, 1.0]),
        np.array([[0, -1.5, 0, 10], [1.5, 0, 0, -4], [0, 0, 2, 7], [0, 0, 0, 1]]),
    ]
    for i, affine in enumerate(affines):
        volume = rng.normal(0, 100, (20 + i, 18, 4 + i)).astype(np.int16)
        nib.save(nib.Nifti1Image(volume, affine), tmp_path / "vols" / f"case{i}.nii.gz")
    written = Predictor.from_path(run, largest_component=True).predict(tmp_path / "vols", tmp_path / "out")
    assert [p.name for p in written] == ["case0.nii.gz", "case1.nii.gz"]
    for i, path in enumerate(written):
        out = nib.load(path)
        assert out.shape == (20 + i, 18, 4 + i) and np.allclose(out.affine, affines[i])


def test_3d_network_is_refused() -> None:
    from hlfnet.models import create_model

    model = create_model("unet", in_channels=1, spatial_dims=3, base_channels=4, depth=1)
    with pytest.raises(ValueError, match="2-D networks.*spatial_dims=3"):
        Predictor(model, {"format": "synthetic", "image_size": [16, 16]})


def test_channels_last_and_bf16_predict_like_float32(tiny_run: Path) -> None:
    image = (np.random.default_rng(0).random((40, 52, 3)) * 255).astype(np.uint8)
    reference = Predictor.from_path(tiny_run, workers=0).predict_image(image, keep_probabilities=True)
    fast = Predictor.from_path(tiny_run, workers=0, channels_last=True)
    assert any(
        p.dim() == 4 and p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous()
        for p in fast.model.parameters()
    )
    same = fast.predict_image(image, keep_probabilities=True)
    np.testing.assert_allclose(same.probabilities, reference.probabilities, atol=1e-5)
    half = Predictor.from_path(tiny_run, workers=0, channels_last=True, bf16=True)
    approx = half.predict_image(image, keep_probabilities=True)
    np.testing.assert_allclose(approx.probabilities, reference.probabilities, atol=5e-2)
    assert (approx.mask == reference.mask).mean() > 0.95
    with pytest.raises(ValueError, match="not to an exported model"):
        Predictor(lambda x: x, {"format": "synthetic"}, in_channels=4, out_channels=1, bf16=True)
