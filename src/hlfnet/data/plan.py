"""The preprocessing plan of a native-resolution run: fingerprint a data set, derive its settings, apply them.

``data.preprocessing: patch`` trains on patches at a target spacing instead of whole images resized to one
small size (``resize``, the paper's plan, which the shipped ISIC configs keep). The plan is derived from the
training cases the way nnU-Net derives its plans (Isensee et al., *nnU-Net*, Nat. Methods 2021):

* **target spacing**: the median spacing per axis; for anisotropic data (the coarsest axis more than 3× the
  finest, and its median size less than 1/3 of the others') the coarse axis takes the 10th percentile of its
  spacings instead (but not finer than the finest other axis);
* **2-D slices of volumes** (``spatial_dims: 2`` on a volume format, nnU-Net's ``2d`` configuration): the target
  spacing is derived in-plane (R-L, A-P) only, each volume keeps its own slice spacing, and a 2-D network sees
  one axial slice per patch and per sliding window (:attr:`~hlfnet.data.DataConfig.window_size`);
* **intensity normalisation** per channel: ``ct`` (the modality says CT): clip to the 0.5 and 99.5 percentiles of
  the foreground voxels of all training cases, then subtract their mean and divide by their standard deviation;
  ``zscore`` (MR and other volumes): each image's own mean and standard deviation; ``rgb`` (8-bit images, as the
  paper): divide by 255;
* **patch size**: the median shape at the target spacing, rounded up to a multiple of ``2**depth`` and
  shrunk (largest axis first) until a batch of patches fits the memory budget; batch 2 for 3-D, up to 12
  for 2-D.

:func:`make_plan` computes a :class:`Plan`; :func:`apply_plan` writes its values into the data section, which is
then the one source of the run's preprocessing (training, evaluation, prediction, serving and export read it
through :func:`load_case` / :func:`prepare_case`). The plan itself is written to the run folder as
``plan.json`` (per-case spacings and sizes, the derived values and how they were derived).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hlfnet.data.config import DataConfig
from hlfnet.data.geometry import Geometry, resample_image, resample_labels, resampled_shape, to_canonical
from hlfnet.data.io import is_nifti, load_label_volume, load_volume_channels, read_image_channels, read_mask
from hlfnet.limits import ACTIVATION_BYTES_PER_PIXEL_CHANNEL

__all__ = [
    "ANISOTROPY_THRESHOLD",
    "Case",
    "Plan",
    "make_plan",
    "apply_plan",
    "target_spacing",
    "foreground_statistics",
    "fit_patch_size",
    "normalize",
    "load_case",
    "prepare_case",
    "full_target",
    "read_modality",
    "read_modalities",
]

logger = logging.getLogger(__name__)

ANISOTROPY_THRESHOLD = 3.0
#: Foreground voxels sampled per training case for the CT statistics (nnU-Net samples 10,000 per case).
FOREGROUND_SAMPLES_PER_CASE = 10_000


@dataclass
class Case:
    """One case on the network's grid: ``image`` ``(C, *S)`` float32 (normalised), ``label`` ``(*S)`` or None."""

    id: str
    image: np.ndarray
    label: np.ndarray | None
    geometry: Geometry


@dataclass
class Plan:
    """What :func:`make_plan` derived (JSON-serialisable; ``plan.json`` in the run folder)."""

    spatial_dims: int
    normalization: str
    intensity_stats: list[list[float]] | None
    target_spacing: list[float] | None
    patch_size: list[int]
    batch_size: int
    num_classes: int
    median_shape: list[int]
    cases: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=1)

    def describe(self) -> str:
        """A few lines for the terminal."""
        lines = [
            f"plan: {self.spatial_dims}-D patches {self.patch_size}, batch {self.batch_size}, "
            f"{len(self.cases)} training case(s), {self.num_classes} classes",
            f"  target spacing: {self.target_spacing or 'none (images kept at their own pixel grid)'}",
            f"  median shape at that spacing: {self.median_shape}",
            f"  normalisation: {self.normalization}"
            + (
                f" {[[round(v, 3) for v in s] for s in self.intensity_stats]}" if self.intensity_stats else ""
            ),
        ]
        return "\n".join(lines + [f"  {note}" for note in self.notes])


# ------------------------------------------------------------------------------------------ derivations


def target_spacing(spacings: np.ndarray, shapes: np.ndarray) -> tuple[list[float], str]:
    """nnU-Net's rule: median spacing; the coarse axis of anisotropic data at its 10th percentile.

    Args:
        spacings: ``(N, D)`` spacing of each case along each canonical axis.
        shapes: ``(N, D)`` shape of each case.

    Returns:
        ``(target, note)``.
    """
    spacings = np.asarray(spacings, dtype=np.float64)
    target = np.median(spacings, axis=0)
    if target.size < 2:
        return target.tolist(), "median spacing"
    sizes = np.median(np.asarray(shapes, dtype=np.float64) * spacings / target, axis=0)
    worst = int(np.argmax(target))
    others = [i for i in range(target.size) if i != worst]
    anisotropic_spacing = target[worst] > ANISOTROPY_THRESHOLD * min(target[others])
    anisotropic_voxels = sizes[worst] * ANISOTROPY_THRESHOLD < min(sizes[others])
    if anisotropic_spacing and anisotropic_voxels:
        coarse = max(float(np.percentile(spacings[:, worst], 10)), float(min(target[others])) + 1e-5)
        target[worst] = coarse
        return target.tolist(), f"anisotropic: axis {worst} at the 10th percentile of its spacings"
    return target.tolist(), "median spacing"


def foreground_statistics(samples: list[np.ndarray]) -> list[float]:
    """``[p0.5, p99.5, mean, std]`` of the pooled foreground intensities of one channel (nnU-Net's CT scheme)."""
    pooled = (
        np.concatenate([np.asarray(s, dtype=np.float64).ravel() for s in samples]) if samples else np.zeros(0)
    )
    if pooled.size == 0:
        raise ValueError("no foreground voxels in the training cases: cannot derive the CT normalisation")
    low, high = np.percentile(pooled, [0.5, 99.5])
    return [float(low), float(high), float(pooled.mean()), float(max(pooled.std(), 1e-8))]


def fit_patch_size(
    median_shape: list[int],
    spatial_dims: int,
    base_channels: int,
    depth: int,
    budget_bytes: int,
    patch: list[int] | None = None,
) -> tuple[list[int], int]:
    """Patch size and batch size for a memory budget.

    Start from the median shape rounded up to a multiple of ``2**depth`` (capped at 512 per axis in 2-D,
    160 in 3-D), then shrink the largest axis by ``2**depth`` until ``batch`` patches fit; batch 2 in 3-D,
    in 2-D as many (up to 12, at least 2) as fit. A given ``patch`` is kept and only the batch is fitted.
    """
    step = 2**depth

    def cost(p: list[int], batch: int) -> int:
        return ACTIVATION_BYTES_PER_PIXEL_CHANNEL * base_channels * batch * int(np.prod(p))

    minimum_batch = 2
    if patch is None:
        cap = 512 if spatial_dims == 2 else 160
        patch = [min(cap, max(step, math.ceil(s / step) * step)) for s in median_shape]
        while cost(patch, minimum_batch) > budget_bytes and max(patch) > step:
            axis = int(np.argmax(patch))
            patch[axis] -= step
    patch = list(patch)
    if spatial_dims == 3:
        return patch, 2
    batch = max(minimum_batch, min(12, budget_bytes // max(1, cost(patch, 1))))
    return patch, int(batch)


def read_modality(root: str | Path) -> str | None:
    """The modality of channel 0 from an MSD (``modality``) or nnU-Net (``channel_names``) ``dataset.json``."""
    path = Path(root) / "dataset.json"
    if not path.is_file():
        return None
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    for key in ("modality", "channel_names"):
        names = meta.get(key) if isinstance(meta, dict) else None
        if isinstance(names, dict) and names:
            return str(names.get("0", next(iter(names.values()))))
    return None


def read_modalities(root: str | Path) -> tuple[str, ...]:
    """Every channel's modality, channel order, from an MSD (``modality``) or nnU-Net (``channel_names``)
    ``dataset.json``; ``()`` when there is none or it is unreadable."""
    path = Path(root) / "dataset.json"
    if not path.is_file():
        return ()
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError):
        return ()
    for key in ("modality", "channel_names"):
        names = meta.get(key) if isinstance(meta, dict) else None
        if isinstance(names, dict) and names:
            try:
                return tuple(str(names[k]) for k in sorted(names, key=int))
            except ValueError:
                return tuple(str(v) for v in names.values())
    return ()


# ------------------------------------------------------------------------------------------ reading


def _read_stored(pair: Any, cfg: DataConfig) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """``(image (C, *S) stored order, label (*S) or None, affine or None)`` of one case."""
    if is_nifti(Path(pair.image)):
        data, meta = load_volume_channels(pair.files)
        label = None
        if pair.mask is not None:
            label = load_label_volume(
                pair.mask, meta, data.shape, cfg.num_classes, label_values=cfg.label_values
            )
        image = data[None] if data.ndim == 3 else np.moveaxis(data, -1, 0)
        return image, label, meta.affine
    array = read_image_channels(pair.files)
    image = np.moveaxis(array, -1, 0)
    label = (
        read_mask(pair.mask, cfg.num_classes, cfg.mask_threshold, cfg.label_values)
        if pair.mask is not None
        else None
    )
    return image, label, None


def _canonical(image: np.ndarray, label: np.ndarray | None, affine: np.ndarray | None):
    if affine is None:
        return image, label, np.array([[0, 1], [1, 1]], dtype=float), (1.0, 1.0)
    moved = np.moveaxis(image, 0, -1)
    canonical, ornt, spacing = to_canonical(moved, affine)
    image = np.ascontiguousarray(np.moveaxis(canonical, -1, 0))
    if label is not None:
        label = np.ascontiguousarray(to_canonical(label, affine)[0])
    return image, label, ornt, spacing


def normalize(image: np.ndarray, scheme: str, stats: Any = None) -> np.ndarray:
    """Apply the plan's intensity normalisation to ``(C, *S)`` (float32 out)."""
    image = image.astype(np.float32, copy=False)
    if scheme == "rgb":
        return image / 255.0 if image.max(initial=0) > 1.0 else image
    if scheme == "ct":
        out = np.empty_like(image)
        for c in range(image.shape[0]):
            low, high, mean, std = stats[c]
            out[c] = (np.clip(image[c], low, high) - mean) / std
        return out
    if scheme == "zscore":
        mean = image.reshape(image.shape[0], -1).mean(1)
        std = image.reshape(image.shape[0], -1).std(1)
        shape = (-1,) + (1,) * (image.ndim - 1)
        return (image - mean.reshape(shape)) / np.maximum(std, 1e-8).reshape(shape)
    raise ValueError(f"data.normalization must be ct, zscore or rgb, got {scheme!r}")


def full_target(target: Any, spacing: tuple[float, ...]) -> tuple[float, ...] | None:
    """The spacing a case is resampled to: the plan's target, the axes it leaves out (the slice axis of a 2-D
    plan of volumes) at the case's own ``spacing``."""
    if not target:
        return None
    target = tuple(float(t) for t in target)
    return (*target, *spacing[len(target) :])


def prepare_case(
    image: np.ndarray,
    affine: np.ndarray | None,
    cfg: DataConfig,
    label: np.ndarray | None = None,
    case_id: str = "",
) -> Case:
    """One stored case (``(C, *S)`` image, optional labels, affine for volumes) onto the plan's grid."""
    if cfg.normalization == "auto" or cfg.patch_size is None:
        raise ValueError(
            "the data section has no resolved plan (data.patch_size / data.normalization); run make_plan"
        )
    stored_shape = tuple(int(s) for s in image.shape[1:])
    image, label, ornt, spacing = _canonical(image, label, affine)
    canonical_shape = tuple(int(s) for s in image.shape[1:])
    target = full_target(cfg.target_spacing, spacing)
    size = resampled_shape(canonical_shape, spacing, target)
    from hlfnet.limits import check_image_pixels, check_volume_voxels

    check = check_volume_voxels if len(size) == 3 else check_image_pixels
    check(size, f"{case_id or 'input'} resampled to {list(size)}")  # before the resampled array exists
    image = resample_image(normalize(image, cfg.normalization, cfg.intensity_stats), size)
    if label is not None:
        label = resample_labels(label, size)
    geometry = Geometry(ornt, stored_shape, canonical_shape, spacing, target, tuple(size))
    return Case(case_id, image, label, geometry)


def load_case(pair: Any, cfg: DataConfig) -> Case:
    """Read one :class:`~hlfnet.data.layouts.Pair` and bring it onto the plan's grid."""
    image, label, affine = _read_stored(pair, cfg)
    if cfg.in_channels is not None and image.shape[0] != cfg.in_channels:
        if affine is None:
            from hlfnet.data.preprocess import to_model_channels

            image = to_model_channels(np.moveaxis(image, 0, -1), cfg.in_channels, pair.image)
        else:
            raise ValueError(f"{pair.image}: {image.shape[0]} channel(s), the plan expects {cfg.in_channels}")
    return prepare_case(image, affine, cfg, label, pair.id)


# ------------------------------------------------------------------------------------------ the plan


def make_plan(cfg: DataConfig, base_channels: int = 16, depth: int = 4) -> Plan:
    """Fingerprint the training cases of ``cfg`` and derive the plan (see the module docstring).

    Values already set in ``cfg`` (``target_spacing``, ``patch_size``, ``normalization`` other than ``auto``)
    are kept: the plan derives only what is left open. A cross-validation fold plans from every training case
    (the pool of :mod:`hlfnet.data.folds`, as nnU-Net plans once per data set), so that all folds share one
    plan and their networks can be ensembled.
    """
    from hlfnet.data.folds import ALL_FOLDS
    from hlfnet.data.splits import split_pairs

    pairs = split_pairs(dataclasses.replace(cfg, fold=ALL_FOLDS) if cfg.fold is not None else cfg, "train")
    if not pairs:
        raise ValueError(f"{cfg.root}: no training cases to plan from")
    volumes = is_nifti(Path(pairs[0].image))
    spatial_dims = cfg.spatial_dims
    if spatial_dims == 3 and not volumes:
        raise ValueError(f"data.spatial_dims=3 needs volumes (NIfTI); {cfg.root} holds 2-D images")
    modality = read_modality(cfg.root) if cfg.root else None
    modalities = read_modalities(cfg.root) if cfg.root else ()
    scheme = cfg.normalization
    mixed = len(modalities) > 1 and any(m.upper() != "CT" for m in modalities)
    if scheme == "auto":
        # one scheme for all channels: the CT rule only when every channel is CT; channels of other (or
        # mixed) modalities are z-scored per image and channel, as nnU-Net does for non-CT channels
        ct = (modality or "").upper() == "CT" and not mixed
        scheme = "ct" if ct else ("zscore" if volumes else "rgb")
    rng = np.random.default_rng(cfg.seed)
    spacings, shapes, cases, samples = [], [], [], []
    for pair in pairs:
        image, label, affine = _read_stored(pair, cfg)
        image, label, _, spacing = _canonical(image, label, affine)
        spacings.append(spacing)
        shapes.append(image.shape[1:])
        cases.append(
            {"id": pair.id, "shape": list(image.shape[1:]), "spacing": [round(s, 5) for s in spacing]}
        )
        if scheme == "ct":
            if label is None:
                raise ValueError(f"{pair.image}: the CT normalisation needs labels to find the foreground")
            fg = image[:, label > 0]
            take = rng.choice(fg.shape[1], size=min(FOREGROUND_SAMPLES_PER_CASE, fg.shape[1]), replace=False)
            samples.append(fg[:, take])
    declared = ", ".join(modalities) if len(modalities) > 1 else (modality or "not declared")
    notes = [f"modality: {declared} -> normalisation {scheme}"]
    if mixed and volumes:
        notes.append("channels of different modalities: every channel z-scored per image (CT channels too)")
    target: list[float] | None
    if cfg.target_spacing is not None:
        target = list(cfg.target_spacing)
        notes.append("target spacing: set in the config")
    elif volumes and spatial_dims == 2:  # nnU-Net's 2d configuration: in-plane only
        target, how = target_spacing(np.array(spacings)[:, :2], np.array(shapes)[:, :2])
        notes.append(
            f"target spacing: {how} of the axial slices (R-L, A-P); each slice axis keeps its spacing"
        )
    elif volumes:
        target, how = target_spacing(np.array(spacings), np.array(shapes))
        notes.append(f"target spacing: {how}")
    else:
        target = None
    stats = None
    if scheme == "ct":
        if cfg.intensity_stats is not None:
            stats = [list(s) for s in cfg.intensity_stats]
        else:
            channels = samples[0].shape[0]
            stats = [foreground_statistics([s[c] for s in samples]) for c in range(channels)]
    median = [
        int(round(v))
        for v in np.median(
            [
                resampled_shape(tuple(s), tuple(sp), full_target(target, tuple(sp)))
                for s, sp in zip(shapes, spacings, strict=True)
            ],
            axis=0,
        )
    ]
    if volumes and spatial_dims == 2:
        median = median[:2]  # axial slices: the first two canonical axes (R-L, A-P)
    budget = int(cfg.memory_budget_mb) * 2**20
    given = list(cfg.patch_size) if cfg.patch_size is not None else None
    patch, batch = fit_patch_size(median, spatial_dims, base_channels, depth, budget, given)
    if given is not None:
        notes.append("patch size: set in the config")
    notes.append(f"memory budget {cfg.memory_budget_mb} MiB for base width {base_channels}, depth {depth}")
    return Plan(
        spatial_dims=spatial_dims,
        normalization=scheme,
        intensity_stats=stats,
        target_spacing=target,
        patch_size=patch,
        batch_size=batch,
        num_classes=cfg.num_classes,
        median_shape=median,
        cases=cases,
        notes=notes,
    )


def apply_plan(cfg: DataConfig, plan: Plan) -> DataConfig:
    """The data section with the plan's values filled in (what the run's ``config.yaml`` records)."""
    return dataclasses.replace(
        cfg,
        normalization=plan.normalization,
        intensity_stats=tuple(tuple(s) for s in plan.intensity_stats) if plan.intensity_stats else None,
        target_spacing=tuple(plan.target_spacing) if plan.target_spacing else None,
        patch_size=tuple(plan.patch_size),
    )
