"""High-level Feature Enhancement module (HFE), §2.1 and Fig. 1 of the HLF-Net paper.

HFE replaces the plain skip connection ``concat(X, U)`` of a U-Net decoder stage. With ``Y = concat(X, U)``
(``2c`` channels; ``X`` the low-level skip, ``U`` the up-sampled high-level feature):

* channel recalibration: ``z = GAP(Y)``, ``z' = conv1x1(ReLU(conv1x1(z)))``, ``z̃ = σ(z')``,
  ``Ỹc = (1 + z̃) ⊗ Y``;
* spatial recalibration: ``s = conv1x1(Y)`` (one channel), ``s̃ = σ(s)``, ``Ỹs = (1 + s̃) ⊗ Y``;
* fusion: ``concat(Ỹc, Ỹs)`` (``4c``) → 3×3 convolution module that reduces the channels back to ``2c``.

The output has the same ``2c`` channels as the plain concatenation, so the decoder stage that follows is
identical with and without HFE: the variants differ only where the paper says they differ.
"""

from __future__ import annotations

import torch
from torch import nn

from hlfnet.models.blocks import ConvModule, check_positive, conv_nd

__all__ = ["ChannelRecalibration", "SpatialRecalibration", "HFE"]


class ChannelRecalibration(nn.Module):
    """``z̃ = σ(conv1x1(ReLU(conv1x1(GAP(Y)))))``: ``(B, C, *S) -> (B, C, 1, ...)`` coefficients in (0, 1).

    Args:
        channels: channels of ``Y``.
        reduction: hidden width is ``channels // reduction`` (at least 1). The paper does not give it; the
            default 2 is our choice (see docs/architecture.md).
    """

    def __init__(self, channels: int, spatial_dims: int = 2, reduction: int = 2) -> None:
        super().__init__()
        check_positive("channels", channels)
        check_positive("reduction", reduction)
        if reduction > channels:
            raise ValueError(f"reduction ({reduction}) must not exceed channels ({channels})")
        hidden = max(1, channels // reduction)
        conv = conv_nd(spatial_dims)
        self.spatial_dims = spatial_dims
        self.fc = nn.Sequential(conv(channels, hidden, 1), nn.ReLU(inplace=True), conv(hidden, channels, 1))

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        z = y.mean(dim=tuple(range(2, 2 + self.spatial_dims)), keepdim=True)
        return torch.sigmoid(self.fc(z))


class SpatialRecalibration(nn.Module):
    """``s̃ = σ(conv1x1(Y))``: ``(B, C, *S) -> (B, 1, *S)`` pixel-wise coefficients in (0, 1)."""

    def __init__(self, channels: int, spatial_dims: int = 2) -> None:
        super().__init__()
        self.conv = conv_nd(spatial_dims)(channels, 1, 1)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.conv(y))


class HFE(nn.Module):
    """High-level Feature Enhancement of the skip connection (§2.1).

    Args:
        channels: channels ``c`` of each input (``X`` and ``U`` both have ``c``); ``Y`` has ``2c``.
        spatial_dims: 2 or 3.
        reduction: reduction ratio of the channel recalibration (on ``2c`` channels).
        norm_groups: GroupNorm groups of the fusion module.

    Shapes:
        ``skip (B, c, *S)``, ``up (B, c, *S) -> (B, 2c, *S)``.
    """

    def __init__(
        self, channels: int, spatial_dims: int = 2, reduction: int = 2, norm_groups: int = 8
    ) -> None:
        super().__init__()
        check_positive("channels", channels)
        self.channel = ChannelRecalibration(2 * channels, spatial_dims, reduction)
        self.spatial = SpatialRecalibration(2 * channels, spatial_dims)
        self.fuse = ConvModule(4 * channels, 2 * channels, spatial_dims, norm_groups=norm_groups)

    def forward_with_attention(
        self, skip: torch.Tensor, up: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return ``(output, s̃, z̃)`` with ``s̃`` of shape ``(B, 1, *S)`` and ``z̃`` of ``(B, 2c, 1, ...)``."""
        y = torch.cat([skip, up], dim=1)
        z = self.channel(y)
        s = self.spatial(y)
        out = self.fuse(torch.cat([(1 + z) * y, (1 + s) * y], dim=1))
        return out, s, z

    def forward(self, skip: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
        return self.forward_with_attention(skip, up)[0]
