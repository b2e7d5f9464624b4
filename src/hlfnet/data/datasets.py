"""``build_dataset``: the torch ``Dataset`` of one split, for every format.

Items are dicts: ``"image"`` ``float32`` ``(C, H, W)`` in [0, 1], ``"mask"`` ``int64`` ``(1, H, W)`` class
indices, ``"id"`` ``str``; slices of volumes also carry ``"volume"`` (``str``) and ``"slice_index"`` (``int``,
axial index in the ``PLS`` layout of :mod:`hlfnet.data.preprocess`).

Augmentation is reproducible: item ``i`` of epoch ``e`` draws from ``np.random.default_rng([seed, e, i])``
once the trainer calls :meth:`SegmentationDataset.set_epoch` (like ``DistributedSampler.set_epoch``), whatever
the number of workers. Without ``set_epoch`` each item draws a fresh number from torch's default generator,
which differs per epoch and is reproducible for a fixed ``torch.manual_seed`` and worker count.
"""

from __future__ import annotations

import logging
from functools import lru_cache

import numpy as np
import torch
from torch.utils.data import Dataset

from hlfnet.data.augment import AugmentParams, augment_pair
from hlfnet.data.cache import ArrayStore, load_or_build
from hlfnet.data.channels import resolve_in_channels
from hlfnet.data.config import SPLITS, DataConfig
from hlfnet.data.preprocess import to_model_channels
from hlfnet.data.splits import split_pairs
from hlfnet.data.synthetic import generate_synthetic, synthetic_ids

__all__ = ["SegmentationDataset", "build_dataset"]

logger = logging.getLogger(__name__)


class SegmentationDataset(Dataset):
    """Preprocessed samples of one split, with optional augmentation.

    Args:
        store: Preprocessed arrays (memory or cache memory maps).
        rows: Rows of ``store`` in this dataset (e.g. slices with foreground).
        num_classes: Number of classes.
        augment: Apply :func:`~hlfnet.data.augment.augment_pair`.
        params: Augmentation settings.
        seed: Augmentation seed.
    """

    def __init__(
        self,
        store: ArrayStore,
        rows: list[int],
        num_classes: int,
        augment: bool = False,
        params: AugmentParams | None = None,
        seed: int = 0,
    ) -> None:
        self.store = store
        self.rows = list(rows)
        self.num_classes = num_classes
        self.augment = augment
        self.params = params or AugmentParams()
        self.seed = seed
        self.epoch: int | None = None
        self._records = {r["row"]: r for r in store.records}

    @property
    def in_channels(self) -> int:
        """Channels of ``"image"``."""
        return int(self.store.images.shape[1])

    @property
    def image_size(self) -> tuple[int, int]:
        """``(H, W)`` of the items."""
        return int(self.store.images.shape[2]), int(self.store.images.shape[3])

    @property
    def ids(self) -> list[str]:
        """Item ids, in order."""
        return [self._records[r]["id"] for r in self.rows]

    def set_epoch(self, epoch: int) -> None:
        """Make this epoch's augmentation depend only on ``(seed, epoch, index)``."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.rows)

    def _rng(self, index: int) -> np.random.Generator:
        if self.epoch is not None:
            return np.random.default_rng([self.seed & 0xFFFFFFFF, self.epoch, index])
        draw = int(torch.randint(0, 2**62, (1,)).item())
        return np.random.default_rng([self.seed & 0xFFFFFFFF, draw, index])

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self.rows):
            raise IndexError(f"index {index} out of range for {len(self.rows)} items")
        row = self.rows[index]
        # NumPy rather than torch ops here: no intra-op threads to contend for inside the loader.
        stored = self.store.images[row]
        image = torch.from_numpy(
            np.divide(stored, np.float32(255.0), dtype=np.float32)
            if stored.dtype == np.uint8
            else np.array(stored, np.float32)
        )
        mask = torch.from_numpy(np.array(self.store.masks[row], dtype=np.int64))[None]
        if self.augment:
            image, mask = augment_pair(image, mask, self._rng(index), self.params)
        record = self._records[row]
        item = {"image": image, "mask": mask, "id": record["id"]}
        if "volume" in record:
            item["volume"] = record["volume"]
            item["slice_index"] = int(record["slice_index"])
        return item


@lru_cache(maxsize=8)
def _synthetic_store(
    split: str, count: int, size: tuple[int, int], seed: int, num_classes: int, in_channels: int
) -> ArrayStore:
    rgb, masks = generate_synthetic(split, count, size, seed, num_classes)
    images = (
        np.stack([to_model_channels(img, in_channels, "synthetic") for img in rgb])
        if count
        else np.zeros((0, in_channels, *size), np.uint8)
    )
    ids = synthetic_ids(split, count)
    records = [{"id": ids[i], "foreground": bool(masks[i].any()), "row": i} for i in range(count)]
    images.setflags(write=False)
    masks.setflags(write=False)
    return ArrayStore(images, masks, records)


def build_dataset(cfg: DataConfig, split: str, augment: bool | None = None) -> SegmentationDataset:
    """The dataset of one split.

    Args:
        cfg: Data config.
        split: ``"train"``, ``"val"`` or ``"test"``.
        augment: ``None`` = ``cfg.augment`` on the train split only.

    Returns:
        A :class:`SegmentationDataset` (possibly empty, e.g. the val split of a single volume).

    Raises:
        ValueError: unknown split, or bad data (named file and problem).
        FileNotFoundError: missing data folder or files.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if augment is None:
        augment = cfg.augment and split == "train"
    if cfg.format == "synthetic":
        store = _synthetic_store(
            split,
            cfg.synthetic_count(split),
            tuple(cfg.image_size),
            cfg.seed,
            cfg.num_classes,
            resolve_in_channels(cfg),
        )
    else:
        pairs = split_pairs(cfg, split)
        if not pairs:
            logger.warning("%s split of %s is empty", split, cfg.root)
        store = load_or_build(cfg, split, pairs)
    rows = [r["row"] for r in store.records]
    if cfg.is_volume and split in cfg.drop_background_slices:
        kept = [r["row"] for r in store.records if r["foreground"]]
        logger.info("%s: kept %d of %d slices (dropped background-only slices)", split, len(kept), len(rows))
        rows = kept
    return SegmentationDataset(
        store, rows, cfg.num_classes, augment, AugmentParams.from_config(cfg), cfg.seed
    )
