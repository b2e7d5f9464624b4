"""The registry of networks: ``create_model(name, ...)`` and ``list_models()``.

One dictionary; each entry is a preset of :class:`~hlfnet.models.network.EncoderDecoderNet` plus the parameter
count the paper reports for it (Table 1), so tests and ``hlfnet models`` can compare against the paper.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any

from hlfnet.models.network import EncoderDecoderNet

__all__ = ["ModelSpec", "MODELS", "TABLE1_MODELS", "create_model", "list_models", "get_model_spec"]


@dataclass(frozen=True)
class ModelSpec:
    """A registered network: its preset arguments, the paper's name and the paper's parameter count.

    ``paper_parameters`` is ``None`` for a network that is not in the paper's Table 1 (the U-Net-16 control).
    """

    name: str
    paper_name: str
    description: str
    paper_parameters: float | None
    preset: dict[str, Any] = field(default_factory=dict)


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            "hlfnet",
            "HLE-Net",
            "HLF-Net: LFE encoder, HFE decoder (§2.3, Fig. 3)",
            5.5e6,
            {"base_channels": 16, "encoder_block": "lfe", "skip_fusion": "hfe"},
        ),
        ModelSpec(
            "hlfnet_hfe",
            "HLE-Net (only HFE)",
            "ablation: plain encoder, HFE decoder",
            3.6e6,
            {"base_channels": 16, "encoder_block": "plain", "skip_fusion": "hfe"},
        ),
        ModelSpec(
            "hlfnet_lfe",
            "HLE-Net (only LFE)",
            "ablation: LFE encoder, plain decoder",
            3.8e6,
            {"base_channels": 16, "encoder_block": "lfe", "skip_fusion": "concat"},
        ),
        ModelSpec(
            "unet",
            "Unet-28",
            "baseline: U-Net, 28 base channels",
            5.9e6,
            {"base_channels": 28, "encoder_block": "plain", "skip_fusion": "concat"},
        ),
        ModelSpec(
            "resunet",
            "Res-Unet-28",
            "baseline: U-Net-28 with every convolution block a ResNet block",
            6.2e6,
            {"base_channels": 28, "encoder_block": "residual", "skip_fusion": "concat"},
        ),
        ModelSpec(
            "unet16",
            "U-Net-16",
            "control (not in Table 1): U-Net, 16 base channels, the skeleton of the three HLE-Net variants",
            None,
            {"base_channels": 16, "encoder_block": "plain", "skip_fusion": "concat"},
        ),
    )
}

TABLE1_MODELS: tuple[str, ...] = tuple(name for name, spec in MODELS.items() if spec.paper_parameters)
"""The networks of the paper's Table 1, in its order (ours first); ``list_models()`` adds the controls."""

_ALLOWED_KWARGS = tuple(
    p
    for p in inspect.signature(EncoderDecoderNet.__init__).parameters
    if p not in ("self", "in_channels", "out_channels", "spatial_dims")
)


def list_models() -> list[str]:
    """Names of every registered network, in the order of the paper's Table 1 (ours first)."""
    return list(MODELS)


def get_model_spec(name: str) -> ModelSpec:
    """The :class:`ModelSpec` of ``name``; ``KeyError`` listing the valid names if unknown."""
    try:
        return MODELS[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; registered models: {', '.join(MODELS)}") from None


def create_model(
    name: str, in_channels: int = 4, out_channels: int = 1, spatial_dims: int = 2, **kwargs: Any
) -> EncoderDecoderNet:
    """Build a registered network.

    Args:
        name: one of :func:`list_models` (``hlfnet``, ``hlfnet_hfe``, ``hlfnet_lfe``, ``unet``, ``resunet``).
        in_channels: input channels (ISIC: 4 = RGB + grey; CT: 1).
        out_channels: 1 for binary (sigmoid), ``K > 1`` for multi-class (softmax).
        spatial_dims: 2 or 3.
        **kwargs: overrides of the preset: ``base_channels``, ``depth``, ``norm_groups``, ``reduction``,
            ``encoder_block`` (e.g. ``"bottleneck"`` for a literal ResNet-bottleneck Res-Unet), ``skip_fusion``.

    Returns:
        The network (returns logits). ``model.model_name`` and ``model.model_kwargs`` hold what rebuilds it.

    Raises:
        KeyError: unknown ``name``.
        TypeError: unknown keyword argument.
        ValueError: a bad value (names it).
    """
    spec = get_model_spec(name)
    unknown = sorted(set(kwargs) - set(_ALLOWED_KWARGS))
    if unknown:
        raise TypeError(
            f"create_model({name!r}) got unknown argument(s) {unknown}; allowed: {list(_ALLOWED_KWARGS)}"
        )
    arguments = {**spec.preset, **kwargs}
    from hlfnet.limits import check_network_size

    if all(
        isinstance(arguments.get(k, 1), int) and arguments.get(k, 1) >= 1 for k in ("base_channels", "depth")
    ):
        # before allocating: depth=50, or in_channels=10**9 in a model.json, would need terabytes
        sizes = {**arguments, "in_channels": in_channels, "out_channels": out_channels}
        check_network_size(sizes, key_prefix="")
    model = EncoderDecoderNet(in_channels, out_channels, spatial_dims, **arguments)
    model.model_name = name
    model.model_kwargs = {
        "in_channels": in_channels,
        "out_channels": out_channels,
        "spatial_dims": spatial_dims,
        **kwargs,
    }
    return model
