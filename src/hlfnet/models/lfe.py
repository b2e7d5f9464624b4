"""Low-level Feature Enhancement module (LFE), §2.2 and Fig. 2 of the HLF-Net paper.

Two branches on the same input ``X``:

* the trunk ``F_tr(X)``: the plain encoder block (two convolution modules), so that an LFE encoder differs
  from a plain encoder only by the semantic-embedding branch;
* the semantic-embedding branch: a mini encoder–decoder with two down-samplings (2×2 max-pooling) and two
  up-samplings, skip connections between them, then a 1×1 convolution to one channel ``s'``.

Output: ``X̃ = (1 + σ(s')) ⊗ F_tr(X)``.

Two styles of the semantic branch (``style=``), both with the paper's structure; they differ where the paper
is silent (docs/architecture.md, decisions 8–9):

* ``"cfenet"`` (default) -- the authors' own layout, as their journal version's code builds it (HiLab-git/CFENet,
  ``ISIC 2017.ipynb``, class ``High_map``): one convolution module per scale at widths ``c, c, 2c``, 2×2
  transposed convolutions up, one convolution module after each skip concatenation; and one more convolution
  module after ``(1 + σ(s')) ⊗ F_tr(X)`` (class ``High_to_Low``). With it the Table 1 counts match (HLF-Net
  5.53 M vs 5.5 M, only-LFE 3.87 M vs 3.8 M). The branch pads its input to a multiple of 4 (edge replication)
  and crops its map back, so any size works.
* ``"compact"`` -- hlfnet's earlier reading: the level's width ``c`` at all three scales, two convolution
  modules per scale, parameter-free (bi/tri)linear up-sampling to the skip's size, no module after the product
  (HLF-Net 5.86 M, only-LFE 4.20 M). The first shipped models were trained with it.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from hlfnet.models.blocks import (
    ConvModule,
    DoubleConv,
    check_positive,
    conv_nd,
    conv_transpose_nd,
    max_pool_nd,
)

__all__ = ["LFE", "LFE_STYLES", "CompactSemanticEmbedding", "CFENetSemanticEmbedding", "LFEStyle"]

LFEStyle = Literal["cfenet", "compact"]
LFE_STYLES: tuple[str, ...] = ("cfenet", "compact")


class CompactSemanticEmbedding(nn.Module):
    """The ``compact`` semantic branch, returning ``σ(s')``: ``(B, C_in, *S) -> (B, 1, *S)`` in (0, 1).

    Widths stay at ``channels`` on all three scales; each scale has two convolution modules on the way down
    and two on the way up (the U-Net stage, at one level of width); up-sampling interpolates to the skip's size.
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


class CFENetSemanticEmbedding(nn.Module):
    """The ``cfenet`` semantic branch, returning ``σ(s')``: ``(B, C_in, *S) -> (B, 1, *S)`` in (0, 1).

    One convolution module per scale, widths ``c`` (full), ``c`` (1/2), ``2c`` (1/4); up-sampling by 2×2
    transposed convolutions (``2c -> c``, ``c -> c``); after each concatenation with the skip one convolution
    module ``2c -> c``; a 1×1 convolution to one channel and a sigmoid.
    """

    def __init__(self, in_channels: int, channels: int, spatial_dims: int = 2, norm_groups: int = 8) -> None:
        super().__init__()
        check_positive("channels", channels)
        up = conv_transpose_nd(spatial_dims)
        self.pool = max_pool_nd(spatial_dims)
        self.enc0 = ConvModule(in_channels, channels, spatial_dims, norm_groups=norm_groups)
        self.enc1 = ConvModule(channels, channels, spatial_dims, norm_groups=norm_groups)
        self.bottom = ConvModule(channels, 2 * channels, spatial_dims, norm_groups=norm_groups)
        self.up1 = up(2 * channels, channels, kernel_size=2, stride=2)
        self.dec1 = ConvModule(2 * channels, channels, spatial_dims, norm_groups=norm_groups)
        self.up0 = up(channels, channels, kernel_size=2, stride=2)
        self.dec0 = ConvModule(2 * channels, channels, spatial_dims, norm_groups=norm_groups)
        self.project = conv_nd(spatial_dims)(channels, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[2:]
        extra = [(-s) % 4 for s in size]  # two 2x2 poolings, then two exact doublings
        if any(extra):
            x = F.pad(x, [p for e in reversed(extra) for p in (0, e)], mode="replicate")
        e0 = self.enc0(x)
        e1 = self.enc1(self.pool(e0))
        b = self.bottom(self.pool(e1))
        d1 = self.dec1(torch.cat([e1, self.up1(b)], dim=1))
        d0 = self.dec0(torch.cat([e0, self.up0(d1)], dim=1))
        s = self.project(d0)
        return torch.sigmoid(s[(slice(None), slice(None), *(slice(0, n) for n in size))])


class LFE(nn.Module):
    """Low-level Feature Enhancement encoder block (§2.2).

    Args:
        in_channels: channels of ``X``.
        out_channels: channels of the output (and of the trunk and the semantic branch).
        spatial_dims: 2 or 3.
        norm_groups: GroupNorm groups.
        style: ``"cfenet"`` (the authors' layout, default) or ``"compact"`` (see the module docstring).

    Shapes:
        ``(B, in_channels, *S) -> (B, out_channels, *S)``; the map ``σ(s')`` is ``(B, 1, *S)``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        spatial_dims: int = 2,
        norm_groups: int = 8,
        style: LFEStyle = "cfenet",
    ) -> None:
        super().__init__()
        if style not in LFE_STYLES:
            raise ValueError(f"lfe_style must be one of {LFE_STYLES}, got {style!r}")
        self.style = style
        self.trunk = DoubleConv(in_channels, out_channels, spatial_dims, norm_groups)
        branch = CFENetSemanticEmbedding if style == "cfenet" else CompactSemanticEmbedding
        self.semantic = branch(in_channels, out_channels, spatial_dims, norm_groups)
        self.fuse: nn.Module = (
            ConvModule(out_channels, out_channels, spatial_dims, norm_groups=norm_groups)
            if style == "cfenet"
            else nn.Identity()
        )

    def forward_with_attention(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(X̃, σ(s'))`` (for ``cfenet``, ``X̃`` after the module that follows the product)."""
        attention = self.semantic(x)
        return self.fuse((1 + attention) * self.trunk(x)), attention

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_attention(x)[0]
