"""Pretrained models by name: manifest, hash check, the preprocessing they were trained with, the CLI.

A tiny network is published into a temporary store (``$HLFNET_PRETRAINED_DIR``) so these tests never touch
the package's own weights; ``test_shipped.py`` checks those.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hlfnet.cli import main
from hlfnet.evaluation import Predictor, evaluate_run
from hlfnet.experiment import load_pretrained, load_run
from hlfnet.pretrained import list_pretrained, verify_pretrained
from hlfnet.pretrained.publish import publish_pretrained
from tests.evaluation.conftest import make_run

DATA = {"format": "synthetic", "image_size": [32, 48], "in_channels": 4, "synthetic_test": 3}


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "store"
    folder.mkdir()
    monkeypatch.setenv("HLFNET_PRETRAINED_DIR", str(folder))
    return folder


@pytest.fixture
def published(tmp_path: Path, store: Path) -> Path:
    """A tiny evaluated run published as ``tiny-test``; returns the run folder."""
    torch.manual_seed(1)
    run = make_run(tmp_path / "runs" / "tiny", DATA)
    evaluate_run(run, split="test", progress=False)
    publish_pretrained(run, "tiny-test", protocol="unit test")
    return run


def test_publish_writes_float16_weights_and_a_complete_manifest(published: Path, store: Path) -> None:
    from safetensors.torch import load_file

    entry = json.loads((store / "manifest.json").read_text())["models"]["tiny-test"]
    weights = store / entry["file"]
    assert all(t.dtype == torch.float16 for t in load_file(str(weights)).values())
    import hashlib

    assert entry["sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    summary = json.loads((published / "evaluation" / "test" / "summary.json").read_text())
    assert entry["scores"]["test"]["jaccard"] == summary["levels"]["original"]["jaccard"]
    assert entry["scores"]["test"]["cases"] == 3
    assert entry["network"]["name"] == "hlfnet"
    assert entry["preprocessing"]["image_size"] == [32, 48]
    for key in ("protocol", "code_commit", "training_data", "storage"):
        assert entry[key]
    assert list_pretrained() == ["tiny-test"]


def test_load_by_name_gives_the_runs_network_within_float16_rounding(published: Path) -> None:
    loaded = load_pretrained("tiny-test")
    original = load_run(published)
    for key, value in original.model.state_dict().items():
        expected = value.to(torch.float16).to(torch.float32)  # what float16 storage keeps
        assert torch.equal(loaded.model.state_dict()[key], expected), key
    assert loaded.data["image_size"] == [32, 48]
    assert loaded.pretrained == "tiny-test"
    assert load_run("tiny-test").pretrained == "tiny-test"  # every command's loader takes the name


def test_predictor_uses_the_manifests_preprocessing(published: Path, store: Path) -> None:
    assert Predictor.from_path("tiny-test", device="cpu").cfg.image_size == (32, 48)
    manifest = json.loads((store / "manifest.json").read_text())
    manifest["models"]["tiny-test"]["preprocessing"]["image_size"] = [40, 56]
    (store / "manifest.json").write_text(json.dumps(manifest))
    predictor = Predictor.from_path("tiny-test", device="cpu")
    assert predictor.cfg.image_size == (40, 56)
    image = (np.random.default_rng(0).random((50, 70, 3)) * 255).astype(np.uint8)
    prediction = predictor.predict_image(image)
    assert prediction.network_mask.shape == (40, 56)
    assert prediction.mask.shape == (50, 70)


def test_a_tampered_weights_file_is_refused(published: Path, store: Path, capsys) -> None:
    weights = store / "tiny-test.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="sha256"):
        verify_pretrained("tiny-test")
    (store / "in").mkdir()
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(store / "in" / "a.png")
    code = main(
        ["predict", "--model", "tiny-test", "--input", str(store / "in"), "--output", str(store / "out")]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert "sha256" in err[-1] and "tiny-test.safetensors" in err[-1]
    assert "Traceback" not in "\n".join(err)
    assert not (store / "out").exists()


def test_unknown_name_lists_what_is_shipped(published: Path) -> None:
    with pytest.raises(FileNotFoundError, match="tiny-test"):
        load_run("no-such-model")


def test_outputs_of_a_pretrained_model_need_an_explicit_folder(published: Path) -> None:
    with pytest.raises(ValueError, match="--output"):
        evaluate_run("tiny-test", split="test", progress=False)


def test_publish_refuses_to_replace_without_asking(published: Path) -> None:
    with pytest.raises(FileExistsError, match="tiny-test"):
        publish_pretrained(published, "tiny-test", protocol="again")
    publish_pretrained(published, "tiny-test", protocol="again", replace=True)
    assert load_pretrained("tiny-test").info["manifest"]["protocol"] == "again"


def test_predict_by_name_writes_masks_at_each_images_size(published: Path, tmp_path: Path, capsys) -> None:
    inputs = tmp_path / "mixed"
    inputs.mkdir()
    rng = np.random.default_rng(0)
    sizes = {"a.jpg": (60, 80), "b.bmp": (45, 61), "c.tiff": (33, 90), "d.png": (70, 50)}
    for name, (h, w) in sizes.items():
        Image.fromarray((rng.random((h, w, 3)) * 255).astype(np.uint8)).save(inputs / name)
    code = main(
        ["predict", "--model", "tiny-test", "--input", str(inputs), "--output", str(tmp_path / "out")]
    )
    assert code == 0, capsys.readouterr().err
    for name, (h, w) in sizes.items():
        mask = Image.open(tmp_path / "out" / f"{Path(name).stem}.png")
        assert mask.mode == "L" and mask.size == (w, h)
        assert set(np.unique(np.asarray(mask))) <= {0, 255}


def test_models_command_lists_pretrained_entries(published: Path, capsys) -> None:
    assert main(["pretrained", "list"]) == 0
    out = capsys.readouterr().out
    assert "tiny-test" in out and "unit test" in out


def test_export_by_name_needs_and_uses_an_output(published: Path, tmp_path: Path) -> None:
    from hlfnet.evaluation import export_run, load_exported

    with pytest.raises(ValueError, match="--output"):
        export_run("tiny-test", "onnx")
    path = export_run("tiny-test", "onnx", output=tmp_path / "tiny.onnx")
    model, info = load_exported(path)
    assert info["data"]["image_size"] == [32, 48] and "manifest" not in info
