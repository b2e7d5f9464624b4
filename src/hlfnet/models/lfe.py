"""Low-level Feature Enhancement module (LFE), §2.2 and Fig. 2 of the HLF-Net paper.

Two branches on the same input ``X``:

* the trunk ``F_tr(X)``: the plain encoder block (two convolution modules), so that an LFE encoder differs
  from a plain encoder only by the semantic-embedding branch;
* the semantic-embedding branch: a mini encoder–decoder with two down-samplings (2×2 max-pooling) and two
  up-samplings (linear interpolation to the size of the skip, so any input size works), skip connections
  between them, then a 1×1 convolution to one channel ``s'``.

Output: ``X̃ = (1 + σ(s')) ⊗ F_tr(X)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hlfnet.models.blocks import DoubleConv, check_positive, conv_nd, max_pool_nd

__all__ = ["SemanticEmbedding", "LFE"]


class SemanticEmbedding(nn.Module):
    """Mini encoder–decoder of the LFE, returning ``σ(s')``: ``(B, C_in, *S) -> (B, 1, *S)`` in (0, 1).

    Widths stay at ``channels`` on all three scales; each scale has two convolution modules on the way down
    and two on the way up (the U-Net stage, at one level of width).
    """

    def __init__(self, in_channels: int, channels: int, spatial_dims: int = 2, norm_groups: int = 8) -> None:
        super().__init__()
        check_positive("channels", channels)
        self.spatial_dims = spatial_dims
        self.pool = max_pool_nd(spatial_dims)
        self.enc0 = DoubleConv(in_channels, channels, spatial_dims, norm_groups)
        self.enc1 = DoubleConv(channels, channels, spatial_dims, norm_groups)
        self.bottom = DoubleConv(channels, channels, spatial_dims, norm_groups)
        self.dec1 = DoubleConv(2 * channels, channels, spatial_dims, norm_groups)
        self.dec0 = DoubleConv(2 * channels, channels, spatial_dims, norm_groups)
        self.project = conv_nd(spatial_dims)(channels, 1, 1)

    def _up(self, x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        mode = "bilinear" if self.spatial_dims == 2 else "trilinear"
        return F.interpolate(x, size=like.shape[2:], mode=mode, align_corners=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e0 = self.enc0(x)
        e1 = self.enc1(self.pool(e0))
        b = self.bottom(self.pool(e1))
        d1 = self.dec1(torch.cat([e1, self._up(b, e1)], dim=1))
        d0 = self.dec0(torch.cat([e0, self._up(d1, e0)], dim=1))
        return torch.sigmoid(self.project(d0))


class LFE(nn.Module):
    """Low-level Feature Enhancement encoder block (§2.2).

    Args:
        in_channels: channels of ``X``.
        out_channels: channels of the output (and of the trunk and the semantic branch).
        spatial_dims: 2 or 3.
        norm_groups: GroupNorm groups.

    Shapes:
        ``(B, in_channels, *S) -> (B, out_channels, *S)``; the map ``σ(s')`` is ``(B, 1, *S)``.
    """

    def __init__(
        self, in_channels: int, out_channels: int, spatial_dims: int = 2, norm_groups: int = 8
    ) -> None:
        super().__init__()
        self.trunk = DoubleConv(in_channels, out_channels, spatial_dims, norm_groups)
        self.semantic = SemanticEmbedding(in_channels, out_channels, spatial_dims, norm_groups)

    def forward_with_attention(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(X̃, σ(s'))``."""
        attention = self.semantic(x)
        return (1 + attention) * self.trunk(x), attention

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_attention(x)[0]
