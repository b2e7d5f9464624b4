"""The API in process (FastAPI's TestClient): results identical to ``hlfnet predict``, JSON contents, scores,
volumes, the token, CORS, the page and the offline API docs."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hlfnet.serve import ServeConfig, create_app
from tests.serve.conftest import reference_masks


@pytest.fixture(scope="module")
def client(tiny_run: Path) -> Iterator[object]:
    from fastapi.testclient import TestClient

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    with TestClient(create_app(ServeConfig(model=str(tiny_run)))) as test_client:
        yield test_client
    torch.set_num_threads(before)


def _post(client, path: Path, query: str = "", **extra: Path):
    files = {"file": (path.name, path.read_bytes())}
    files.update({k: (v.name, v.read_bytes()) for k, v in extra.items()})
    return client.post(f"/api/v1/predict{query}", files=files)


def test_png_mask_is_byte_identical_to_hlfnet_predict(client, tiny_run, isic_images, tmp_path) -> None:
    from hlfnet.cli import main

    expected = reference_masks(tiny_run, isic_images[:3], tmp_path / "predictor")
    for image in isic_images[:3]:
        response = _post(client, image)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "image/png"
        assert response.content == expected[image.name]
        assert f'filename="{image.stem}_mask.png"' in response.headers["content-disposition"]
    # and the command itself, as a user runs it
    assert (
        main(
            [
                "predict",
                "--model",
                str(tiny_run),
                "--input",
                str(isic_images[0]),
                "--output",
                str(tmp_path / "cli"),
            ]
        )
        == 0
    )
    assert (tmp_path / "cli" / f"{isic_images[0].stem}.png").read_bytes() == _post(
        client, isic_images[0]
    ).content


def test_json_has_mask_area_probabilities_attention_preview(client, tiny_run, isic_image) -> None:
    from hlfnet.evaluation import Predictor

    response = _post(client, isic_image, "?format=json&probabilities=true&attention=true&preview=true")
    assert response.status_code == 200, response.text
    body = response.json()
    mask = np.asarray(Image.open(io.BytesIO(base64.b64decode(body["mask_png"]))))
    reference = Predictor.from_path(tiny_run, workers=0).predict_image(isic_image, keep_probabilities=True)
    np.testing.assert_array_equal(mask > 0, reference.mask > 0)
    assert body["size"] == list(mask.shape) == [256, 256]
    assert body["area"]["pixels"] == int(reference.mask.sum())
    assert body["area"]["fraction"] == pytest.approx(reference.mask.mean())
    probabilities = np.asarray(Image.open(io.BytesIO(base64.b64decode(body["probabilities_png"]))))
    np.testing.assert_array_equal(probabilities, np.rint(reference.probabilities[0] * 255).astype(np.uint8))
    assert [m["name"] for m in body["attention"]] == ["LFE 1", "LFE 2", "HFE 2", "HFE 1"]
    assert [m["size"] for m in body["attention"]] == [[32, 32], [16, 16], [16, 16], [32, 32]]
    assert all(0.0 <= m["min"] <= m["max"] <= 1.0 for m in body["attention"] if m["kind"] == "lfe")
    preview = np.asarray(Image.open(io.BytesIO(base64.b64decode(body["image_png"]))))
    np.testing.assert_array_equal(preview, np.asarray(Image.open(isic_image)))
    assert body["timing"]["inference_ms"] > 0 and body["batch_size"] == 1


def test_scores_equal_binary_scores(client, isic_image, isic_truth, tmp_path) -> None:
    from hlfnet.data import read_mask
    from hlfnet.evaluation import binary_scores

    predicted = _post(client, isic_image, "?format=json", ground_truth=isic_truth).json()
    mask_file = tmp_path / "mask.png"
    mask_file.write_bytes(base64.b64decode(predicted["mask_png"]))
    expected = binary_scores(
        torch.from_numpy(read_mask(mask_file))[None], torch.from_numpy(read_mask(isic_truth))[None]
    )
    scored = client.post(
        "/api/v1/score",
        files={
            "prediction": ("m.png", mask_file.read_bytes()),
            "ground_truth": ("t.png", isic_truth.read_bytes()),
        },
    )
    assert scored.status_code == 200, scored.text
    for key in ("dice", "jaccard", "accuracy", "sensitivity", "specificity", "thresholded_jaccard"):
        assert scored.json()["scores"][key] == pytest.approx(float(expected[key][0]), abs=1e-12)
        assert predicted["scores"][key] == pytest.approx(float(expected[key][0]), abs=1e-12)
    # a mask of another size is refused in words
    small = tmp_path / "small.png"
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(small)
    refused = client.post(
        "/api/v1/score",
        files={
            "prediction": ("s.png", small.read_bytes()),
            "ground_truth": ("t.png", isic_truth.read_bytes()),
        },
    )
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "shape_mismatch"


def test_models_health_ready(client, tiny_run) -> None:
    models = client.get("/api/v1/models").json()
    (model,) = models["models"]
    assert model["name"] == "hlfnet" and model["input_size"] == [32, 32] and model["attention"] is True
    assert model["manifest"]["kwargs"]["base_channels"] == 4  # model.json beside the weights
    assert model["options"] == {"tta": False, "largest_component": False, "threshold": 0.5, "max_batch": 8}
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json()["status"] == "ready"


def _volume(path: Path, shape=(40, 36, 6)) -> Path:
    import nibabel as nib

    rng = np.random.default_rng(0)
    data = (rng.normal(0, 200, shape)).astype(np.int16)
    affine = np.diag([0.8, 0.7, 2.5, 1.0])
    nib.save(nib.Nifti1Image(data, affine), str(path))
    return path


def test_volume_nifti_equals_predict_and_reports_ml(volume_run, tmp_path, one_thread) -> None:
    import nibabel as nib
    from fastapi.testclient import TestClient

    from hlfnet.evaluation import Predictor

    volume = _volume(tmp_path / "ct.nii.gz")
    (expected,) = Predictor.from_path(volume_run, workers=0).predict(volume, tmp_path / "predict")
    with TestClient(create_app(ServeConfig(model=str(volume_run)))) as client:
        response = _post(client, volume)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/gzip"
        served = tmp_path / "served.nii.gz"
        served.write_bytes(response.content)
        a, b = nib.load(str(served)), nib.load(str(expected))
        np.testing.assert_array_equal(np.asarray(a.dataobj), np.asarray(b.dataobj))
        np.testing.assert_allclose(a.affine, b.affine)
        body = _post(client, volume, "?format=json&preview=true&probabilities=true").json()
        voxels = int((np.asarray(b.dataobj) > 0).sum())
        assert body["area"]["voxels"] == voxels
        assert body["area"]["ml"] == pytest.approx(voxels * 0.8 * 0.7 * 2.5 / 1000, rel=1e-5)
        assert body["slices"] == len(body["slice_previews"]) == 6
        assert {"image_png", "mask_png", "probabilities_png", "pixels"} <= set(body["slice_previews"][0])
        assert _post(client, volume, "?format=png").json()["error"]["code"] == "bad_format"
        # the ground truth of a volume: scored in 3-D
        truth = tmp_path / "truth.nii.gz"
        nib.save(nib.Nifti1Image(np.asarray(b.dataobj).astype(np.uint8), b.affine), str(truth))
        scored = _post(client, volume, "?format=json", ground_truth=truth).json()["scores"]
        assert scored["dice"] == 1.0 and scored["jaccard"] == 1.0


def test_token_required_on_the_api_only(tiny_run, isic_image, one_thread) -> None:
    from fastapi.testclient import TestClient

    with TestClient(create_app(ServeConfig(model=str(tiny_run), token="s3cret"))) as client:
        refused = client.get("/api/v1/models")
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthorized"
        assert refused.headers["www-authenticate"] == "Bearer"
        assert client.get("/api/v1/models", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get("/api/v1/models", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert client.get("/healthz").status_code == 200 and client.get("/").status_code == 200


def test_no_cors_and_security_headers(client) -> None:
    origin = {"Origin": "http://evil.example"}
    response = client.get("/api/v1/models", headers=origin)
    assert "access-control-allow-origin" not in response.headers
    preflight = client.options("/api/v1/predict", headers={**origin, "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 405 and "access-control-allow-origin" not in preflight.headers
    page = client.get("/")
    assert page.status_code == 200 and "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"


def test_page_and_docs_work_offline(client) -> None:
    import re

    page = client.get("/").text
    assets = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert assets and all(a.startswith("/") for a in assets), assets
    for asset in assets:
        assert client.get(asset).status_code == 200, asset
    script = client.get("/static/app.js").text
    assert not re.search(r"https?://", script)
    docs = client.get("/docs").text
    urls = re.findall(r"(?:src|href|url)\s*[:=]\s*['\"]([^'\"]+)['\"]", docs)
    assert urls and all(u.startswith("/") for u in urls), urls
    for url in urls:
        assert client.get(url).status_code == 200, url
    spec = client.get("/openapi.json").json()
    assert {"/api/v1/predict", "/api/v1/score", "/api/v1/models", "/healthz", "/readyz"} <= set(spec["paths"])
    body = spec["paths"]["/api/v1/predict"]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert body["schema"]["properties"]["file"]["format"] == "binary"


def test_default_model_missing_is_one_line_error(monkeypatch, capsys) -> None:
    import hlfnet.pretrained
    from hlfnet.cli import main

    monkeypatch.setattr(hlfnet.pretrained, "list_pretrained", lambda: [])
    assert main(["serve"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "hlfnet-isic2017" in err[0] and "--model" in err[0]


def test_volume_of_a_3d_native_resolution_run_equals_predict(tmp_path, one_thread) -> None:
    """A 3-D patch-plan model serves a volume upload through the same sliding windows as hlfnet predict,
    onto the upload's own grid (here stored LAS, 0.8 x 0.7 x 2.5 mm against a 2 mm plan)."""
    import nibabel as nib
    from fastapi.testclient import TestClient

    from hlfnet.evaluation import Predictor
    from hlfnet.models import create_model, save_model

    torch.manual_seed(0)
    model = create_model("unet", in_channels=1, out_channels=1, base_channels=4, depth=2, spatial_dims=3)
    data = {
        "format": "nifti",
        "root": str(tmp_path),
        "in_channels": 1,
        "preprocessing": "patch",
        "spatial_dims": 3,
        "normalization": "ct",
        "intensity_stats": [[-200.0, 300.0, 0.0, 100.0]],
        "target_spacing": [2.0, 2.0, 2.0],
        "patch_size": [16, 16, 8],
    }
    weights = save_model(model, tmp_path / "run" / "model.safetensors", extra={"data": data})
    volume = _volume(tmp_path / "ct.nii.gz")
    image = nib.load(str(volume))
    las = tmp_path / "las.nii.gz"
    nib.save(nib.Nifti1Image(np.asarray(image.dataobj)[::-1], np.diag([-0.8, 0.7, 2.5, 1.0])), str(las))
    (expected,) = Predictor.from_path(weights, workers=0).predict(las, tmp_path / "predict")
    with TestClient(create_app(ServeConfig(model=str(weights)))) as client:
        response = _post(client, las)
        assert response.status_code == 200, response.text
        served = tmp_path / "served.nii.gz"
        served.write_bytes(response.content)
    a, b = nib.load(str(served)), nib.load(str(expected))
    assert a.shape == (40, 36, 6)
    np.testing.assert_array_equal(np.asarray(a.dataobj), np.asarray(b.dataobj))
    np.testing.assert_allclose(a.affine, np.diag([-0.8, 0.7, 2.5, 1.0]))
