"""Data: the paper's ISIC 2017 and MSD spleen pipelines, bring-your-own folders and volumes, synthetic data.

Public API (see ``docs/data.md``)::

    cfg = DataConfig(format="isic2017", root="data/isic2017")
    train = build_dataset(cfg, "train")          # items: {"image": (C,H,W) float, "mask": (1,H,W) int64, "id"}
    split = resolve_split(cfg)                   # {"train": [...], "val": [...], "test": [...]}
    write_split("split.json", split); read_split("split.json")   # the one split-file writer and reader
    x, (h0, w0) = preprocess_image("lesion.jpg", cfg)
"""

from __future__ import annotations

from hlfnet.data.channels import resolve_in_channels
from hlfnet.data.config import FORMATS, DataConfig, paper_config
from hlfnet.data.datasets import SegmentationDataset, build_dataset
from hlfnet.data.io import VolumeMeta, load_volume, read_image, read_mask
from hlfnet.data.preprocess import preprocess_image, slices_to_volume, volume_to_slices
from hlfnet.data.splits import read_split, resolve_split, write_split

__all__ = [
    "FORMATS",
    "DataConfig",
    "SegmentationDataset",
    "VolumeMeta",
    "build_dataset",
    "load_volume",
    "paper_config",
    "preprocess_image",
    "read_image",
    "read_mask",
    "read_split",
    "resolve_in_channels",
    "resolve_split",
    "slices_to_volume",
    "volume_to_slices",
    "write_split",
]
