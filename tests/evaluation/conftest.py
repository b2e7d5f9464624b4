"""Fixtures of the evaluation tests: tiny networks saved as run folders, the way training writes them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from hlfnet.models import create_model, save_model

TINY = {"base_channels": 4, "depth": 2}


def make_run(
    root: Path,
    data: dict[str, Any],
    name: str = "hlfnet",
    in_channels: int = 4,
    out_channels: int = 1,
    split: dict[str, list[str]] | None = None,
    model: torch.nn.Module | None = None,
) -> Path:
    """Write a run folder (config.yaml, split.json, model.safetensors + model.json) for a tiny network."""
    model = (
        model
        if model is not None
        else create_model(name, in_channels=in_channels, out_channels=out_channels, **TINY)
    )
    root.mkdir(parents=True, exist_ok=True)
    save_model(model, root / "model.safetensors", extra={"data": data})
    config = {
        "model": {"name": model.model_name, **model.model_kwargs},
        "data": data,
        "train": {"max_epochs": 1},
    }
    (root / "config.yaml").write_text(yaml.safe_dump(config))
    if split is not None:
        import json

        (root / "split.json").write_text(json.dumps(split))
    return root


@pytest.fixture
def tiny_run(tmp_path: Path) -> Path:
    """A run folder of an untrained tiny HLF-Net taking 4-channel 32×48 inputs."""
    return make_run(
        tmp_path / "runs" / "tiny", {"format": "synthetic", "image_size": [32, 48], "in_channels": 4}
    )


def isic_files(isic_root: Path, case_id: str) -> tuple[Path, Path]:
    """Image and mask file of an ISIC 2017 training case."""
    return (
        isic_root / "ISIC-2017_Training_Data" / f"{case_id}.jpg",
        isic_root / "ISIC-2017_Training_Part1_GroundTruth" / f"{case_id}_segmentation.png",
    )


def train_with_engine(root: Path, isic_root: Path, test_cases: int = 6) -> Path:
    """``hlfnet.engine.train`` for a few seconds on the real ISIC images: a tiny HLF-Net at 48×64.

    The run folder is what ``hlfnet train`` writes (config.yaml, split.json, checkpoints, model.safetensors,
    metrics.csv, curves.png). Its test split is then narrowed to its first ``test_cases`` images so that evaluating it stays quick.
    """
    import json

    from hlfnet.engine import ExperimentConfig, train

    config = ExperimentConfig.from_dict(
        {
            "name": "isic_tiny",
            "model": {"name": "hlfnet", **TINY},
            "data": {
                "format": "isic2017",
                "root": str(isic_root),
                "image_size": [48, 64],
                "in_channels": 4,
                "cache_dir": str(root.parent / "cache"),
            },
            "train": {
                "max_epochs": 2,
                "batch_size": 6,
                "lr": 0.01,
                "limit_train_batches": 10,
                "limit_val_batches": 2,
                "progress_bar": False,
            },
        }
    )
    result = train(config, root)
    split = json.loads((result.run_dir / "split.json").read_text())
    split["test"] = split["test"][:test_cases]
    (result.run_dir / "split.json").write_text(json.dumps(split))
    return result.run_dir


@pytest.fixture(scope="session")
def trained_isic_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny HLF-Net trained by ``hlfnet.engine`` for a few seconds on real ISIC images; skips without them."""
    from tests.conftest import shared_data_root

    isic_root = shared_data_root() / "isic2017"
    if not isic_root.exists():
        pytest.skip(f"real data not found at {isic_root} (set HLFNET_SHARED_DATA to the shared/data folder)")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return train_with_engine(tmp_path_factory.mktemp("runs") / "isic_tiny", isic_root)
    finally:
        torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """One intra-op thread: tiny tensors gain nothing from two, and a shared machine punishes spinning threads."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
