"""Inference: logits → probabilities (with flip test-time augmentation) → labels, and post-processing.

* :func:`network_logits` runs a PyTorch network in the chosen device, memory format and precision (an exported
  model is called as it is);
* :func:`activate` turns logits into probabilities: sigmoid for one channel (binary), softmax otherwise;
* :func:`flip_averaged` is the flip TTA: the mean of the probabilities over identity, horizontal, vertical and
  both flips (:data:`TTA_FLIPS`, the flips of the training augmentation), each flipped back;
* :func:`to_labels` thresholds (binary) or takes the argmax (multi-class); :func:`resize_probabilities` brings
  probabilities back to an image's own size *before* that, bilinearly;
* :func:`largest_component` keeps the largest connected component of each class (2-D or 3-D).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "TTA_FLIPS",
    "activate",
    "flip_averaged",
    "largest_component",
    "network_logits",
    "resize_probabilities",
    "to_labels",
]

# flips of the training augmentation (hflip, vflip) and their combination; dims of (B, K, H, W)
TTA_FLIPS: tuple[tuple[int, ...], ...] = ((), (3,), (2,), (2, 3))


def network_logits(
    model: nn.Module | Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    device: torch.device,
    memory_format: torch.memory_format = torch.contiguous_format,
    bf16: bool = False,
) -> torch.Tensor:
    """The logits of a preprocessed batch ``(B, C, H, W)``.

    An ``nn.Module`` runs on ``device`` in ``memory_format``, under bfloat16 autocast when ``bf16``, in
    inference mode; its logits come back as float32 on the CPU. Any other model (ONNX, TorchScript) is called
    as it is.
    """
    if isinstance(model, nn.Module):
        x = x.to(device).contiguous(memory_format=memory_format)
        with torch.inference_mode(), torch.autocast(device.type, torch.bfloat16, enabled=bf16):
            return model(x).float().cpu()
    return model(x)


def activate(logits: torch.Tensor, out_channels: int) -> torch.Tensor:
    """Probabilities of logits ``(B, K, H, W)``: sigmoid for a binary model (``out_channels == 1``), else
    softmax over the channels."""
    return torch.sigmoid(logits) if out_channels == 1 else torch.softmax(logits, dim=1)


def flip_averaged(probabilities: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Flip TTA: the mean of ``probabilities`` over the flips :data:`TTA_FLIPS` of ``x``, each flipped back.

    Args:
        probabilities: ``(B, C, H, W)`` → ``(B, K, H, W)`` probabilities of one forward pass.
        x: the preprocessed batch.
    """
    total = torch.zeros(0)
    for dims in TTA_FLIPS:
        p = probabilities(x.flip(dims) if dims else x)
        p = p.flip(dims) if dims else p
        total = p if total.numel() == 0 else total + p
    return total / len(TTA_FLIPS)


def to_labels(probabilities: torch.Tensor, threshold: float) -> torch.Tensor:
    """``(B, K, H, W)`` probabilities → ``(B, H, W)`` ``uint8`` labels: ``p > threshold`` (K = 1) or argmax."""
    if probabilities.shape[1] == 1:
        return (probabilities[:, 0] > threshold).to(torch.uint8)
    return probabilities.argmax(dim=1).to(torch.uint8)


def resize_probabilities(probabilities: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize ``(B, K, H, W)`` probabilities bilinearly to ``size`` (the image's own size)."""
    return F.interpolate(probabilities, size=size, mode="bilinear", align_corners=False)


def largest_component(
    mask: np.ndarray, num_classes: int = 2, classes: Sequence[int] | None = None
) -> np.ndarray:
    """Keep, for every foreground class, only its largest connected component (full connectivity).

    Args:
        mask: ``uint8`` labels, 2-D ``(H, W)`` or 3-D ``(H, W, D)``.
        num_classes: classes including background 0.
        classes: only these foreground classes (``None`` = all of them).

    Returns:
        A new label array; removed voxels become background. Classes absent from ``mask`` stay absent.
    """
    from scipy import ndimage

    out = mask.copy()
    structure = np.ones((3,) * mask.ndim, dtype=bool)
    for k in range(1, num_classes) if classes is None else classes:
        labelled, count = ndimage.label(mask == k, structure=structure)
        if count <= 1:
            continue
        sizes = np.bincount(labelled.ravel())
        sizes[0] = 0
        out[(labelled != int(sizes.argmax())) & (mask == k)] = 0
    return out
