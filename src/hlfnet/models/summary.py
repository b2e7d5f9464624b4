"""Parameter and FLOP counts, used by ``hlfnet models``, the benchmarks and the tests."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["count_parameters", "count_flops"]


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def count_flops(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Forward FLOPs for one input of ``input_shape`` (with batch), 2 FLOPs per multiply–add.

    Counts convolutions and matrix products (PyTorch's ``FlopCounterMode``); normalisation, activations
    and pooling are not counted, as is usual for GFLOP figures of CNNs.
    """
    was_training = model.training
    model.eval()
    try:
        x = torch.zeros(input_shape)
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            model(x)
        return int(counter.get_total_flops())
    finally:
        model.train(was_training)
