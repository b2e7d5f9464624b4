"""Shared test fixtures: where the real data lives, and a fixed seed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_data_root() -> Path:
    """``$HLFNET_SHARED_DATA`` or ``../shared/data`` next to the repository."""
    return Path(os.environ.get("HLFNET_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


def _require(sub: str) -> Path:
    path = shared_data_root() / sub
    if not path.exists():
        pytest.skip(f"real data not found at {path} (set HLFNET_SHARED_DATA to the shared/data folder)")
    return path


@pytest.fixture
def isic_root() -> Path:
    """The real ISIC 2017 training pairs (official layout); skips when absent."""
    return _require("isic2017")


@pytest.fixture
def spleen_root() -> Path:
    """The real CT volume in the MSD Task09 layout; skips when absent."""
    return _require("totalseg-example-ct")


@pytest.fixture
def isbi_root() -> Path:
    """ISBI 2012 EM images + masks (bring-your-own folder layout); skips when absent."""
    return _require("isbi2012-membrane")


@pytest.fixture(autouse=True)
def _seed_and_threads() -> None:
    torch.manual_seed(0)
