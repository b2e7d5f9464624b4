"""Defaults, argument checks and structure of the building blocks (the paths that the numerical tests in
test_paper_equations.py do not reach: default arguments, error messages, widths at their limits)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hlfnet.models import (
    HFE,
    LFE,
    CFENetSemanticEmbedding,
    ChannelRecalibration,
    CompactSemanticEmbedding,
    EncoderDecoderNet,
    SpatialRecalibration,
)
from hlfnet.models.blocks import (
    BottleneckBlock,
    ConvModule,
    DoubleConv,
    ResidualBlock,
    check_positive,
    check_spatial_dims,
    conv_nd,
    conv_transpose_nd,
    group_count,
    max_pool_nd,
)
from hlfnet.models.network import DecoderStage


def _groups(module: nn.Module) -> list[int]:
    return [m.num_groups for m in module.modules() if isinstance(m, nn.GroupNorm)]


def _convs(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if isinstance(m, (nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d))]


def test_blocks_default_to_2d_3x3_and_8_groups():
    module = ConvModule(4, 16)
    assert [type(m) for m in module] == [nn.Conv2d, nn.GroupNorm, nn.ReLU]
    assert module[0].kernel_size == (3, 3) and module[0].padding == (1, 1) and module[1].num_groups == 8
    assert [type(m) for m in ConvModule(4, 16, act=False)] == [nn.Conv2d, nn.GroupNorm]
    assert _groups(DoubleConv(4, 16)) == [8, 8]
    assert all(isinstance(c, nn.Conv2d) for c in _convs(DoubleConv(4, 16)))
    residual = ResidualBlock(4, 16)
    assert _groups(residual) == [8, 8, 8] and all(isinstance(c, nn.Conv2d) for c in _convs(residual))
    assert isinstance(ResidualBlock(16, 16).shortcut, nn.Identity)
    bottleneck = BottleneckBlock(4, 16)  # expansion 1: every layer keeps the width
    assert [c.out_channels for c in bottleneck.body.modules() if isinstance(c, nn.Conv2d)] == [16, 16, 16]
    assert _groups(bottleneck) == [8, 8, 8, 8] and all(isinstance(c, nn.Conv2d) for c in _convs(bottleneck))


def test_every_constructor_defaults_to_8_groups():
    """18 channels take 6 groups when 8 are asked for (9 would be taken if 9 were asked): pins every default."""
    assert _groups(ConvModule(4, 18)) == [6]
    assert _groups(DoubleConv(4, 18)) == [6, 6]
    assert _groups(ResidualBlock(4, 18)) == [6, 6, 6]
    assert _groups(BottleneckBlock(4, 18)) == [6, 6, 6, 6]
    assert _groups(HFE(9)) == [6]  # the fusion module has 2c = 18 channels
    assert set(_groups(LFE(3, 18))) == {6}
    assert set(_groups(LFE(3, 18, style="compact"))) == {6}
    assert set(_groups(CompactSemanticEmbedding(3, 18))) == {6}
    assert set(_groups(CFENetSemanticEmbedding(3, 18))) == {6}
    net = EncoderDecoderNet(4, 1, base_channels=18, depth=1)  # widths 18 and 36: 6 groups of 3 and of 6
    assert set(_groups(net)) == {6}
    for block in ("lfe", "residual", "bottleneck"):
        assert set(_groups(EncoderDecoderNet(4, 1, base_channels=18, depth=1, encoder_block=block))) == {6}
    assert set(_groups(EncoderDecoderNet(4, 1, base_channels=18, depth=1, skip_fusion="hfe"))) == {6}


def test_attention_modules_defaults():
    channel = ChannelRecalibration(8)
    assert [type(m) for m in channel.fc] == [nn.Conv2d, nn.ReLU, nn.Conv2d]
    assert channel.fc[0].out_channels == 4 and channel.spatial_dims == 2  # reduction 2
    assert isinstance(SpatialRecalibration(8).conv, nn.Conv2d)
    hfe = HFE(8)
    assert hfe.channel.fc[0].out_channels == 8 and hfe.channel.fc[0].in_channels == 16
    assert _groups(hfe) == [8] and all(isinstance(c, nn.Conv2d) for c in _convs(hfe))
    lfe = LFE(3, 16)
    assert set(_groups(lfe)) == {8} and all(
        isinstance(c, (nn.Conv2d, nn.ConvTranspose2d)) for c in _convs(lfe)
    )
    assert lfe.style == "cfenet" and isinstance(lfe.semantic, CFENetSemanticEmbedding)
    assert isinstance(LFE(3, 16, style="compact").semantic, CompactSemanticEmbedding)
    semantic = CompactSemanticEmbedding(3, 16)
    assert semantic.spatial_dims == 2 and set(_groups(semantic)) == {8}
    cfenet = CFENetSemanticEmbedding(3, 16)  # widths c, c, 2c
    # enc0, enc1, bottom, up1 (transposed), dec1, up0 (transposed), dec0, the 1×1 projection
    assert [m.out_channels for m in _convs(cfenet)] == [16, 16, 32, 16, 16, 16, 16, 1]
    assert (cfenet.up1.in_channels, cfenet.up1.out_channels, cfenet.up0.in_channels) == (32, 16, 16)
    assert set(_groups(cfenet)) == {8}


def test_network_defaults_and_attributes():
    net = EncoderDecoderNet(4, 2)
    assert (net.in_channels, net.out_channels, net.spatial_dims, net.depth) == (4, 2, 2, 4)
    assert [stage.up.out_channels for stage in net.decoder] == [128, 64, 32, 16]  # base 16
    assert all(isinstance(block, DoubleConv) for block in net.encoder) and isinstance(net.bottom, DoubleConv)
    assert all(stage.hfe is None for stage in net.decoder)
    assert set(_groups(net)) == {8}
    hfe = EncoderDecoderNet(4, 1, skip_fusion="hfe")
    assert hfe.decoder[0].hfe.channel.fc[0].out_channels == 128  # 2c / 2 at c = 128


@pytest.mark.parametrize("kernel_size", [1, 3, 5, 7])
def test_convolution_module_padding_keeps_the_size_for_any_odd_kernel(kernel_size):
    for spatial in ((6, 9), (4, 5, 7)):
        module = ConvModule(2, 4, spatial_dims=len(spatial), kernel_size=kernel_size)
        assert module[0].padding == (kernel_size // 2,) * len(spatial)
        assert module(torch.randn(1, 2, *spatial)).shape == (1, 4, *spatial)


def test_bottleneck_mid_width_is_at_least_one():
    module = BottleneckBlock(4, 4, norm_groups=8, expansion=8)
    widths = [m.out_channels for m in module.body.modules() if isinstance(m, nn.Conv2d)]
    assert widths == [1, 1, 4]
    assert BottleneckBlock(8, 8, expansion=4).body[0][0].out_channels == 2


def test_channel_recalibration_hidden_width_limits():
    assert ChannelRecalibration(4, reduction=4).fc[0].out_channels == 1  # reduction == channels is allowed
    assert ChannelRecalibration(6, reduction=4).fc[0].out_channels == 1
    with pytest.raises(ValueError, match=r"^reduction \(5\) must not exceed channels \(4\)$"):
        ChannelRecalibration(4, reduction=5)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: ChannelRecalibration(0), "channels must be a positive integer, got 0"),
        (lambda: ChannelRecalibration(4, reduction=0), "reduction must be a positive integer, got 0"),
        (lambda: HFE(-1), "channels must be a positive integer, got -1"),
        (lambda: CompactSemanticEmbedding(3, 0), "channels must be a positive integer, got 0"),
        (lambda: CFENetSemanticEmbedding(3, 0), "channels must be a positive integer, got 0"),
        (lambda: LFE(3, 8, style="wide"), r"lfe_style must be one of \('cfenet', 'compact'\), got 'wide'"),
        (
            lambda: EncoderDecoderNet(4, 1, lfe_style="wide"),
            r"lfe_style must be one of \('cfenet', 'compact'\), got 'wide'",
        ),
        (lambda: BottleneckBlock(4, 4, expansion=0), "expansion must be a positive integer, got 0"),
        (lambda: ConvModule(0, 4), "in_channels must be a positive integer, got 0"),
        (lambda: ConvModule(4, 0), "out_channels must be a positive integer, got 0"),
        (lambda: ConvModule(4, 4, norm_groups=0), "norm_groups must be a positive integer, got 0"),
        (lambda: check_positive("depth", True), "depth must be a positive integer, got True"),
        (lambda: check_positive("depth", 2.0), "depth must be a positive integer, got 2.0"),
        (lambda: check_spatial_dims(1), "spatial_dims must be 2 or 3, got 1"),
        (lambda: conv_nd(4), "spatial_dims must be 2 or 3, got 4"),
        (lambda: conv_transpose_nd(1), "spatial_dims must be 2 or 3, got 1"),
        (lambda: max_pool_nd(0), "spatial_dims must be 2 or 3, got 0"),
        (lambda: DecoderStage(8, "concat", "dense", 2, 8, 2), "encoder_block must be one of .*, got 'dense'"),
        (
            lambda: EncoderDecoderNet(4, 1, encoder_block="dense"),
            r"encoder_block must be one of \('plain', 'lfe', 'residual', 'bottleneck'\), got 'dense'",
        ),
        (
            lambda: EncoderDecoderNet(4, 1, skip_fusion="add"),
            r"skip_fusion must be one of \('concat', 'hfe'\), got 'add'",
        ),
    ],
)
def test_argument_errors_name_the_value(build, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        build()


def test_positive_one_and_the_factories():
    assert check_positive("depth", 1) == 1
    assert check_spatial_dims(3) == 3
    assert (conv_nd(2), conv_nd(3)) == (nn.Conv2d, nn.Conv3d)
    assert (conv_transpose_nd(2), conv_transpose_nd(3)) == (nn.ConvTranspose2d, nn.ConvTranspose3d)
    pool2, pool3 = max_pool_nd(2), max_pool_nd(3)
    assert isinstance(pool2, nn.MaxPool2d) and isinstance(pool3, nn.MaxPool3d)
    assert (pool2.kernel_size, pool2.stride, pool3.kernel_size, pool3.stride) == (2, 2, 2, 2)


@pytest.mark.parametrize(
    ("channels", "groups", "expected"),
    [(16, 8, 8), (28, 8, 7), (4, 8, 4), (6, 8, 6), (18, 8, 6), (9, 8, 3), (7, 8, 7), (1, 8, 1), (10, 4, 2)],
)
def test_group_count_is_the_largest_divisor_not_above_the_request(channels, groups, expected):
    assert group_count(channels, groups) == expected


def test_wrong_number_of_dimensions_is_a_clear_error():
    net = EncoderDecoderNet(4, 1, base_channels=8, depth=1)
    with pytest.raises(ValueError, match=r"^expected input of shape \(B, 4, S, S\), got \(1, 4, 32\)$"):
        net(torch.randn(1, 4, 32))
    net3d = EncoderDecoderNet(1, 1, spatial_dims=3, base_channels=8, depth=1)
    with pytest.raises(ValueError, match=r"^expected input of shape \(B, 1, S, S, S\), got \(1, 1, 8, 8\)$"):
        net3d(torch.randn(1, 1, 8, 8))
