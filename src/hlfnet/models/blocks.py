"""Building blocks shared by every network in :mod:`hlfnet.models`.

Every block takes ``spatial_dims`` (2 or 3) so that the same code builds a 2D network for the paper's slices and
a 3D network for the paper's future work. A *convolution module* is the paper's unit (§2.3): 3×3 convolution,
group normalisation and ReLU.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = [
    "ConvModule",
    "DoubleConv",
    "ResidualBlock",
    "BottleneckBlock",
    "conv_nd",
    "conv_transpose_nd",
    "max_pool_nd",
    "group_count",
    "check_spatial_dims",
]


def check_spatial_dims(spatial_dims: int) -> int:
    """Return ``spatial_dims`` if it is 2 or 3, else raise ``ValueError`` naming the value."""
    if spatial_dims not in (2, 3):
        raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims!r}")
    return spatial_dims


def check_positive(name: str, value: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def conv_nd(spatial_dims: int) -> type[nn.Module]:
    return (nn.Conv2d, nn.Conv3d)[check_spatial_dims(spatial_dims) - 2]


def conv_transpose_nd(spatial_dims: int) -> type[nn.Module]:
    return (nn.ConvTranspose2d, nn.ConvTranspose3d)[check_spatial_dims(spatial_dims) - 2]


def max_pool_nd(spatial_dims: int) -> nn.Module:
    return (nn.MaxPool2d, nn.MaxPool3d)[check_spatial_dims(spatial_dims) - 2](kernel_size=2, stride=2)


def group_count(channels: int, groups: int) -> int:
    """Largest number of GroupNorm groups ``<= groups`` that divides ``channels``.

    The paper uses GroupNorm without giving the group count; we ask for 8 and fall back to the largest divisor
    so that widths such as Unet-28 still build: 28 channels get 7 groups of 4.
    """
    check_positive("norm_groups", groups)
    return max(g for g in range(1, min(groups, channels) + 1) if channels % g == 0)


class ConvModule(nn.Sequential):
    """The paper's convolution module: ``k×k`` convolution → GroupNorm → ReLU (§2.3).

    Shapes: ``(B, in_channels, *S) -> (B, out_channels, *S)`` (padding keeps the spatial size).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        spatial_dims: int = 2,
        kernel_size: int = 3,
        norm_groups: int = 8,
        act: bool = True,
    ) -> None:
        check_positive("in_channels", in_channels)
        check_positive("out_channels", out_channels)
        layers: list[nn.Module] = [
            conv_nd(spatial_dims)(
                in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False
            ),
            nn.GroupNorm(group_count(out_channels, norm_groups), out_channels),
        ]
        if act:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class DoubleConv(nn.Sequential):
    """Two convolution modules, the plain U-Net block: ``(B, C_in, *S) -> (B, C_out, *S)``."""

    def __init__(
        self, in_channels: int, out_channels: int, spatial_dims: int = 2, norm_groups: int = 8
    ) -> None:
        super().__init__(
            ConvModule(in_channels, out_channels, spatial_dims, norm_groups=norm_groups),
            ConvModule(out_channels, out_channels, spatial_dims, norm_groups=norm_groups),
        )


class _ResidualBase(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, spatial_dims: int, norm_groups: int) -> None:
        super().__init__()
        self.shortcut: nn.Module = (
            nn.Identity()
            if in_channels == out_channels
            else ConvModule(
                in_channels, out_channels, spatial_dims, kernel_size=1, norm_groups=norm_groups, act=False
            )
        )
        self.act = nn.ReLU(inplace=True)
        self.body: nn.Module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.shortcut(x))


class ResidualBlock(_ResidualBase):
    """ResNet basic block with GroupNorm: two 3×3 modules plus a (projection) shortcut (He et al. 2016).

    This is the block whose Res-Unet-28 has 6.22 M parameters, the 6.2×10⁶ of the paper's Table 1.
    """

    def __init__(
        self, in_channels: int, out_channels: int, spatial_dims: int = 2, norm_groups: int = 8
    ) -> None:
        super().__init__(in_channels, out_channels, spatial_dims, norm_groups)
        self.body = nn.Sequential(
            ConvModule(in_channels, out_channels, spatial_dims, norm_groups=norm_groups),
            ConvModule(out_channels, out_channels, spatial_dims, norm_groups=norm_groups, act=False),
        )


class BottleneckBlock(_ResidualBase):
    """ResNet bottleneck block with GroupNorm: 1×1 reduce → 3×3 → 1×1 expand, plus a (projection) shortcut.

    ``mid_channels = out_channels // expansion`` (ResNet uses 4; with expansion 1 every layer keeps the width).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        spatial_dims: int = 2,
        norm_groups: int = 8,
        expansion: int = 1,
    ) -> None:
        super().__init__(in_channels, out_channels, spatial_dims, norm_groups)
        check_positive("expansion", expansion)
        mid = max(1, out_channels // expansion)
        self.body = nn.Sequential(
            ConvModule(in_channels, mid, spatial_dims, kernel_size=1, norm_groups=norm_groups),
            ConvModule(mid, mid, spatial_dims, norm_groups=norm_groups),
            ConvModule(mid, out_channels, spatial_dims, kernel_size=1, norm_groups=norm_groups, act=False),
        )
