"""HFE, LFE and the U-shaped skeleton against an independent re-implementation of the paper's equations.

The reference below is written from §2.1–2.3 of the paper (and docs/architecture.md for what the paper leaves
open) with ``torch.nn.functional`` only. It reads the module's weights *by parameter name* and never calls a
submodule's ``forward``, so a change to a module's computation (a dropped ReLU, skip, residual ``1 +`` or
sigmoid, one fused tensor instead of two) shows up as a difference. Every reference also checks that it used
every parameter of the module, so an added or removed layer shows up too. Everything runs in float64 with all
weights re-drawn at random (GroupNorm affine included), on tiny inputs.

The hand-worked cases at the end set the weights to values whose outputs can be written down (``σ(k ln 3) =
3^k / (3^k + 1)``).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hlfnet import create_model
from hlfnet.models import HFE, LFE, EncoderDecoderNet
from hlfnet.models.blocks import BottleneckBlock, ConvModule, DoubleConv, ResidualBlock

TOL = {"atol": 1e-10, "rtol": 1e-10}


# --------------------------------------------------------------------------------------------- reference


class Weights:
    """The module's parameters by name; remembers which names the reference used."""

    def __init__(self, module: nn.Module) -> None:
        self.params = {name: p.detach() for name, p in module.named_parameters()}
        self.used: set[str] = set()

    def __getitem__(self, name: str) -> torch.Tensor:
        self.used.add(name)
        return self.params[name]

    def assert_all_used(self) -> None:
        unused = sorted(set(self.params) - self.used)
        assert not unused, f"parameters the paper's equations do not account for: {unused}"


def _conv(x: torch.Tensor, w: Weights, name: str, bias: bool = True, padding: int = 0) -> torch.Tensor:
    fn = {4: F.conv2d, 5: F.conv3d}[x.ndim]
    return fn(x, w[f"{name}.weight"], w[f"{name}.bias"] if bias else None, padding=padding)


def conv_module(
    x: torch.Tensor, w: Weights, name: str, groups: int | dict[int, int], kernel: int = 3, act: bool = True
) -> torch.Tensor:
    """§2.3: "a 3×3 convolutional layer, a group normalization layer and a ReLU layer" (conv without bias)."""
    x = _conv(x, w, f"{name}.0", bias=False, padding=kernel // 2)
    if isinstance(groups, dict):  # groups by width, where they differ
        groups = groups.get(x.shape[1], 8)
    x = F.group_norm(x, groups, w[f"{name}.1.weight"], w[f"{name}.1.bias"], eps=1e-5)
    return F.relu(x) if act else x


def double_conv(x: torch.Tensor, w: Weights, name: str, groups: int) -> torch.Tensor:
    return conv_module(conv_module(x, w, f"{name}.0", groups), w, f"{name}.1", groups)


def residual_block(x: torch.Tensor, w: Weights, name: str, groups: int, projection: bool) -> torch.Tensor:
    body = conv_module(conv_module(x, w, f"{name}.body.0", groups), w, f"{name}.body.1", groups, act=False)
    shortcut = conv_module(x, w, f"{name}.shortcut", groups, kernel=1, act=False) if projection else x
    return F.relu(body + shortcut)


def bottleneck_block(x: torch.Tensor, w: Weights, name: str, groups: int, projection: bool) -> torch.Tensor:
    h = conv_module(x, w, f"{name}.body.0", groups, kernel=1)
    h = conv_module(h, w, f"{name}.body.1", groups)
    h = conv_module(h, w, f"{name}.body.2", groups, kernel=1, act=False)
    shortcut = conv_module(x, w, f"{name}.shortcut", groups, kernel=1, act=False) if projection else x
    return F.relu(h + shortcut)


def hfe_reference(
    skip: torch.Tensor, up: torch.Tensor, w: Weights, name: str, groups: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """§2.1. Returns ``(output, s̃, z̃)``."""
    y = torch.cat([skip, up], dim=1)  # Y = (X, U), 2c channels
    z = y.mean(dim=tuple(range(2, y.ndim)), keepdim=True)  # z_t = Avgpool(y_t)
    # "two 1×1 convolution layers that are followed by ReLU and Sigmoid respectively"
    z_prime = _conv(F.relu(_conv(z, w, f"{name}.channel.fc.0")), w, f"{name}.channel.fc.2")
    z_tilde = torch.sigmoid(z_prime)
    s_tilde = torch.sigmoid(_conv(y, w, f"{name}.spatial.conv"))  # 1×1 convolution to one channel
    y_c = (1 + z_tilde) * y  # Ỹc = (1 + z̃) ⊗ Y
    y_s = (1 + s_tilde) * y  # Ỹs = (1 + s̃) ⊗ Y
    # "concatenated and sent to a 3×3 convolution layer ... and the channel dimension is reduced"
    out = conv_module(torch.cat([y_c, y_s], dim=1), w, f"{name}.fuse", groups)
    return out, s_tilde, z_tilde


def _upsample_to(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    mode = {4: "bilinear", 5: "trilinear"}[x.ndim]
    return F.interpolate(x, size=like.shape[2:], mode=mode, align_corners=False)


def _max_pool(x: torch.Tensor) -> torch.Tensor:
    return {4: F.max_pool2d, 5: F.max_pool3d}[x.ndim](x, kernel_size=2, stride=2)


def _conv_transpose(x: torch.Tensor, w: Weights, name: str) -> torch.Tensor:
    fn = {4: F.conv_transpose2d, 5: F.conv_transpose3d}[x.ndim]
    return fn(x, w[f"{name}.weight"], w[f"{name}.bias"], stride=2)


def lfe_reference(
    x: torch.Tensor, w: Weights, name: str, groups: int, style: str = "cfenet"
) -> tuple[torch.Tensor, torch.Tensor]:
    """§2.2. Returns ``(X̃, σ(s'))``; ``style`` picks the semantic branch's layout (docs/architecture.md #9)."""
    trunk = double_conv(x, w, f"{name}.trunk", groups)  # F_tr(X)
    sem = f"{name}.semantic"
    # two consecutive down-samplings and up-samplings, with skip connections between them
    if style == "compact":  # two modules per scale at one width, interpolation up to the skip's size
        e0 = double_conv(x, w, f"{sem}.enc0", groups)
        e1 = double_conv(_max_pool(e0), w, f"{sem}.enc1", groups)
        bottom = double_conv(_max_pool(e1), w, f"{sem}.bottom", groups)
        d1 = double_conv(torch.cat([e1, _upsample_to(bottom, e1)], dim=1), w, f"{sem}.dec1", groups)
        d0 = double_conv(torch.cat([e0, _upsample_to(d1, e0)], dim=1), w, f"{sem}.dec0", groups)
        attention = torch.sigmoid(_conv(d0, w, f"{sem}.project"))  # σ(s'), s' from a 1×1 convolution
        return (1 + attention) * trunk, attention  # X̃ = (1 + σ(s')) ⊗ F_tr(X)
    # cfenet: one module per scale, widths c, c, 2c, 2×2 transposed convolutions up; the input padded to a
    # multiple of 4 (edge replication) and the map cropped back
    size = x.shape[2:]
    pad: list[int] = []
    for s in reversed(size):
        pad += [0, math.ceil(s / 4) * 4 - s]
    padded = F.pad(x, pad, mode="replicate")
    e0 = conv_module(padded, w, f"{sem}.enc0", groups)
    e1 = conv_module(_max_pool(e0), w, f"{sem}.enc1", groups)
    bottom = conv_module(_max_pool(e1), w, f"{sem}.bottom", groups)
    assert bottom.shape[1] == 2 * e1.shape[1]
    d1 = conv_module(
        torch.cat([e1, _conv_transpose(bottom, w, f"{sem}.up1")], dim=1), w, f"{sem}.dec1", groups
    )
    d0 = conv_module(torch.cat([e0, _conv_transpose(d1, w, f"{sem}.up0")], dim=1), w, f"{sem}.dec0", groups)
    s_prime = _conv(d0, w, f"{sem}.project")[(slice(None), slice(None), *(slice(0, n) for n in size))]
    attention = torch.sigmoid(s_prime)
    # X̃ = (1 + σ(s')) ⊗ F_tr(X), then the authors' one more convolution module
    return conv_module((1 + attention) * trunk, w, f"{name}.fuse", groups), attention


def network_reference(
    x: torch.Tensor,
    w: Weights,
    *,
    depth: int,
    encoder_block: str,
    skip_fusion: str,
    groups: int,
    widths: list[int],
    lfe_style: str = "cfenet",
) -> tuple[torch.Tensor, dict[str, list[torch.Tensor]]]:
    """§2.3 / Fig. 3 with docs/architecture.md's choices: pad, encoder, bottom, decoder, 1×1 head, crop."""
    size = x.shape[2:]
    multiple = 2**depth
    pad: list[int] = []
    for s in reversed(size):
        pad += [0, math.ceil(s / multiple) * multiple - s]
    x = F.pad(x, pad, mode="replicate")

    def crop(t: torch.Tensor, level: int) -> torch.Tensor:
        return t[(slice(None), slice(None), *(slice(0, math.ceil(s / 2**level)) for s in size))]

    in_channels = x.shape[1]

    def block(kind: str, t: torch.Tensor, name: str, c_in: int, c_out: int) -> torch.Tensor:
        if kind == "plain":
            return double_conv(t, w, name, groups)
        if kind == "residual":
            return residual_block(t, w, name, groups, projection=c_in != c_out)
        return bottleneck_block(t, w, name, groups, projection=c_in != c_out)

    maps: dict[str, list[torch.Tensor]] = {"lfe": [], "hfe_spatial": [], "hfe_channel": []}
    skips = []
    c_in = in_channels
    for level in range(depth):
        if encoder_block == "lfe":
            x, attention = lfe_reference(x, w, f"encoder.{level}", groups, lfe_style)
            maps["lfe"].append(crop(attention, level))
        else:
            x = block(encoder_block, x, f"encoder.{level}", c_in, widths[level])
        c_in = widths[level]
        skips.append(x)
        x = _max_pool(x)
    other = "plain" if encoder_block == "lfe" else encoder_block
    x = block(other, x, "bottom", widths[depth - 1], widths[depth])
    for stage, level in enumerate(reversed(range(depth))):
        name = f"decoder.{stage}"
        tconv = {4: F.conv_transpose2d, 5: F.conv_transpose3d}[x.ndim]
        up = tconv(x, w[f"{name}.up.weight"], w[f"{name}.up.bias"], stride=2)
        if skip_fusion == "hfe":
            y, s_tilde, z_tilde = hfe_reference(skips[level], up, w, f"{name}.hfe", groups)
            maps["hfe_spatial"].append(crop(s_tilde, level))
            maps["hfe_channel"].append(z_tilde)
        else:
            y = torch.cat([skips[level], up], dim=1)
        x = block(other, y, f"{name}.block", 2 * widths[level], widths[level])
    logits = crop(_conv(x, w, "head"), 0)
    return logits, maps


def randomize(module: nn.Module, seed: int = 0) -> nn.Module:
    """float64, every parameter re-drawn (GroupNorm's affine away from 1 and 0), eval mode."""
    generator = torch.Generator().manual_seed(seed)
    module.double().eval()
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=generator, dtype=torch.float64) * 0.5)
    return module


def _input(*shape: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# --------------------------------------------------------------------------------------------------- HFE


@pytest.mark.parametrize(
    ("channels", "reduction", "spatial"),
    [(4, 2, (7, 9)), (8, 2, (5, 6)), (4, 4, (6, 5)), (4, 2, (3, 5, 4))],
)
def test_hfe_equals_paper_equations(channels, reduction, spatial):
    hfe = randomize(HFE(channels, spatial_dims=len(spatial), reduction=reduction, norm_groups=8))
    skip, up = _input(2, channels, *spatial, seed=1), _input(2, channels, *spatial, seed=2)
    w = Weights(_Prefixed(hfe))  # the fusion output 2c is 8 or 16 here: 8 groups
    expected, s_ref, z_ref = hfe_reference(skip, up, w, "m", groups=8)
    w.assert_all_used()
    with torch.no_grad():
        out, s, z = hfe.forward_with_attention(skip, up)
        torch.testing.assert_close(hfe(skip, up), expected, **TOL)
    torch.testing.assert_close(out, expected, **TOL)
    torch.testing.assert_close(s, s_ref, **TOL)
    torch.testing.assert_close(z, z_ref, **TOL)
    assert z.shape == (2, 2 * channels, *[1] * len(spatial))
    assert s.shape == (2, 1, *spatial)
    assert w["m.channel.fc.0.weight"].shape[0] == 2 * channels // reduction


def test_hfe_channel_mlp_relu_is_active_in_these_tests():
    """The ReLU only matters where a hidden unit is negative: make sure the random cases have some."""
    hfe = randomize(HFE(4, norm_groups=8))
    skip, up = _input(2, 4, 7, 9, seed=1), _input(2, 4, 7, 9, seed=2)
    z = torch.cat([skip, up], 1).mean((2, 3), keepdim=True)
    w = Weights(_Prefixed(hfe))
    hidden = _conv(z, w, "m.channel.fc.0")
    assert (hidden < 0).any() and (hidden > 0).any()


# --------------------------------------------------------------------------------------------------- LFE


@pytest.mark.parametrize("style", ["cfenet", "compact"])
@pytest.mark.parametrize(
    ("in_channels", "out_channels", "spatial"), [(3, 8, (13, 17)), (8, 16, (8, 12)), (2, 8, (6, 7, 5))]
)
def test_lfe_equals_paper_equations(in_channels, out_channels, spatial, style):
    lfe = randomize(LFE(in_channels, out_channels, spatial_dims=len(spatial), norm_groups=8, style=style))
    x = _input(2, in_channels, *spatial)
    w = Weights(_Prefixed(lfe))
    expected, attention_ref = lfe_reference(x, w, "m", groups=8, style=style)
    w.assert_all_used()
    with torch.no_grad():
        out, attention = lfe.forward_with_attention(x)
        torch.testing.assert_close(lfe(x), expected, **TOL)
    torch.testing.assert_close(out, expected, **TOL)
    torch.testing.assert_close(attention, attention_ref, **TOL)
    assert attention.shape == (2, 1, *spatial)


# ---------------------------------------------------------------------------------------------- skeleton


@pytest.mark.parametrize(
    ("encoder_block", "skip_fusion", "lfe_style"),
    [
        ("plain", "concat", "cfenet"),
        ("lfe", "hfe", "cfenet"),
        ("lfe", "hfe", "compact"),
        ("plain", "hfe", "cfenet"),
        ("lfe", "concat", "cfenet"),
        ("lfe", "concat", "compact"),
        ("residual", "concat", "cfenet"),
        ("bottleneck", "concat", "cfenet"),
    ],
)
@pytest.mark.parametrize(("depth", "size"), [(2, (13, 19)), (3, (16, 24))])
def test_network_equals_reference(encoder_block, skip_fusion, lfe_style, depth, size):
    net = randomize(
        EncoderDecoderNet(
            3,
            2,
            base_channels=8,
            depth=depth,
            encoder_block=encoder_block,
            skip_fusion=skip_fusion,
            norm_groups=8,
            lfe_style=lfe_style,
        )
    )
    x = _input(2, 3, *size)
    w = Weights(net)
    widths = [8 * 2**level for level in range(depth + 1)]
    expected, maps = network_reference(
        x,
        w,
        depth=depth,
        encoder_block=encoder_block,
        skip_fusion=skip_fusion,
        groups=8,
        widths=widths,
        lfe_style=lfe_style,
    )
    w.assert_all_used()
    with torch.no_grad():
        out = net.forward_with_attention(x)
        torch.testing.assert_close(net(x), expected, **TOL)
    torch.testing.assert_close(out.logits, expected, **TOL)
    assert out.logits.shape == (2, 2, *size)
    for key in ("lfe", "hfe_spatial", "hfe_channel"):
        ours = getattr(out.attention, key)
        assert len(ours) == len(maps[key]), key
        for a, b in zip(ours, maps[key], strict=True):
            torch.testing.assert_close(a, b, **TOL)


@pytest.mark.parametrize(
    ("encoder_block", "skip_fusion", "lfe_style"),
    [
        ("lfe", "hfe", "cfenet"),
        ("lfe", "hfe", "compact"),
        ("plain", "concat", "cfenet"),
        ("residual", "hfe", "cfenet"),
        ("bottleneck", "concat", "cfenet"),
    ],
)
def test_network_with_4_groups_and_reduction_4_equals_reference(encoder_block, skip_fusion, lfe_style):
    """``norm_groups`` and ``reduction`` away from their defaults reach every block, LFE, HFE and stage."""
    net = randomize(
        EncoderDecoderNet(
            3,
            1,
            base_channels=8,
            depth=2,
            encoder_block=encoder_block,
            skip_fusion=skip_fusion,
            norm_groups=4,
            reduction=4,
            lfe_style=lfe_style,
        )
    )
    assert set(m.num_groups for m in net.modules() if isinstance(m, nn.GroupNorm)) == {4}
    if skip_fusion == "hfe":  # 2c / 4 hidden units at c = 16 and c = 8
        assert [stage.hfe.channel.fc[0].out_channels for stage in net.decoder] == [8, 4]
    x = _input(1, 3, 9, 10)
    w = Weights(net)
    expected, maps = network_reference(
        x,
        w,
        depth=2,
        encoder_block=encoder_block,
        skip_fusion=skip_fusion,
        groups=4,
        widths=[8, 16, 32],
        lfe_style=lfe_style,
    )
    w.assert_all_used()
    with torch.no_grad():
        out = net.forward_with_attention(x)
    torch.testing.assert_close(out.logits, expected, **TOL)
    for key in ("lfe", "hfe_spatial", "hfe_channel"):
        ours = getattr(out.attention, key)
        assert len(ours) == len(maps[key]), key
        for a, b in zip(ours, maps[key], strict=True):
            torch.testing.assert_close(a, b, **TOL)


@pytest.mark.parametrize("lfe_style", ["cfenet", "compact"])
def test_network_3d_equals_reference(lfe_style):
    net = randomize(
        EncoderDecoderNet(
            1,
            2,
            spatial_dims=3,
            base_channels=8,
            depth=2,
            encoder_block="lfe",
            skip_fusion="hfe",
            lfe_style=lfe_style,
        )
    )
    x = _input(1, 1, 6, 5, 7)
    w = Weights(net)
    expected, _ = network_reference(
        x,
        w,
        depth=2,
        encoder_block="lfe",
        skip_fusion="hfe",
        groups=8,
        widths=[8, 16, 32],
        lfe_style=lfe_style,
    )
    w.assert_all_used()
    with torch.no_grad():
        torch.testing.assert_close(net(x), expected, **TOL)


@pytest.mark.parametrize("name", ["hlfnet", "unet", "resunet"])
def test_registered_presets_equal_reference(name):
    """The presets at their paper depth (4 down-samplings), at a small width; Unet-28 needs 7 groups of 4."""
    base = {"hlfnet": 8, "unet": 28, "resunet": 28}[name]
    net = randomize(create_model(name, in_channels=4, out_channels=1, base_channels=base))
    x = _input(1, 4, 32, 34)  # level 3 is 4×6 after padding to 32×48: its LFE pools twice
    w = Weights(net)
    spec_block = {"hlfnet": ("lfe", "hfe"), "unet": ("plain", "concat"), "resunet": ("residual", "concat")}[
        name
    ]
    expected, _ = network_reference(
        x,
        w,
        depth=4,
        encoder_block=spec_block[0],
        skip_fusion=spec_block[1],
        groups={28: 7},  # the largest divisor of 28 not above 8 is 7; 56, 112, ... take 8
        widths=[base * 2**level for level in range(5)],
    )
    w.assert_all_used()
    with torch.no_grad():
        torch.testing.assert_close(net(x), expected, **TOL)


@pytest.mark.parametrize(
    ("block", "c_in", "c_out", "groups", "spatial"),
    [
        (ResidualBlock, 8, 8, 8, (6, 7)),
        (ResidualBlock, 4, 8, 8, (6, 7)),
        (BottleneckBlock, 8, 8, 8, (6, 7)),
        (BottleneckBlock, 4, 8, 8, (6, 7)),
        # 3-D and 4 groups: every layer (shortcut included) must receive spatial_dims and norm_groups
        (ResidualBlock, 4, 8, 4, (3, 5, 4)),
        (ResidualBlock, 8, 8, 2, (4, 3, 5)),
        (BottleneckBlock, 4, 8, 4, (3, 5, 4)),
        (BottleneckBlock, 8, 8, 2, (4, 3, 5)),
    ],
)
def test_resnet_blocks_equal_reference(block, c_in, c_out, groups, spatial):
    module = randomize(block(c_in, c_out, spatial_dims=len(spatial), norm_groups=groups))
    x = _input(2, c_in, *spatial)
    w = Weights(_Prefixed(module))
    ref = residual_block if block is ResidualBlock else bottleneck_block
    expected = ref(x, w, "m", groups, projection=c_in != c_out)
    w.assert_all_used()
    with torch.no_grad():
        torch.testing.assert_close(module(x), expected, **TOL)


def test_bottleneck_expansion_narrows_the_middle():
    module = BottleneckBlock(8, 8, norm_groups=8, expansion=4)
    widths = [m.out_channels for m in module.body.modules() if isinstance(m, nn.Conv2d)]
    assert widths == [2, 2, 8]


def test_every_convolution_module_is_conv_groupnorm_relu():
    """HLF-Net's convolution modules are exactly 3×3 conv (no bias) → GroupNorm → ReLU (§2.3), 46 of them."""
    model = create_model("hlfnet", base_channels=8)
    modules = [m for m in model.modules() if isinstance(m, ConvModule)]
    # 4 LFEs × (2 trunk + 5 semantic + 1 after the product) + 2 bottom + 4 decoder stages × (1 HFE fusion + 2)
    assert len(modules) == 4 * 8 + 2 + 4 * 3
    compact = create_model("hlfnet", base_channels=8, lfe_style="compact")
    # the compact branch: 4 LFEs × (2 trunk + 10 semantic)
    assert len([m for m in compact.modules() if isinstance(m, ConvModule)]) == 4 * 12 + 2 + 4 * 3
    for m in modules:
        assert [type(layer) for layer in m] == [nn.Conv2d, nn.GroupNorm, nn.ReLU]
        conv, norm = m[0], m[1]
        assert conv.kernel_size == (3, 3) and conv.padding == (1, 1) and conv.bias is None
        assert norm.num_channels == conv.out_channels and norm.num_groups == 8
    x = _input(1, 5, 6, 7)
    module = randomize(ConvModule(5, 8))
    w = Weights(_Prefixed(module))
    with torch.no_grad():
        torch.testing.assert_close(module(x), conv_module(x, w, "m", 8), **TOL)
    w.assert_all_used()


# ------------------------------------------------------------------------------------------- hand-worked

LN3 = math.log(3.0)


def _hand_hfe() -> HFE:
    """HFE with c = 1 (Y has 2 channels, hidden width 1) and weights chosen by hand."""
    hfe = HFE(1, reduction=2, norm_groups=8).double().eval()
    with torch.no_grad():
        for p in hfe.parameters():
            p.zero_()
        # hidden = ReLU(mean(X) - 3 mean(U)) = ReLU(4 - 6) = 0;   without the ReLU it would be -2
        hfe.channel.fc[0].weight.copy_(torch.tensor([1.0, -3.0], dtype=torch.float64).view(1, 2, 1, 1))
        # z' = hidden · (1, 1) + (0, ln 3) = (0, ln 3)  ->  z̃ = (1/2, 3/4)
        hfe.channel.fc[2].weight.copy_(torch.tensor([1.0, 1.0], dtype=torch.float64).view(2, 1, 1, 1))
        hfe.channel.fc[2].bias.copy_(torch.tensor([0.0, LN3], dtype=torch.float64))
        # s = (ln 3 / 2)(X - 1) = 0, ln 3, 2 ln 3, 3 ln 3  ->  s̃ = 1/2, 3/4, 9/10, 27/28
        hfe.spatial.conv.weight.copy_(torch.tensor([LN3 / 2, 0.0], dtype=torch.float64).view(1, 2, 1, 1))
        hfe.spatial.conv.bias.fill_(-LN3 / 2)
    return hfe


def test_hfe_hand_worked():
    hfe = _hand_hfe()
    skip = torch.tensor([[[[1.0, 3.0], [5.0, 7.0]]]], dtype=torch.float64)  # X, mean 4
    up = torch.full((1, 1, 2, 2), 2.0, dtype=torch.float64)  # U, mean 2
    captured = []
    hfe.fuse.register_forward_pre_hook(lambda module, args: captured.append(args[0]))
    with torch.no_grad():
        _, s, z = hfe.forward_with_attention(skip, up)
    assert z.flatten().tolist() == pytest.approx([1 / 2, 3 / 4], abs=1e-12)
    assert s.flatten().tolist() == pytest.approx([1 / 2, 3 / 4, 9 / 10, 27 / 28], abs=1e-12)
    (fused_input,) = captured
    expected = [
        [[1.5, 4.5], [7.5, 10.5]],  # Ỹc, channel X: (1 + 1/2) X
        [[3.5, 3.5], [3.5, 3.5]],  # Ỹc, channel U: (1 + 3/4) U
        [[1.5 * 1, 1.75 * 3], [1.9 * 5, (1 + 27 / 28) * 7]],  # Ỹs, channel X: (1 + s̃) X
        [[1.5 * 2, 1.75 * 2], [1.9 * 2, (1 + 27 / 28) * 2]],  # Ỹs, channel U: (1 + s̃) U
    ]
    torch.testing.assert_close(fused_input[0], torch.tensor(expected, dtype=torch.float64), **TOL)


def test_hfe_hand_worked_fusion():
    """The fusion: 3×3 conv whose centre tap adds Ỹc(X) and Ỹs(U), GroupNorm (2 groups of 1), ReLU."""
    hfe = _hand_hfe()
    with torch.no_grad():
        hfe.fuse[0].weight[0, 0, 1, 1] = 1.0  # output 0 = Ỹc channel X
        hfe.fuse[0].weight[1, 3, 1, 1] = 1.0  # output 1 = Ỹs channel U
        hfe.fuse[1].weight.fill_(1.0)
    skip = torch.tensor([[[[1.0, 3.0], [5.0, 7.0]]]], dtype=torch.float64)
    up = torch.full((1, 1, 2, 2), 2.0, dtype=torch.float64)
    with torch.no_grad():
        out = hfe(skip, up)

    def normalise(values: list[float]) -> list[float]:
        mean = sum(values) / len(values)
        var = sum((v - mean) ** 2 for v in values) / len(values)
        return [max(0.0, (v - mean) / math.sqrt(var + 1e-5)) for v in values]

    assert out[0, 0].flatten().tolist() == pytest.approx(normalise([1.5, 4.5, 7.5, 10.5]), abs=1e-9)
    assert out[0, 1].flatten().tolist() == pytest.approx(normalise([3.0, 3.5, 3.8, 2 + 54 / 28]), abs=1e-9)


@pytest.mark.parametrize("style", ["cfenet", "compact"])
def test_lfe_hand_worked_constant_attention(style):
    """With the 1×1 projection at weight 0, bias ln 3: σ(s') = 3/4 everywhere and (1 + σ(s')) ⊗ F_tr(X) is
    7/4 F_tr(X) -- the output itself (compact), or the input of the module after it (cfenet)."""
    lfe = randomize(LFE(2, 8, style=style))
    with torch.no_grad():
        lfe.semantic.project.weight.zero_()
        lfe.semantic.project.bias.fill_(LN3)
    captured = []
    lfe.fuse.register_forward_pre_hook(lambda module, args: captured.append(args[0]))
    x = _input(1, 2, 9, 7)
    w = Weights(_Prefixed(lfe))
    trunk = double_conv(x, w, "m.trunk", 8)
    with torch.no_grad():
        out, attention = lfe.forward_with_attention(x)
    torch.testing.assert_close(attention, torch.full_like(attention, 0.75), **TOL)
    torch.testing.assert_close(captured[0], 1.75 * trunk, **TOL)
    if style == "compact":
        torch.testing.assert_close(out, 1.75 * trunk, **TOL)
    else:
        torch.testing.assert_close(out, conv_module(1.75 * trunk, w, "m.fuse", 8), **TOL)


def test_double_conv_is_two_convolution_modules():
    module = randomize(DoubleConv(3, 8))
    x = _input(1, 3, 5, 5)
    w = Weights(_Prefixed(module))
    with torch.no_grad():
        torch.testing.assert_close(module(x), double_conv(x, w, "m", 8), **TOL)
    w.assert_all_used()


class _Prefixed(nn.Module):
    """Registers a module under the name ``m`` so that the reference's names all start with ``m.``."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.m = module
