"""Fold ensembles: the ensemble's probabilities are the mean of each fold's own (TTA) probabilities, on the resize
path and on the sliding-window path; members that disagree are refused in one line; the post-processing
decision of a cross-validation is applied."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage

from hlfnet.cli import main
from hlfnet.evaluation.predictor import Predictor
from hlfnet.models import create_model
from tests.evaluation.conftest import TINY, make_run

RESIZE = {"format": "folder", "root": "x", "image_size": [32, 32], "in_channels": 3}
PATCH = {
    "format": "folder",
    "root": "x",
    "preprocessing": "patch",
    "normalization": "rgb",
    "in_channels": 3,
    "patch_size": [16, 16],
}


def _folds(root: Path, data: dict, n: int = 3, out_channels: int = 1) -> list[Path]:
    """``root/fold_<k>``: tiny networks with different random weights (as folds trained apart)."""
    runs = []
    for k in range(n):
        torch.manual_seed(100 + k)
        model = create_model("unet", in_channels=3, out_channels=out_channels, **TINY)
        classes = {"num_classes": out_channels} if out_channels > 1 else {}
        runs.append(make_run(root / f"fold_{k}", {**data, **classes, "fold": k, "num_folds": n}, model=model))
    return runs


def _image(path: Path, size=(37, 45), seed: int = 0) -> Path:
    rgb = (np.random.default_rng(seed).random((*size, 3)) * 255).astype(np.uint8)
    Image.fromarray(rgb).save(path)
    return path


@pytest.mark.parametrize("data", [RESIZE, PATCH], ids=["resize", "sliding-window"])
@pytest.mark.parametrize("out_channels", [1, 3], ids=["binary", "3-class"])
def test_ensemble_probabilities_are_the_mean_of_the_folds(
    tmp_path: Path, data: dict, out_channels: int
) -> None:
    folds = _folds(tmp_path / "cv", data, out_channels=out_channels)
    image = _image(tmp_path / "case.png")
    each = [
        Predictor.from_path(f, tta=True, device="cpu")
        .predict_image(image, keep_probabilities=True)
        .probabilities
        for f in folds
    ]
    expected = (each[0].astype(np.float64) + each[1] + each[2]) / 3  # the mean, by hand
    assert not np.allclose(each[0], each[1], atol=1e-3)  # the folds really differ
    for spec in (",".join(str(f) for f in folds), tmp_path / "cv"):
        ensemble = Predictor.from_path(spec, tta=True, device="cpu")
        assert ensemble.is_ensemble and len(ensemble.models) == 3
        got = ensemble.predict_image(image, keep_probabilities=True)
        assert got.probabilities.shape == expected.shape
        np.testing.assert_allclose(got.probabilities, expected, atol=1e-6)
        labels = (expected[0] > 0.5) if out_channels == 1 else expected.argmax(axis=0)
        np.testing.assert_array_equal(got.mask, labels.astype(np.uint8))


def test_ensemble_of_slices_from_a_volume(tmp_path: Path) -> None:
    from tests.data.helpers import ct_volume, ras_affine, write_nifti

    data = {"format": "nifti", "root": "x", "image_size": [16, 16], "in_channels": 1}
    runs = []
    for k in range(2):
        torch.manual_seed(7 + k)
        model = create_model("unet", in_channels=1, out_channels=1, **TINY)
        runs.append(make_run(tmp_path / "cv" / f"fold_{k}", {**data, "fold": k, "num_folds": 2}, model=model))
    volume = write_nifti(tmp_path / "ct.nii.gz", ct_volume((20, 16, 4))[0], ras_affine())
    each = [Predictor.from_path(r, device="cpu").predict_volume_array(volume).probabilities for r in runs]
    got = Predictor.from_path(tmp_path / "cv", device="cpu").predict_volume_array(volume).probabilities
    np.testing.assert_allclose(got, (each[0].astype(np.float64) + each[1]) / 2, atol=1e-6)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"out_channels": 3, "data": {"num_classes": 3}}, r"output channels is 3 there and 1"),
        ({"data": {"image_size": [48, 48]}}, r"data.image_size is \[48, 48\] there and \[32, 32\]"),
        (
            {"data": {"preprocessing": "patch", "normalization": "rgb", "patch_size": [16, 16]}},
            r"data.preprocessing",
        ),
    ],
)
def test_folds_that_disagree_are_refused_in_one_line(
    tmp_path: Path, change: dict, match: str, capsys
) -> None:
    good = make_run(tmp_path / "a", {**RESIZE, "fold": 0}, name="unet", in_channels=3)
    other = make_run(
        tmp_path / "b",
        {**RESIZE, **change.get("data", {}), "fold": 1},
        name="unet",
        in_channels=3,
        out_channels=change.get("out_channels", 1),
    )
    with pytest.raises(ValueError, match=match) as error:
        Predictor.from_path(f"{good},{other}", device="cpu")
    assert str(error.value).startswith(f"{other}: cannot be ensembled with {good}")
    image = _image(tmp_path / "case.png")
    code = main(
        ["predict", "--model", f"{good},{other}", "--input", str(image), "--output", str(tmp_path / "p")]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "cannot be ensembled" in err[0]


def _largest(mask: np.ndarray) -> np.ndarray:
    """The largest 8-connected foreground component, computed here with scipy directly."""
    labelled, count = ndimage.label(mask > 0, structure=np.ones((3, 3)))
    if count <= 1:
        return mask
    sizes = np.bincount(labelled.ravel())
    sizes[0] = 0
    return np.where(labelled == sizes.argmax(), mask, 0)


def test_predict_applies_the_cross_validation_decision(tmp_path: Path) -> None:
    _folds(tmp_path / "cv", RESIZE, n=2)
    image = _image(tmp_path / "case.png", size=(64, 64), seed=3)
    plain = Predictor.from_path(tmp_path / "cv", device="cpu").predict_image(image).mask
    assert ndimage.label(plain)[1] > 1  # the untrained folds predict several blobs: the test can fail
    (tmp_path / "cv" / "crossval").mkdir()
    (tmp_path / "cv" / "crossval" / "postprocessing.json").write_text(
        json.dumps({"largest_component_classes": [1]})
    )
    chosen = Predictor.from_path(tmp_path / "cv", device="cpu")
    assert chosen.largest_component == (1,)
    np.testing.assert_array_equal(chosen.predict_image(image).mask, _largest(plain))
    ignored = Predictor.from_path(tmp_path / "cv", device="cpu", postprocessing="none")
    np.testing.assert_array_equal(ignored.predict_image(image).mask, plain)
    assert (
        main(
            [
                "predict",
                "--model",
                str(tmp_path / "cv"),
                "--input",
                str(image),
                "--output",
                str(tmp_path / "p"),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    manifest = json.loads((tmp_path / "p" / "predictions.json").read_text())
    assert manifest["largest_component"] == [1] and manifest["ensemble"] == 2
    written = (np.asarray(Image.open(tmp_path / "p" / "case.png")) > 0).astype(np.uint8)
    np.testing.assert_array_equal(written, _largest(plain))


def test_a_bad_decision_file_is_named(tmp_path: Path) -> None:
    _folds(tmp_path / "cv", RESIZE, n=2)
    bad = tmp_path / "decision.json"
    bad.write_text(json.dumps({"largest_component_classes": [2]}))
    with pytest.raises(ValueError, match=r"decision.json: classes \[2\] are not foreground classes"):
        Predictor.from_path(tmp_path / "cv", device="cpu", postprocessing=bad)
