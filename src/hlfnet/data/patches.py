"""Patch datasets of native-resolution plans (``data.preprocessing: patch``), in 2-D and 3-D.

The training cases are read once onto the plan's grid (:func:`hlfnet.data.plan.load_case`) and kept in memory.
Each training item is one patch drawn by MONAI's transforms: padded to the patch size where the case is
smaller, cropped around a foreground voxel with probability ``foreground_oversample`` (nnU-Net: 1/3) or anywhere
otherwise (``RandCropByLabelClassesd``: the foreground class is drawn uniformly, then a voxel of it, as nnU-Net;
the case's per-class indices are computed once, after padding it to the patch size; nnU-Net's per-batch rule
decides which patches, see :class:`PatchDataset`), then
spatial augmentation (random rotation and zoom, ``RandAffined``; flips along every axis; elastic deformation
only when asked) and intensity augmentation (scale, shift, Gaussian noise). An epoch is ``patches_per_epoch``
patches; the case and every random draw of item ``i`` are functions of ``(seed, epoch, i)``, so a resumed run
sees what an uninterrupted one sees.

A 2-D plan of volumes (:attr:`~hlfnet.data.DataConfig.is_slice_plan`) crops ``(X, Y, 1)`` from the volume and
drops the slice axis: every patch is part of one axial slice, augmented in 2-D.

Validation items are whole cases, predicted with sliding windows by the training module.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from monai import transforms as mt
from torch.utils.data import Dataset

from hlfnet.data.config import DataConfig
from hlfnet.data.plan import Case, load_case

__all__ = ["PatchDataset", "CaseDataset", "load_cases", "patch_transforms"]


def load_cases(cfg: DataConfig, split: str) -> list[Case]:
    """Every case of ``split`` on the plan's grid, with labels."""
    from hlfnet.data.splits import split_pairs

    return [load_case(pair, cfg) for pair in split_pairs(cfg, split)]


def patch_transforms(cfg: DataConfig, foreground: bool) -> mt.Compose:
    """The training transforms of one patch (dictionary keys ``image``, ``label``, ``indices``).

    ``foreground``: the patch is centred on a foreground voxel, its class drawn uniformly among the foreground
    classes the case has (then a voxel of it), so a small organ beside a large one (the gallbladder beside the
    liver) is seen as often, as nnU-Net samples; otherwise the patch lies anywhere in the case.
    """
    patch = tuple(int(s) for s in cfg.patch_size)
    dims = len(patch)
    crop = cfg.window_size  # an axial slice of a volume: (X, Y, 1), made 2-D once cropped
    keys = ["image", "label"]
    classes = int(cfg.num_classes)
    steps: list[Any] = [mt.SpatialPadd(keys, spatial_size=crop, mode="constant")]  # a no-op: cases come padded
    if foreground:
        steps.append(
            mt.RandCropByLabelClassesd(
                keys,
                label_key="label",
                spatial_size=crop,
                ratios=[0.0] + [1.0] * (classes - 1),  # a class the case lacks gets ratio 0 (MONAI)
                num_classes=classes,
                num_samples=1,
                indices_key="indices",
                allow_smaller=False,
                warn=False,
            )
        )
    else:
        steps.append(mt.RandSpatialCropd(keys, roi_size=crop, random_size=False))
    if len(crop) > dims:
        steps.append(mt.SqueezeDimd(keys, dim=len(crop)))  # (C, X, Y, 1) → (C, X, Y)
    angle = math.radians(cfg.rotate_degrees)
    low, high = cfg.scale_range
    if angle > 0 or (low, high) != (1.0, 1.0):
        steps.append(
            mt.RandAffined(
                keys,
                prob=0.3,
                rotate_range=(angle,) * (1 if dims == 2 else 3),
                scale_range=((low - 1.0, high - 1.0),) * dims,
                mode=("bilinear", "nearest"),
                padding_mode="zeros",
                spatial_size=patch,
            )
        )
    if cfg.elastic and dims == 2:
        steps.append(
            mt.Rand2DElasticd(
                keys, spacing=(20, 20), magnitude_range=(1, 2), prob=0.2, mode=("bilinear", "nearest")
            )
        )
    elif cfg.elastic:
        steps.append(
            mt.Rand3DElasticd(
                keys, sigma_range=(5, 8), magnitude_range=(50, 150), prob=0.2, mode=("bilinear", "nearest")
            )
        )
    steps += [mt.RandFlipd(keys, prob=0.5, spatial_axis=axis) for axis in range(dims)]
    steps += [
        mt.RandScaleIntensityd("image", factors=0.1, prob=0.15),
        mt.RandShiftIntensityd("image", offsets=0.1, prob=0.15),
        mt.RandGaussianNoised("image", prob=0.1, std=0.05),
    ]
    return mt.Compose(steps)


def _seed(*values: int) -> int:
    return int(np.random.SeedSequence(list(values)).generate_state(1)[0])


class PatchDataset(Dataset):
    """``patches_per_epoch`` random training patches over ``cases``: ``{"image": (C, *P), "mask": (1, *P)}``.

    Foreground oversampling as nnU-Net's data loader does it, per batch: of each batch of ``batch_size``
    patches, the last ``batch_size - round(batch_size * (1 - foreground_oversample))`` are centred on foreground
    (batch 2: one of the two, so no batch lacks foreground), the others lie anywhere. The position of item
    ``index`` in its batch is ``(index // replicas) % batch_size`` for an unshuffled sampler over ``replicas``
    processes (items are independent random draws, so the loader need not shuffle them). With ``batch_size`` 1
    each patch is centred on foreground with probability ``foreground_oversample``.
    """

    def __init__(
        self, cases: list[Case], cfg: DataConfig, seed: int = 0, batch_size: int = 1, replicas: int = 1
    ) -> None:
        if not cases:
            raise ValueError("no training cases for the patch dataset")
        self.cfg = cfg
        self.seed = seed
        self.epoch = 0
        self.batch_size = max(1, int(batch_size))
        self.replicas = max(1, int(replicas))
        self.in_channels = int(cases[0].image.shape[0])
        self.transforms = {flag: patch_transforms(cfg, flag) for flag in (True, False)}
        # padded to the patch size once, before the class indices are computed: indices index the padded grid
        pad = mt.SpatialPad(spatial_size=cfg.window_size, mode="constant")
        indices = mt.ClassesToIndices(num_classes=int(cfg.num_classes))
        self.cases = []
        for case in cases:
            image = np.asarray(pad(case.image))
            label = np.asarray(pad(case.label[None].astype(np.int64)))
            self.cases.append(
                {"image": image, "label": label, "indices": indices(label), "has_foreground": bool(label.any())}
            )

    def centred_on_foreground(self, index: int, rng: np.random.Generator) -> bool:
        """Whether item ``index`` is one of its batch's foreground patches (see the class docstring)."""
        fg = float(self.cfg.foreground_oversample)
        if self.batch_size == 1:
            return bool(rng.random() < fg)
        forced = self.batch_size - round(self.batch_size * (1.0 - fg))
        return (index // self.replicas) % self.batch_size >= self.batch_size - forced

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return int(self.cfg.patches_per_epoch)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        seed = _seed(self.seed, self.epoch, int(index))
        rng = np.random.default_rng(seed)
        case = self.cases[rng.integers(len(self.cases))]
        transforms = self.transforms[self.centred_on_foreground(int(index), rng) and case["has_foreground"]]
        transforms.set_random_state(seed=seed)
        out = transforms({k: case[k] for k in ("image", "label", "indices")})
        item = out[0] if isinstance(out, list) else out
        image = torch.as_tensor(np.asarray(item["image"]), dtype=torch.float32)
        mask = torch.as_tensor(np.asarray(item["label"]), dtype=torch.long)
        return {"image": image, "mask": mask}


class CaseDataset(Dataset):
    """Whole cases for validation: ``{"image": (C, *S), "mask": (1, *S)}`` (batch size 1: sizes differ)."""

    def __init__(self, cases: list[Case]) -> None:
        self.cases = cases

    def __len__(self) -> int:
        return len(self.cases)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        case = self.cases[index]
        return {
            "image": torch.from_numpy(case.image),
            "mask": torch.from_numpy(case.label[None].astype(np.int64)),
        }
