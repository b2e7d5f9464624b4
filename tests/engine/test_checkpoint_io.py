"""Checkpoints are written atomically: a failed or interrupted save never leaves a corrupt file."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from hlfnet.engine.callbacks import AtomicCheckpointIO, RandomStateCallback


class _Unpicklable:
    def __reduce__(self) -> tuple:
        raise RuntimeError("disk full (simulated)")


def test_failed_save_keeps_the_previous_checkpoint_and_no_temporary_file(tmp_path: Path) -> None:
    io = AtomicCheckpointIO()
    path = tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint({"epoch": 1, "w": torch.ones(3)}, path)
    with pytest.raises(RuntimeError, match="disk full"):
        io.save_checkpoint({"epoch": 2, "w": torch.zeros(3), "bad": _Unpicklable()}, path)
    assert torch.load(path, weights_only=True)["epoch"] == 1
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.ckpt"]
    with pytest.raises(TypeError, match="storage_options"):
        io.save_checkpoint({}, path, storage_options={"x": 1})


def test_random_state_round_trips_through_a_weights_only_checkpoint(tmp_path: Path) -> None:
    import random

    import numpy as np

    callback = RandomStateCallback()
    torch.manual_seed(3)
    np.random.seed(3)
    random.seed(3)
    path = tmp_path / "state.ckpt"
    AtomicCheckpointIO().save_checkpoint({"rng": callback.state_dict()}, path)
    expected = (torch.rand(2), np.random.rand(2), random.random())
    torch.manual_seed(99)
    np.random.seed(99)
    random.seed(99)
    callback.load_state_dict(torch.load(path, weights_only=True)["rng"])
    assert torch.equal(torch.rand(2), expected[0])
    assert np.array_equal(np.random.rand(2), expected[1])
    assert random.random() == expected[2]
