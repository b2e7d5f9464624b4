"""One encoder–decoder skeleton for every network of the paper's Table 1.

``EncoderDecoderNet`` is a U-Net with ``depth`` down-samplings (2×2 max-pooling) and as many up-samplings
(2×2 transposed convolutions). Two choices make the variants, and nothing else differs between them:

* ``encoder_block`` – the block of encoder levels ``0 .. depth-1``: ``"plain"`` (two convolution modules),
  ``"lfe"`` (LFE, §2.2), ``"residual"`` or ``"bottleneck"`` (ResNet blocks, used by Res-Unet-28 in encoder,
  bottom and decoder, "every convolution block replaced");
* ``skip_fusion`` – how a decoder stage joins the skip ``X`` and the up-sampled ``U``: ``"concat"``
  (U-Net) or ``"hfe"`` (HFE, §2.1). Both give ``2c`` channels, then the decoder's block reduces them to ``c``.

Inputs of any size work: they are padded on the far side of every spatial axis (edge replication) to the
next multiple of ``2**depth``; the logits and every attention map are cropped back to
``ceil(size / 2**level)``. So a 250×190 input gives 250×190 logits.

Models return logits. Apply ``sigmoid`` (``out_channels == 1``) or ``softmax`` over channels
(``out_channels > 1``) in the loss or at inference, never inside the network.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from hlfnet.models.blocks import (
    BottleneckBlock,
    DoubleConv,
    ResidualBlock,
    check_positive,
    check_spatial_dims,
    conv_nd,
    conv_transpose_nd,
    max_pool_nd,
)
from hlfnet.models.hfe import HFE
from hlfnet.models.lfe import LFE, LFE_STYLES, LFEStyle

__all__ = ["AttentionMaps", "SegmentationOutput", "EncoderDecoderNet", "ENCODER_BLOCKS", "SKIP_FUSIONS"]

EncoderBlock = Literal["plain", "lfe", "residual", "bottleneck"]
SkipFusion = Literal["concat", "hfe"]
ENCODER_BLOCKS: tuple[str, ...] = ("plain", "lfe", "residual", "bottleneck")
SKIP_FUSIONS: tuple[str, ...] = ("concat", "hfe")


@dataclass
class AttentionMaps:
    """The weight maps of the paper's Fig. 4, each at its own resolution.

    Attributes:
        lfe: ``σ(s')`` of every LFE, encoder order from shallow (full resolution) to deep; each
            ``(B, 1, *S_l)`` with ``S_l = ceil(S / 2**l)``. Empty when the encoder has no LFE.
        hfe_spatial: ``s̃`` of every HFE, decoder order from deep to shallow (level ``depth-1`` … 0);
            each ``(B, 1, *S_l)``. Empty when the decoder has no HFE.
        hfe_channel: ``z̃`` of every HFE in the same order; each ``(B, 2 * C_l, 1, ...)``.
    """

    lfe: list[torch.Tensor] = field(default_factory=list)
    hfe_spatial: list[torch.Tensor] = field(default_factory=list)
    hfe_channel: list[torch.Tensor] = field(default_factory=list)


@dataclass
class SegmentationOutput:
    """What :meth:`EncoderDecoderNet.forward_with_attention` returns: logits ``(B, K, *S)`` and the maps."""

    logits: torch.Tensor
    attention: AttentionMaps


def _make_block(
    kind: str,
    in_channels: int,
    out_channels: int,
    spatial_dims: int,
    norm_groups: int,
    lfe_style: str = "cfenet",
) -> nn.Module:
    if kind == "plain":
        return DoubleConv(in_channels, out_channels, spatial_dims, norm_groups)
    if kind == "lfe":
        return LFE(in_channels, out_channels, spatial_dims, norm_groups, lfe_style)
    if kind == "residual":
        return ResidualBlock(in_channels, out_channels, spatial_dims, norm_groups)
    if kind == "bottleneck":
        return BottleneckBlock(in_channels, out_channels, spatial_dims, norm_groups)
    raise ValueError(f"encoder_block must be one of {ENCODER_BLOCKS}, got {kind!r}")


class DecoderStage(nn.Module):
    """Up-sample ``U``, join it with the skip ``X`` (concat or HFE), reduce ``2c -> c`` with the block."""

    def __init__(
        self, channels: int, skip_fusion: str, block: str, spatial_dims: int, norm_groups: int, reduction: int
    ) -> None:
        super().__init__()
        self.up = conv_transpose_nd(spatial_dims)(2 * channels, channels, kernel_size=2, stride=2)
        self.hfe = HFE(channels, spatial_dims, reduction, norm_groups) if skip_fusion == "hfe" else None
        self.block = _make_block(block, 2 * channels, channels, spatial_dims, norm_groups)

    def forward_with_attention(
        self, skip: torch.Tensor, below: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        up = self.up(below)
        if self.hfe is None:
            return self.block(torch.cat([skip, up], dim=1)), None, None
        fused, spatial, channel = self.hfe.forward_with_attention(skip, up)
        return self.block(fused), spatial, channel


class EncoderDecoderNet(nn.Module):
    """U-shaped network of the HLF-Net paper (Fig. 3) and of its ablations and baselines (Table 1).

    Args:
        in_channels: input channels (4 for ISIC RGB + grey, 1 for CT).
        out_channels: 1 for binary segmentation (sigmoid), ``K > 1`` for ``K`` classes (softmax).
        spatial_dims: 2 for images and slices, 3 for volumes.
        base_channels: width of level 0; level ``l`` has ``base_channels * 2**l``.
        depth: number of down-samplings (the paper: 4).
        encoder_block: ``"plain"``, ``"lfe"``, ``"residual"`` or ``"bottleneck"``.
        skip_fusion: ``"concat"`` or ``"hfe"``.
        norm_groups: GroupNorm groups (largest divisor of the width not above it).
        reduction: reduction ratio of HFE's channel recalibration.
        lfe_style: the LFE's semantic branch, ``"cfenet"`` (the authors' layout, default) or ``"compact"``
            (hlfnet's first reading); see :mod:`hlfnet.models.lfe`. Ignored without an LFE encoder.

    Raises:
        ValueError: on a non-positive width, depth or channel count, ``spatial_dims`` not 2 or 3, or an
            unknown block or fusion name; the message names the value.

    Shapes:
        ``(B, in_channels, *S) -> (B, out_channels, *S)`` for any ``S``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        spatial_dims: int = 2,
        base_channels: int = 16,
        depth: int = 4,
        encoder_block: EncoderBlock = "plain",
        skip_fusion: SkipFusion = "concat",
        norm_groups: int = 8,
        reduction: int = 2,
        lfe_style: LFEStyle = "cfenet",
    ) -> None:
        super().__init__()
        check_positive("in_channels", in_channels)
        check_positive("out_channels", out_channels)
        check_positive("base_channels", base_channels)
        check_positive("depth", depth)
        check_spatial_dims(spatial_dims)
        if encoder_block not in ENCODER_BLOCKS:
            raise ValueError(f"encoder_block must be one of {ENCODER_BLOCKS}, got {encoder_block!r}")
        if skip_fusion not in SKIP_FUSIONS:
            raise ValueError(f"skip_fusion must be one of {SKIP_FUSIONS}, got {skip_fusion!r}")
        if lfe_style not in LFE_STYLES:
            raise ValueError(f"lfe_style must be one of {LFE_STYLES}, got {lfe_style!r}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.spatial_dims = spatial_dims
        self.depth = depth
        widths = [base_channels * 2**level for level in range(depth + 1)]
        # LFE sits at the encoder levels; the bottom and the decoder keep the plain block, the ResNet
        # baselines use their block everywhere.
        other_block = "plain" if encoder_block == "lfe" else encoder_block

        self.pool = max_pool_nd(spatial_dims)
        self.encoder = nn.ModuleList(
            _make_block(encoder_block, c_in, c_out, spatial_dims, norm_groups, lfe_style)
            for c_in, c_out in zip([in_channels, *widths[:-2]], widths[:-1], strict=True)
        )
        self.bottom = _make_block(other_block, widths[-2], widths[-1], spatial_dims, norm_groups)
        self.decoder = nn.ModuleList(
            DecoderStage(widths[level], skip_fusion, other_block, spatial_dims, norm_groups, reduction)
            for level in reversed(range(depth))
        )
        self.head = conv_nd(spatial_dims)(widths[0], out_channels, 1)

    @property
    def has_attention_maps(self) -> bool:
        """True when :meth:`forward_with_attention` returns maps (an LFE in the encoder or an HFE in the
        decoder); the U-Net and Res-U-Net baselines return empty :class:`AttentionMaps`."""
        return any(isinstance(block, LFE) for block in self.encoder) or any(
            stage.hfe is not None for stage in self.decoder
        )

    def _pad(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, ...]]:
        size = tuple(x.shape[2:])
        multiple = 2**self.depth
        extra = [(-s) % multiple for s in size]
        if not any(extra):
            return x, size
        pad: list[int] = []
        for e in reversed(extra):  # F.pad lists the last axis first
            pad += [0, e]
        return F.pad(x, pad, mode="replicate"), size

    @staticmethod
    def _crop(t: torch.Tensor, size: tuple[int, ...], level: int) -> torch.Tensor:
        target = [-(-s // 2**level) for s in size]
        index = (slice(None), slice(None), *(slice(0, n) for n in target))
        return t[index]

    def forward_with_attention(self, x: torch.Tensor) -> SegmentationOutput:
        """Logits plus every LFE and HFE map (see :class:`AttentionMaps`)."""
        if x.ndim != self.spatial_dims + 2 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"expected input of shape (B, {self.in_channels}, {', '.join('S' * self.spatial_dims)}), "
                f"got {tuple(x.shape)}"
            )
        x, size = self._pad(x)
        maps = AttentionMaps()
        skips = []
        for level, block in enumerate(self.encoder):
            if isinstance(block, LFE):
                x, attention = block.forward_with_attention(x)
                maps.lfe.append(self._crop(attention, size, level))
            else:
                x = block(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottom(x)
        for level, stage, skip in zip(
            reversed(range(self.depth)), self.decoder, reversed(skips), strict=True
        ):
            x, spatial, channel = stage.forward_with_attention(skip, x)
            if spatial is not None and channel is not None:
                maps.hfe_spatial.append(self._crop(spatial, size, level))
                maps.hfe_channel.append(channel)
        return SegmentationOutput(self._crop(self.head(x), size, 0), maps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in_channels, *S) -> (B, out_channels, *S)`` logits."""
        return self.forward_with_attention(x).logits
