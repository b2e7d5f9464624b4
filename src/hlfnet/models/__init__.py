"""Networks of the HLF-Net paper: HFE, LFE, HLF-Net, its ablations and the U-Net baselines."""

from hlfnet.models.hfe import HFE, ChannelRecalibration, SpatialRecalibration
from hlfnet.models.io import load_model, save_model
from hlfnet.models.lfe import LFE, LFE_STYLES, CFENetSemanticEmbedding, CompactSemanticEmbedding
from hlfnet.models.network import AttentionMaps, EncoderDecoderNet, SegmentationOutput
from hlfnet.models.registry import MODELS, TABLE1_MODELS, ModelSpec, create_model, get_model_spec, list_models
from hlfnet.models.summary import count_flops, count_parameters

__all__ = [
    "HFE",
    "LFE",
    "LFE_STYLES",
    "CFENetSemanticEmbedding",
    "CompactSemanticEmbedding",
    "MODELS",
    "TABLE1_MODELS",
    "AttentionMaps",
    "ChannelRecalibration",
    "EncoderDecoderNet",
    "ModelSpec",
    "SegmentationOutput",
    "SpatialRecalibration",
    "count_flops",
    "count_parameters",
    "create_model",
    "get_model_spec",
    "list_models",
    "load_model",
    "save_model",
]
