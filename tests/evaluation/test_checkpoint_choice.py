"""``--checkpoint best|last`` on predict, evaluate and export."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from hlfnet.cli import main
from hlfnet.evaluation import evaluate_run
from hlfnet.experiment import load_run


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny HLF-Net trained 2 epochs on synthetic 32×32 images (best and last checkpoints)."""
    from hlfnet.engine import load_config, train

    config = load_config(
        "synthetic",
        [
            "data.image_size=[32,32]",
            "data.synthetic_train=12",
            "data.synthetic_val=6",
            "data.synthetic_test=4",
            "train.max_epochs=2",
            "train.progress_bar=false",
            "model.base_channels=4",
            "model.depth=2",
        ],
    )
    return train(config, tmp_path_factory.mktemp("runs") / "tiny").run_dir


def test_last_loads_the_last_checkpoints_weights(run: Path) -> None:
    loaded = load_run(run, checkpoint="last")
    assert loaded.weights == run / "checkpoints" / "last.ckpt"
    state = torch.load(loaded.weights, weights_only=True)["state_dict"]
    for key, value in loaded.model.state_dict().items():
        assert torch.equal(
            value, next(v for k, v in state.items() if k.endswith(key) and k.count(".") == key.count(".") + 1)
        )
    assert load_run(run).weights == run / "model.safetensors"


def test_last_is_evaluated_beside_best_never_over_it(run: Path) -> None:
    evaluate_run(run, split="test", progress=False)
    evaluate_run(run, split="test", checkpoint="last", progress=False)
    assert (run / "evaluation" / "test" / "summary.json").is_file()
    assert (run / "evaluation" / "test-last" / "summary.json").is_file()


def test_cli_predict_and_export_take_the_choice(run: Path, tmp_path: Path) -> None:
    import numpy as np
    from PIL import Image

    (tmp_path / "in").mkdir()
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(tmp_path / "in" / "a.png")
    args = ["--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"), "--checkpoint", "last"]
    assert main(["predict", "--model", str(run), *args]) == 0
    assert main(["export", str(run), "--format", "torchscript", "--checkpoint", "last"]) == 0
    assert (run / "export" / "model-last.torchscript.pt").is_file()


def test_last_needs_a_run_folder(run: Path) -> None:
    with pytest.raises(ValueError, match="run folder"):
        load_run(run / "model.safetensors", checkpoint="last")
    with pytest.raises(ValueError, match="best, last|'best', 'last'"):
        load_run(run, checkpoint="middle")
