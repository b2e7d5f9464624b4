"""Loading runs without unpickling, bad run folders, and ONNX / TorchScript export matching PyTorch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from hlfnet.evaluation.export import OnnxModel, export_model, exported_json_path, load_exported
from hlfnet.experiment.run_folder import load_run
from hlfnet.models import create_model, save_model

from .conftest import TINY, make_run


def test_load_run_folder_and_weights_file(tiny_run: Path) -> None:
    run = load_run(tiny_run)
    assert run.root == tiny_run and run.name == "tiny" and run.model_name == "hlfnet"
    assert run.data["image_size"] == [32, 48]
    assert run.config is not None and run.config["model"]["name"] == "hlfnet"
    direct = load_run(tiny_run / "model.safetensors")
    x = torch.rand(1, 4, 32, 48)
    with torch.no_grad():
        assert torch.equal(run.model(x), direct.model(x))


def test_run_folder_without_weights(tmp_path: Path) -> None:
    (tmp_path / "empty_run").mkdir()
    (tmp_path / "empty_run" / "config.yaml").write_text("model: {name: hlfnet}\n")
    with pytest.raises(FileNotFoundError, match=r"empty_run.*without weights"):
        load_run(tmp_path / "empty_run")
    with pytest.raises(FileNotFoundError, match="no such run"):
        load_run(tmp_path / "missing")


def test_weights_that_do_not_match_their_network(tmp_path: Path) -> None:
    run = make_run(tmp_path / "bad", {"image_size": [32, 48]})
    # the JSON claims a U-Net, the tensors are an HLF-Net's
    info = json.loads((run / "model.json").read_text())
    info["name"] = "unet"
    (run / "model.json").write_text(json.dumps(info))
    with pytest.raises(ValueError, match=r"model\.safetensors.*do not match network 'unet'"):
        load_run(run)
    # same names, other widths
    other = create_model("hlfnet", base_channels=8, depth=2)
    save_model(other, tmp_path / "w.safetensors")
    info = json.loads((tmp_path / "w.json").read_text())
    info["kwargs"]["base_channels"] = 4
    (tmp_path / "w.json").write_text(json.dumps(info))
    with pytest.raises(ValueError, match="has shape"):
        load_run(tmp_path / "w.safetensors")


def test_lightning_checkpoint_loaded_weights_only(tmp_path: Path) -> None:
    run = make_run(tmp_path / "ck", {"image_size": [32, 48]})
    reference = load_run(run).model
    (run / "model.safetensors").unlink()
    (run / "checkpoints").mkdir()
    state = {f"model.{k}": v for k, v in reference.state_dict().items()}
    torch.save({"state_dict": state, "epoch": 3}, run / "checkpoints" / "best.ckpt")
    loaded = load_run(run)
    assert loaded.weights.name == "best.ckpt"
    x = torch.rand(1, 4, 32, 48)
    with torch.no_grad():
        assert torch.equal(loaded.model(x), reference(x))

    class Evil:
        def __reduce__(self):  # pragma: no cover - never called: weights_only refuses it
            return (print, ("unpickled!",))

    torch.save({"state_dict": state, "payload": Evil()}, run / "checkpoints" / "best.ckpt")
    with pytest.raises(ValueError, match="weights-only"):
        load_run(run)


@pytest.mark.slow
def test_onnx_export_matches_pytorch(tiny_run: Path, tmp_path: Path) -> None:
    run = load_run(tiny_run)
    path = export_model(run.model, tmp_path / "model.onnx", (32, 48), "onnx", info={**run.info})
    assert json.loads(exported_json_path(path).read_text())["input_shape"] == [4, 32, 48]
    onnx_model, info = load_exported(path)
    assert isinstance(onnx_model, OnnxModel) and info["data"]["image_size"] == [32, 48]
    for batch in (1, 3):
        x = torch.rand(batch, 4, 32, 48)
        with torch.no_grad():
            expected = run.model(x)
        assert torch.allclose(onnx_model(x), expected, atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match=r"expects input"):
        onnx_model(torch.rand(1, 4, 64, 48))
    with pytest.raises(FileExistsError, match="already exists"):
        export_model(run.model, path, (32, 48), "onnx")


def test_torchscript_export_matches_pytorch(tmp_path: Path) -> None:
    model = create_model("hlfnet_lfe", in_channels=1, out_channels=3, **TINY).eval()
    path = export_model(model, tmp_path / "model.torchscript.pt", (40, 24), "torchscript", info={"name": "x"})
    scripted, info = load_exported(path)
    x = torch.rand(2, 1, 40, 24)
    with torch.no_grad():
        assert torch.allclose(scripted(x), model(x), atol=1e-4, rtol=0)
    assert info["input_shape"] == [1, 40, 24] and info["out_channels"] == 3


def test_export_bad_arguments(tmp_path: Path) -> None:
    model = create_model("unet", **TINY)
    with pytest.raises(ValueError, match="format must be one of"):
        export_model(model, tmp_path / "m.x", (32, 32), "tflite")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="input_size"):
        export_model(model, tmp_path / "m.onnx", (0, 32))
    with pytest.raises(FileNotFoundError, match="not found"):
        load_exported(tmp_path / "nothing.onnx")
    (tmp_path / "junk.onnx").write_text("not onnx")
    (tmp_path / "junk.onnx.json").write_text("{}")
    with pytest.raises(ValueError, match="not a loadable ONNX"):
        load_exported(tmp_path / "junk.onnx")
