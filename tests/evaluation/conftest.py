"""Fixtures of the evaluation tests: tiny networks saved as run folders, the way training writes them."""

from __future__ import annotations

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
    config = {"model": {"name": model.model_name, **model.model_kwargs}, "data": data, "train": {"epochs": 1}}
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
