"""A 2-D network on 3-D windows one axial slice deep: how a 2-D plan of volumes (nnU-Net's ``2d``) slides.

MONAI's ``sliding_window_inference`` slides windows of the plan's ``window_size`` (``(X, Y, 1)``) over a prepared
volume ``(B, C, X, Y, Z)``; :func:`on_slices` drops the depth-1 axis before the 2-D network and restores it after,
so the Gaussian stitching, batching and padding stay MONAI's in 2-D and 3-D alike.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["on_slices"]


def on_slices(network: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
    """``network`` on ``(B, C, H, W)`` → the same on ``(B, C, H, W, 1)`` windows, output ``(B, K, H, W, 1)``."""

    def forward(windows: torch.Tensor) -> torch.Tensor:
        if windows.ndim != 5 or windows.shape[-1] != 1:
            raise ValueError(f"expected windows (B, C, H, W, 1), got {tuple(windows.shape)}")
        return network(windows[..., 0])[..., None]

    return forward
