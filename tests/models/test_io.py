from __future__ import annotations

import json

import pytest
import torch

from hlfnet.models import create_model, load_model, save_model


def test_save_and_load_round_trip(tmp_path):
    model = create_model("hlfnet", in_channels=1, out_channels=2, base_channels=4).eval()
    path = save_model(model, tmp_path / "model.safetensors", extra={"data": {"format": "synthetic"}})
    assert path.is_file() and (tmp_path / "model.json").is_file()
    loaded, info = load_model(path)
    assert info["name"] == "hlfnet" and info["data"] == {"format": "synthetic"}
    x = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))
    assert not list(tmp_path.glob("*.tmp"))


def test_weights_that_do_not_match_their_network(tmp_path):
    save_model(create_model("unet", base_channels=4), tmp_path / "model.safetensors")
    info = json.loads((tmp_path / "model.json").read_text())
    info["name"] = "hlfnet"
    (tmp_path / "model.json").write_text(json.dumps(info))
    with pytest.raises(ValueError, match="do not match network 'hlfnet'"):
        load_model(tmp_path / "model.safetensors")


def test_shape_mismatch_names_the_tensor(tmp_path):
    save_model(create_model("unet", base_channels=4), tmp_path / "model.safetensors")
    info = json.loads((tmp_path / "model.json").read_text())
    info["kwargs"]["base_channels"] = 8
    (tmp_path / "model.json").write_text(json.dumps(info))
    with pytest.raises(ValueError, match="has shape"):
        load_model(tmp_path / "model.safetensors")


def test_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        load_model(tmp_path / "model.safetensors")


def test_written_files_have_normal_permissions(tmp_path):
    import os

    mask = os.umask(0o022)
    try:
        save_model(create_model("unet", base_channels=4), tmp_path / "model.safetensors")
    finally:
        os.umask(mask)
    for name in ("model.safetensors", "model.json"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o644


def test_atomic_write_leaves_the_old_file_on_error(tmp_path):
    from hlfnet.atomic import atomic_path

    target = tmp_path / "x.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed while writing")
    assert target.read_text() == "old" and list(tmp_path.iterdir()) == [target]
