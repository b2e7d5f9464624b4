"""Multi-class serving in process: the model's capabilities and classes, per-class scores (Dice, IoU by hand;
HD95, ASSD, NSD by MONAI's own functions), the ground truth for outlines, and no server path in any answer."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hlfnet.serve import ServeConfig, create_app
from tests.conftest import REPO_ROOT
from tests.serve.conftest import (
    CLASS_NAMES,
    CLASS_VALUES,
    class_truth,
    write_rgb_image,
)

SIZE = 64


@pytest.fixture(scope="module")
def client(class_run: Path) -> Iterator[object]:
    from fastapi.testclient import TestClient

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    with TestClient(create_app(ServeConfig(model=str(class_run)))) as test_client:
        yield test_client
    torch.set_num_threads(before)


def _png(array: np.ndarray, path: Path) -> Path:
    Image.fromarray(array.astype(np.uint8), mode="L").save(path)
    return path


def _decode(b64: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))))


def _monai(pred: np.ndarray, truth: np.ndarray, k: int) -> dict[str, float]:
    """HD95, ASSD and NSD (tolerance 1 pixel) of class ``k``, straight from MONAI."""
    from monai.metrics import (
        compute_average_surface_distance,
        compute_hausdorff_distance,
        compute_surface_dice,
    )

    p = torch.from_numpy(pred == k)[None, None].float()
    t = torch.from_numpy(truth == k)[None, None].float()
    return {
        "hd95": float(compute_hausdorff_distance(p, t, include_background=True, percentile=95)),
        "assd": float(compute_average_surface_distance(p, t, include_background=True, symmetric=True)),
        "nsd": float(compute_surface_dice(p, t, [1.0], include_background=True)),
    }


def test_models_reports_classes_and_no_attention_for_unet(client) -> None:
    (model,) = client.get("/api/v1/models").json()["models"]
    assert model["name"] == "unet" and model["attention"] is False  # Unet-28 has no LFE/HFE maps
    assert model["num_classes"] == 3 and model["label_values"] == list(CLASS_VALUES)
    assert [c["name"] for c in model["classes"]] == list(CLASS_NAMES)
    assert [c["value"] for c in model["classes"]] == list(CLASS_VALUES)
    colours = [c["colour"] for c in model["classes"][1:]]
    assert len(set(colours)) == 2 and all(re.fullmatch(r"#[0-9a-f]{6}", c) for c in colours)
    assert [
        c["outline"] for c in model["classes"][1:]
    ] == colours  # multi-class: outlines in the class colour


def test_attention_only_for_networks_with_maps(tiny_run) -> None:
    """HLF-Net has maps (tiny_run); every registered network says so exactly when its forward pass returns some."""
    from fastapi.testclient import TestClient

    from hlfnet.models import create_model, list_models

    with TestClient(create_app(ServeConfig(model=str(tiny_run)))) as hlf:
        assert hlf.get("/api/v1/models").json()["models"][0]["attention"] is True
    for name in list_models():
        model = create_model(name, in_channels=1, out_channels=1, base_channels=4, depth=2).eval()
        with torch.no_grad():
            maps = model.forward_with_attention(torch.rand(1, 1, 16, 16)).attention
        assert model.has_attention_maps == bool(maps.lfe or maps.hfe_spatial), name
    assert not create_model("unet16", in_channels=1, out_channels=1, depth=2).has_attention_maps


def test_predict_writes_the_runs_encoding_and_class_indices(client, class_run, tmp_path) -> None:
    from hlfnet.evaluation import Predictor

    image = write_rgb_image(tmp_path / "cells.png", SIZE)
    (expected,) = Predictor.from_path(class_run, workers=0).predict(image, tmp_path / "predict")
    response = client.post("/api/v1/predict", files={"file": ("cells.png", image.read_bytes())})
    assert response.status_code == 200 and response.content == expected.read_bytes()
    body = client.post(
        "/api/v1/predict?format=json", files={"file": ("cells.png", image.read_bytes())}
    ).json()
    # the head says class 2 everywhere: stored as 255, shown as index 2
    assert np.all(_decode(body["mask_png"]) == 255) and np.all(_decode(body["labels_png"]) == 2)
    assert body["area"]["pixels_per_class"] == {"1": 0, "2": SIZE * SIZE}


def test_per_class_scores_equal_hand_and_monai(client, tmp_path) -> None:
    truth = class_truth(SIZE)
    pred = np.zeros_like(truth)
    pred[10:40, 5:30] = 1
    pred[30:60, 30:62] = 2
    values = np.asarray(CLASS_VALUES, np.uint8)
    files = {
        "prediction": ("p.png", _png(values[pred], tmp_path / "p.png").read_bytes()),
        "ground_truth": ("t.png", _png(values[truth], tmp_path / "t.png").read_bytes()),
    }
    response = client.post("/api/v1/score?labels=true", files=files)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["surface_units"] == "pixels" and body["nsd_tolerance"] == 1.0
    assert [row["name"] for row in body["per_class"]] == list(CLASS_NAMES[1:])
    for row in body["per_class"]:
        k = row["class"]
        p, t = pred == k, truth == k
        inter = int((p & t).sum())
        assert row["value"] == CLASS_VALUES[k]
        assert row["dice"] == pytest.approx(2 * inter / (p.sum() + t.sum()), abs=1e-12)
        assert row["jaccard"] == pytest.approx(inter / (p | t).sum(), abs=1e-12)
        for metric, value in _monai(pred, truth, k).items():
            assert row[metric] == pytest.approx(value, abs=1e-6), (k, metric)
            assert body["scores"][f"{metric}_class{k}"] == pytest.approx(value, abs=1e-6)
    dices = [row["dice"] for row in body["per_class"]]
    assert body["scores"]["dice"] == pytest.approx(sum(dices) / 2, abs=1e-12)  # the foreground mean
    np.testing.assert_array_equal(_decode(body["ground_truth_png"]), truth)


def test_a_class_in_neither_mask_is_null_not_nan(client, tmp_path) -> None:
    truth = np.zeros((SIZE, SIZE), np.uint8)
    truth[20:40, 20:40] = 255  # class 2 only; class 1 in neither mask
    files = {
        "prediction": ("p.png", _png(truth, tmp_path / "p.png").read_bytes()),
        "ground_truth": ("t.png", _png(truth, tmp_path / "t.png").read_bytes()),
    }
    response = client.post("/api/v1/score", files=files)
    assert response.status_code == 200, response.text
    nucleus, cytoplasm = response.json()["per_class"]
    assert nucleus["dice"] == 1.0 and nucleus["hd95"] is None and nucleus["nsd"] is None  # ISIC / MONAI rules
    assert cytoplasm["dice"] == 1.0 and cytoplasm["hd95"] == 0.0 and cytoplasm["nsd"] == 1.0
    assert "NaN" not in response.text


def _strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield str(k)
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def test_no_server_path_in_any_answer(client, class_run, tmp_path) -> None:
    image = write_rgb_image(tmp_path / "cells.png", SIZE)
    truth = _png(np.asarray(CLASS_VALUES, np.uint8)[class_truth(SIZE)], tmp_path / "truth.png")
    small = _png(np.zeros((8, 8), np.uint8), tmp_path / "small.png")
    odd = _png(np.full((SIZE, SIZE), 7, np.uint8), tmp_path / "odd.png")
    volume = tmp_path / "ct.nii.gz"
    import nibabel as nib

    nib.save(nib.Nifti1Image(np.zeros((8, 8, 3), np.int16), np.eye(4)), str(volume))
    post = client.post
    answers = {
        "models": client.get("/api/v1/models"),
        "healthz": client.get("/healthz"),
        "readyz": client.get("/readyz"),
        "predict": post("/api/v1/predict", files={"file": ("a.png", image.read_bytes())}),
        "predict json + truth": post(
            "/api/v1/predict?format=json&preview=true&probabilities=true",
            files={"file": ("a.png", image.read_bytes()), "ground_truth": ("t.png", truth.read_bytes())},
        ),
        "score": post(
            "/api/v1/score?labels=true",
            files={
                "prediction": ("p.png", truth.read_bytes()),
                "ground_truth": ("t.png", truth.read_bytes()),
            },
        ),
        "shape mismatch": post(
            "/api/v1/score",
            files={
                "prediction": ("p.png", small.read_bytes()),
                "ground_truth": ("t.png", truth.read_bytes()),
            },
        ),
        "volume into a 2-D colour model": post(
            "/api/v1/predict", files={"file": ("/etc/ct.nii.gz", volume.read_bytes())}
        ),
        "unsupported": post("/api/v1/predict", files={"file": ("x.png", b"not an image")}),
        "bad parameter": post("/api/v1/predict?format=tiff", files={"file": ("a.png", image.read_bytes())}),
        "not found": client.get("/api/v1/nothing"),
        "method": client.get("/api/v1/predict"),
        "odd values": post(
            "/api/v1/score",
            files={"prediction": ("p.png", odd.read_bytes()), "ground_truth": ("t.png", odd.read_bytes())},
        ),
    }
    assert answers["predict json + truth"].status_code == 200
    assert answers["volume into a 2-D colour model"].status_code == 400
    assert answers["shape mismatch"].json()["error"]["code"] == "shape_mismatch"
    forbidden = {
        str(class_run),
        str(class_run.parent),
        str(tmp_path),
        tempfile.gettempdir() + os.sep,
        str(REPO_ROOT),
        sys.prefix,
        str(Path.home()) + os.sep,
    }
    for what, response in answers.items():
        text = response.text if "json" in response.headers.get("content-type", "") else ""
        for path in forbidden:
            assert path not in text, (what, path, text[:300])
        if text:
            for s in _strings(json.loads(text)):
                assert not re.search(r"(^|[\s'\"(=])(~|/[\w.-]+)/[\w.-]", s), (what, s[:200])
    # the page's descriptions too: the model's manifest keeps its keys, only paths become names
    manifest = answers["models"].json()["models"][0]["manifest"]
    assert manifest["data"]["root"] == class_run.parent.name


def test_public_text() -> None:
    from hlfnet.serve.redact import public_text

    assert public_text("/srv/runs/x/model.json: bad header") == "model.json: bad header"
    assert public_text("'/tmp/hlfnet-serve-1/ab/file.png' (truncated)") == "'file.png' (truncated)"
    assert public_text("~/runs/x") == "x" and public_text("C:\\runs\\x\\w.onnx") == "w.onnx"
    assert public_text("/data") == "data"
    for kept in (
        "image/png or application/gzip",
        "see http://host/a/b",
        "1/2 of ./a/b",
        "run hlfnet predict",
    ):
        assert public_text(kept) == kept


def test_volume_scores_in_mm_and_truth_slices_for_outlines(volume_run, tmp_path, one_thread) -> None:
    import nibabel as nib
    from fastapi.testclient import TestClient
    from monai.metrics import compute_hausdorff_distance

    truth = np.zeros((20, 16, 5), np.uint8)
    truth[4:12, 3:9, 1:4] = 1
    pred = np.zeros_like(truth)
    pred[5:13, 3:10, 1:3] = 1
    affine = np.diag([0.8, 0.7, 2.5, 1.0])
    files = {}
    for name, data in (("prediction", pred), ("ground_truth", truth)):
        path = tmp_path / f"{name}.nii.gz"
        nib.save(nib.Nifti1Image(data, affine), str(path))
        files[name] = (path.name, path.read_bytes())
    with TestClient(create_app(ServeConfig(model=str(volume_run)))) as client:
        response = client.post("/api/v1/score?labels=true", files=files)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["surface_units"] == "mm"
    hd95 = compute_hausdorff_distance(
        torch.from_numpy(pred)[None, None],
        torch.from_numpy(truth)[None, None],
        percentile=95,
        spacing=[0.8, 0.7, 2.5],
    )
    assert body["scores"]["hd95"] == pytest.approx(float(hd95), abs=1e-6)
    slices = [_decode(s) for s in body["ground_truth_slices"]]
    assert len(slices) == 5  # the axial slices, as the page shows the volume
    assert [int(s.sum()) for s in slices] == [int(truth[..., k].sum()) for k in range(5)]
