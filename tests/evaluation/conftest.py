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


ISIC_TRAIN = [f"ISIC_{i:07d}" for i in (0, 1, 2, 3, 4, 6, 7, 8, 9, 10, 11, 12)]


def isic_files(isic_root: Path, case_id: str) -> tuple[Path, Path]:
    """Image and mask file of an ISIC 2017 training case."""
    return (
        isic_root / "ISIC-2017_Training_Data" / f"{case_id}.jpg",
        isic_root / "ISIC-2017_Training_Part1_GroundTruth" / f"{case_id}_segmentation.png",
    )


def train_tiny_isic(
    root: Path, isic_root: Path, steps: int = 20, image_size: tuple[int, int] = (48, 64)
) -> Path:
    """Train a tiny HLF-Net for a few steps on real ISIC images (plain torch loop, Dice loss) into a run folder.

    The preprocessing is the data package's own (``preprocess_image``, nearest-resized masks), so the run
    records exactly what ``hlfnet predict`` must rebuild.
    """
    import numpy as np

    from hlfnet.data import DataConfig, preprocess_image, read_mask
    from hlfnet.data.preprocess import resize_mask

    data = {
        "format": "isic2017",
        "root": str(isic_root),
        "image_size": list(image_size),
        "in_channels": 4,
        "cache_dir": str(root.parent / "cache"),
    }
    cfg = DataConfig.from_dict(data)
    images, masks = [], []
    for case_id in ISIC_TRAIN:
        image, mask = isic_files(isic_root, case_id)
        images.append(preprocess_image(image, cfg)[0])
        masks.append(torch.from_numpy(resize_mask(read_mask(mask), cfg.image_size).astype(np.float32)))
    x, y = torch.stack(images), torch.stack(masks)[:, None]
    torch.manual_seed(0)
    model = create_model("hlfnet", in_channels=4, out_channels=1, **TINY)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    for step in range(steps):
        batch = torch.arange(len(x)).roll(-4 * step)[:6]
        p = torch.sigmoid(model(x[batch]))
        loss = 1 - (2 * (p * y[batch]).sum() + 1) / (p.sum() + y[batch].sum() + 1)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    model.eval()
    split = {
        "train": ISIC_TRAIN,
        "val": ["ISIC_0000013", "ISIC_0000014", "ISIC_0000015"],
        "test": [
            "ISIC_0000016",
            "ISIC_0000017",
            "ISIC_0000018",
            "ISIC_0000019",
            "ISIC_0000020",
            "ISIC_0000021",
        ],
    }
    return make_run(root, data, split=split, model=model)


@pytest.fixture(scope="session")
def trained_isic_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny HLF-Net trained for a few seconds on 12 real ISIC images; skips without the shared data."""
    from tests.conftest import shared_data_root

    isic_root = shared_data_root() / "isic2017"
    if not isic_root.exists():
        pytest.skip(f"real data not found at {isic_root} (set HLFNET_SHARED_DATA to the shared/data folder)")
    return train_tiny_isic(tmp_path_factory.mktemp("runs") / "isic_tiny", isic_root)
