"""Tiny experiments for the engine tests: 32×32 synthetic images, 4 base channels, a dozen images."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

#: One intra-op thread everywhere in these tests: tiny tensors gain nothing from two, and on a shared machine
#: OpenMP's spinning threads can turn a 30 ms step into seconds. Subprocesses get the same setting.
SUBPROCESS_ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def tiny_overrides(cache_dir: Path, **extra: object) -> list[str]:
    """Overrides that shrink the ``synthetic`` config to a couple of seconds per run."""
    values: dict[str, object] = {
        "model.base_channels": 4,
        "data.image_size": "[32,32]",
        "data.synthetic_train": 12,
        "data.synthetic_val": 6,
        "data.synthetic_test": 6,
        "data.cache_dir": str(cache_dir),
        "train.max_epochs": 3,
        "train.lr": 0.01,
        "train.lr_step_epochs": 2,
        "train.progress_bar": "false",
        "train.log_every_n_steps": 1,
    }
    values.update({key.replace("__", "."): value for key, value in extra.items()})
    return [f"{key}={value}" for key, value in values.items()]


@pytest.fixture(scope="session")
def engine_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One data cache for the whole session (the synthetic images are generated once)."""
    return tmp_path_factory.mktemp("hlfnet-cache")


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
