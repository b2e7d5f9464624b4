"""GPU by default: ``auto`` everywhere, resolving to the CPU here and never to an unsupported device."""

from __future__ import annotations

import pytest
import torch

from hlfnet.engine import TrainConfig
from hlfnet.engine.training import resolve_accelerator
from hlfnet.evaluation.predictor import resolve_device


def test_defaults_are_auto() -> None:
    import inspect

    from hlfnet.evaluation import Predictor

    assert TrainConfig().accelerator == "auto"
    assert inspect.signature(Predictor).parameters["device"].default == "auto"


def test_auto_is_cuda_exactly_when_pytorch_sees_a_gpu() -> None:
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_accelerator("auto") == ("gpu" if torch.cuda.is_available() else "cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without a GPU")
def test_asking_for_a_missing_gpu_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="CUDA"):
        resolve_device("cuda")
    with pytest.raises(ValueError, match="no CUDA GPU"):
        resolve_accelerator("gpu")


def test_nonsense_device_is_refused() -> None:
    with pytest.raises(ValueError, match="nonsense"):
        resolve_device("nonsense")
