"""The command line: thin handlers over the library, one-line errors with exit status 2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hlfnet.cli import main
from hlfnet.evaluation.predictor import Predictor

from .conftest import make_run


def _run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _write_images(folder: Path, count: int = 3) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for i in range(count):
        Image.fromarray(rng.integers(0, 255, (30 + i, 41, 3), dtype=np.uint8)).save(folder / f"img_{i}.jpg")


@pytest.mark.slow
def test_export_then_predict_through_onnx_runtime_matches_pytorch(
    tiny_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run_cli(["export", str(tiny_run), "--format", "onnx"], capsys)
    assert code == 0 and (tiny_run / "export" / "model.onnx").is_file(), out
    code, _, err = _run_cli(["export", str(tiny_run)], capsys)
    assert code == 2 and "already exists" in err

    _write_images(tmp_path / "in")
    for backend in ("torch", "onnx"):
        argv = ["predict", "--model", str(tiny_run), "--input", str(tmp_path / "in"), "--output"]
        code, out, err = _run_cli(
            [*argv, str(tmp_path / backend), "--backend", backend, "--probabilities"], capsys
        )
        assert code == 0, err
        assert "wrote 3 prediction(s)" in out
    for name in ("img_0.png", "img_1.png", "img_2.png"):
        torch_mask = np.asarray(Image.open(tmp_path / "torch" / name))
        onnx_mask = np.asarray(Image.open(tmp_path / "onnx" / name))
        assert torch_mask.shape == onnx_mask.shape
        # probabilities agree to 1e-4 before 8-bit quantisation; masks can only differ at p == 0.5 +- 1e-4
        assert (torch_mask != onnx_mask).mean() < 1e-3
    torch_predictor = Predictor.from_path(tiny_run)
    onnx_predictor = Predictor.from_path(tiny_run, backend="onnx")
    onnx_file = Predictor.from_path(tiny_run / "export" / "model.onnx")
    x = torch.rand(3, 4, 32, 48)
    expected = torch_predictor.probabilities(x)
    assert torch.allclose(onnx_predictor.probabilities(x), expected, atol=1e-4, rtol=0)
    assert torch.allclose(onnx_file.probabilities(x), expected, atol=1e-4, rtol=0)
    manifest = json.loads((tmp_path / "onnx" / "predictions.json").read_text())
    assert manifest["backend"] == "onnx" and manifest["weights"].endswith("model.onnx")


def test_predict_errors_are_one_line_with_status_2(
    tiny_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write_images(tmp_path / "in", 1)
    argv = [
        "predict",
        "--model",
        str(tiny_run),
        "--input",
        str(tmp_path / "in"),
        "--output",
        str(tmp_path / "out"),
    ]
    assert _run_cli(argv, capsys)[0] == 0
    code, _, err = _run_cli(argv, capsys)
    assert code == 2 and err.startswith("hlfnet predict: error: ") and "already holds predictions" in err
    assert _run_cli([*argv, "--overwrite"], capsys)[0] == 0
    (tmp_path / "empty").mkdir()
    code, _, err = _run_cli(
        [
            "predict",
            "--model",
            str(tiny_run),
            "--input",
            str(tmp_path / "empty"),
            "--output",
            str(tmp_path / "o2"),
        ],
        capsys,
    )
    assert code == 2 and "no images" in err


def test_run_folder_without_weights_and_mismatched_weights(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "run").mkdir()
    for command in (
        ["evaluate", str(tmp_path / "run")],
        ["export", str(tmp_path / "run")],
        ["report", str(tmp_path / "run")],
    ):
        code, _, err = _run_cli(command, capsys)
        assert code == 2 and "run folder without weights" in err, command
    run = make_run(tmp_path / "bad", {"format": "synthetic", "image_size": [32, 32]})
    info = json.loads((run / "model.json").read_text())
    info["kwargs"]["base_channels"] = 8
    (run / "model.json").write_text(json.dumps(info))
    code, _, err = _run_cli(
        ["predict", "--model", str(run), "--input", str(tmp_path), "--output", str(tmp_path / "o")], capsys
    )
    assert code == 2 and "do not match network 'hlfnet'" in err and "model.safetensors" in err


def test_compare_prints_markdown_and_writes_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "r"
    (run / "evaluation" / "test").mkdir(parents=True)
    summary = {
        "run": "r",
        "model": "unet",
        "paper_name": "Unet-28",
        "parameters": 5,
        "cases": 2,
        "primary": "slice",
        "levels": {"slice": {"dice": 0.5, "jaccard": 0.4}},
    }
    (run / "evaluation" / "test" / "summary.json").write_text(json.dumps(summary))
    code, out, _ = _run_cli(
        ["compare", str(run), "--output", str(tmp_path / "t"), "--paper", "spleen"], capsys
    )
    assert code == 0 and "| Dice | 0.500 (paper 0.937) |" in out
    assert (tmp_path / "t" / "table1.csv").read_text().startswith("run,model,paper_name,level")
    code, out, _ = _run_cli(["compare", str(run), "--csv"], capsys)
    assert out.splitlines()[1].startswith("r,unet,Unet-28,slice,2,5,0.5,0.4")
