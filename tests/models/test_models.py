"""Tests over the whole registry: shapes, gradients, attention maps, parameter counts, export, bad arguments."""

from __future__ import annotations

import math

import pytest
import torch

from hlfnet import create_model, list_models
from hlfnet.models import (
    LFE,
    MODELS,
    TABLE1_MODELS,
    ChannelRecalibration,
    EncoderDecoderNet,
    count_flops,
    count_parameters,
    get_model_spec,
)
from hlfnet.models.blocks import group_count

ALL = list_models()
HAS_LFE = {"hlfnet", "hlfnet_lfe"}
HAS_HFE = {"hlfnet", "hlfnet_hfe"}


def test_registry_names_in_table1_order():
    assert ALL == ["hlfnet", "hlfnet_hfe", "hlfnet_lfe", "unet", "resunet", "unet16"]
    assert TABLE1_MODELS == ("hlfnet", "hlfnet_hfe", "hlfnet_lfe", "unet", "resunet")
    assert get_model_spec("unet16").paper_parameters is None


@pytest.mark.parametrize("name", TABLE1_MODELS)
def test_parameter_count_within_2_percent_of_table1(name):
    model = create_model(name, in_channels=4, out_channels=1)
    params = count_parameters(model)
    paper = get_model_spec(name).paper_parameters
    assert abs(params - paper) / paper < 0.02, f"{name}: {params} vs paper {paper}"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("hlfnet", 5_528_000),
        ("hlfnet_hfe", 3_599_000),
        ("hlfnet_lfe", 3_872_000),
        ("unet", 5_945_000),
        ("resunet", 6_214_000),
        ("unet16", 1_943_000),
    ],
)
def test_parameter_counts_pinned(name, expected):
    # Pinned to catch accidental architecture changes (docs/architecture.md explains each figure).
    assert count_parameters(create_model(name)) == pytest.approx(expected, abs=1_000)


def test_cfenet_lfe_parameters_counted_by_hand():
    """The authors' LFE at width c from input width i, counted by hand from its layers (convolutions without
    bias before GroupNorm, GroupNorm 2 per channel, transposed and 1×1 convolutions with bias)."""

    def module(c_in: int, c_out: int) -> int:  # 3×3 conv + GroupNorm
        return 9 * c_in * c_out + 2 * c_out

    def lfe(i: int, c: int) -> int:
        trunk = module(i, c) + module(c, c)
        branch = module(i, c) + module(c, c) + module(c, 2 * c)  # down: c, c, 2c
        branch += (4 * 2 * c * c + c) + module(2 * c, c)  # 2×2 transposed 2c -> c, module after the skip
        branch += (4 * c * c + c) + module(2 * c, c)  # 2×2 transposed c -> c, module after the skip
        branch += c + 1  # 1×1 projection to one channel
        return trunk + branch + module(c, c)  # + the module after (1 + σ(s')) ⊗ F_tr(X)

    assert count_parameters(LFE(4, 16)) == lfe(4, 16)
    plain = count_parameters(create_model("hlfnet_hfe"))  # the same network with plain encoder blocks
    plain_blocks = sum(count_parameters(block) for block in create_model("hlfnet_hfe").encoder)
    widths = [(4, 16), (16, 32), (32, 64), (64, 128)]
    assert count_parameters(create_model("hlfnet")) == plain - plain_blocks + sum(
        lfe(i, c) for i, c in widths
    )


def test_compact_lfe_counts_pinned():
    assert count_parameters(create_model("hlfnet", lfe_style="compact")) == pytest.approx(
        5_855_000, abs=1_000
    )
    assert count_parameters(create_model("hlfnet_lfe", lfe_style="compact")) == pytest.approx(
        4_199_000, abs=1_000
    )


def test_variants_differ_only_where_the_paper_says():
    """HLF-Net = U-Net-16 + LFE branches + HFE modules; the ablations add exactly one of the two."""
    unet16 = count_parameters(create_model("unet", base_channels=16))
    full = count_parameters(create_model("hlfnet"))
    only_hfe = count_parameters(create_model("hlfnet_hfe"))
    only_lfe = count_parameters(create_model("hlfnet_lfe"))
    assert full - unet16 == (only_hfe - unet16) + (only_lfe - unet16)
    names = {n for n, _ in create_model("hlfnet_hfe").named_parameters()}
    plain = {n for n, _ in create_model("unet", base_channels=16).named_parameters()}
    assert plain <= names and all(".hfe." in n for n in names - plain)


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize(("in_channels", "out_channels"), [(4, 1), (1, 3)])
def test_forward_shape_odd_size_and_every_parameter_gets_a_gradient(name, in_channels, out_channels):
    model = create_model(name, in_channels=in_channels, out_channels=out_channels, base_channels=8)
    x = torch.randn(2, in_channels, 37, 45)
    y = model(x)
    assert y.shape == (2, out_channels, 37, 45)
    assert torch.isfinite(y).all()
    y.square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, f"no/NaN gradient for {missing}"
    assert any(p.grad.abs().sum() > 0 for p in model.parameters())


@pytest.mark.parametrize("name", ALL)
def test_3d(name):
    model = create_model(name, in_channels=1, out_channels=2, spatial_dims=3, base_channels=4)
    x = torch.randn(1, 1, 17, 20, 18)
    y = model(x)
    assert y.shape == (1, 2, 17, 20, 18)
    y.mean().backward()
    assert all(p.grad is not None for p in model.parameters())
    assert any(isinstance(m, torch.nn.Conv3d) for m in model.modules())
    assert not any(isinstance(m, torch.nn.Conv2d) for m in model.modules())


def test_paper_size_250x190_in_250x190_out():
    model = create_model("hlfnet", base_channels=4).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 4, 190, 250)).shape == (1, 1, 190, 250)


def test_padding_does_not_change_a_divisible_input():
    """Odd sizes go through pad-and-crop; a size divisible by 16 goes through untouched."""
    model = create_model("unet", base_channels=4).eval()
    x = torch.randn(1, 4, 32, 48)
    padded, size = model._pad(x)
    assert padded is x and size == (32, 48)
    padded, size = model._pad(torch.randn(1, 4, 33, 47))
    assert padded.shape[2:] == (48, 48) and size == (33, 47)


@pytest.mark.parametrize("name", ALL)
def test_attention_maps_shapes_and_range(name):
    model = create_model(name, base_channels=8)
    h, w = 37, 45
    out = model.forward_with_attention(torch.randn(2, 4, h, w))
    maps = out.attention
    assert out.logits.shape == (2, 1, h, w)
    assert len(maps.lfe) == (4 if name in HAS_LFE else 0)
    assert len(maps.hfe_spatial) == len(maps.hfe_channel) == (4 if name in HAS_HFE else 0)
    for level, a in enumerate(maps.lfe):  # shallow -> deep
        assert a.shape == (2, 1, math.ceil(h / 2**level), math.ceil(w / 2**level))
    hfe_levels = list(reversed(range(4))) if name in HAS_HFE else []
    for level, s, z in zip(hfe_levels, maps.hfe_spatial, maps.hfe_channel, strict=True):
        assert s.shape == (2, 1, math.ceil(h / 2**level), math.ceil(w / 2**level))
        assert z.shape == (2, 2 * 8 * 2**level, 1, 1)
    for a in [*maps.lfe, *maps.hfe_spatial, *maps.hfe_channel]:
        assert a.min() >= 0 and a.max() <= 1


def test_forward_with_attention_logits_equal_forward():
    model = create_model("hlfnet", base_channels=8).eval()
    x = torch.randn(1, 4, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), model.forward_with_attention(x).logits)


def test_lfe_semantic_branch_samples_down_twice():
    lfe = LFE(3, 8)
    pools = []
    lfe.semantic.pool.register_forward_hook(lambda m, i, o: pools.append(o.shape[2:]))
    lfe(torch.randn(1, 3, 16, 20))
    assert pools == [torch.Size([8, 10]), torch.Size([4, 5])]


# HFE, LFE, the convolution module and the skeleton against the paper's equations: test_paper_equations.py


def test_group_count_rule():
    assert group_count(16, 8) == 8
    assert group_count(28, 8) == 7
    assert group_count(4, 8) == 4
    assert group_count(6, 8) == 6


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"in_channels": 0}, "in_channels'? must be a positive integer, got 0"),
        ({"out_channels": -1}, "out_channels'? must be a positive integer, got -1"),
        ({"spatial_dims": 4}, "spatial_dims must be 2 or 3, got 4"),
        ({"base_channels": 0}, "base_channels must be a positive integer, got 0"),
        ({"depth": 0}, "depth must be a positive integer, got 0"),
        ({"encoder_block": "dense"}, "'dense'"),
        ({"skip_fusion": "add"}, "'add'"),
        ({"norm_groups": 0}, "norm_groups must be a positive integer, got 0"),
    ],
)
def test_bad_arguments_raise_value_error_naming_the_value(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        create_model("hlfnet", **kwargs)


def test_unknown_model_and_unknown_argument():
    with pytest.raises(KeyError, match="hlfnet_hfe"):
        create_model("hlfnet-xl")
    with pytest.raises(TypeError, match="base_width"):
        create_model("unet", base_width=32)
    with pytest.raises(ValueError, match="reduction"):
        ChannelRecalibration(4, reduction=8)


def test_wrong_input_shape_is_a_clear_error():
    model = create_model("unet", base_channels=4)
    with pytest.raises(ValueError, match=r"expected input of shape \(B, 4, S, S\), got \(1, 3, 32, 32\)"):
        model(torch.randn(1, 3, 32, 32))


def test_resunet_bottleneck_option_is_a_literal_resnet_bottleneck():
    model = create_model("resunet", encoder_block="bottleneck")
    kernels = [m.kernel_size for m in model.encoder[1].body.modules() if isinstance(m, torch.nn.Conv2d)]
    assert kernels == [(1, 1), (3, 3), (1, 1)]


def test_model_records_how_to_rebuild_it():
    model = create_model("hlfnet_lfe", in_channels=1, out_channels=2, base_channels=8)
    assert model.model_name == "hlfnet_lfe"
    rebuilt = create_model(model.model_name, **model.model_kwargs)
    assert count_parameters(rebuilt) == count_parameters(model)


def test_flops_counter_counts_convolutions():
    model = EncoderDecoderNet(1, 1, base_channels=4, depth=1)
    flops = count_flops(model, (1, 1, 8, 8))
    assert flops > 0
    assert count_flops(model, (1, 1, 16, 16)) == 4 * flops


@pytest.mark.parametrize("name", ALL)
def test_onnx_export_matches_pytorch(name, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    model = create_model(name, base_channels=8).eval()
    x = torch.randn(1, 4, 48, 64)
    path = tmp_path / f"{name}.onnx"
    torch.onnx.export(model, (x,), str(path), dynamo=False, input_names=["image"], output_names=["logits"])
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (onnx_out,) = session.run(None, {"image": x.numpy()})
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(onnx_out), model(x), atol=1e-4, rtol=1e-4)


def test_torchscript_trace_matches_pytorch():
    model = create_model("hlfnet", base_channels=8).eval()
    x = torch.randn(1, 4, 32, 48)
    with torch.no_grad():
        traced = torch.jit.trace(model, x)
        torch.testing.assert_close(traced(x), model(x))


def test_models_registry_spec_lists_paper_names():
    assert MODELS["unet"].paper_name == "Unet-28"
    assert MODELS["hlfnet"].paper_parameters == 5.5e6
