"""Voxel geometry for native-resolution plans: canonical orientation, resampling to a spacing and back.

Volumes of any stored orientation (RAS, LAS, LPS, ...) are brought to the closest canonical RAS orientation
with nibabel's orientation tools (a permutation and flips of the array axes, no interpolation), resampled to
the plan's target spacing (``torch.nn.functional.interpolate``: trilinear for intensities and probabilities,
nearest for labels) and, after inference, brought back onto the source grid: probabilities are resampled to
the canonical shape slab by slab (``grid_sample``, the same mapping as ``interpolate`` with
``align_corners=False``), turned into labels per slab, and the labels re-oriented to the stored order. The
affine and header are the input's own.

A :class:`Geometry` records what was done, so that :func:`restore` is its exact inverse in shape and
orientation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import nibabel as nib
import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "Geometry",
    "voxel_spacing",
    "to_canonical",
    "from_canonical",
    "resampled_shape",
    "resample_image",
    "resample_labels",
    "restore",
]

_IDENTITY = np.array([[0, 1], [1, 1], [2, 1]], dtype=float)


def voxel_spacing(affine: np.ndarray) -> tuple[float, ...]:
    """Voxel size along each array axis (mm): the norms of the affine's first three columns."""
    return tuple(float(v) for v in np.linalg.norm(np.asarray(affine, dtype=np.float64)[:3, :3], axis=0))


@dataclass(frozen=True)
class Geometry:
    """How a stored array became the network's grid: orientation, spacings and shapes.

    Attributes:
        ornt: nibabel orientation of the stored axes relative to RAS (``io_orientation``); identity for 2-D.
        stored_shape: spatial shape as stored.
        canonical_shape: spatial shape after re-orientation (the stored shape permuted).
        spacing: voxel size along each canonical axis.
        target_spacing: the plan's spacing (``None``: no resampling).
        network_shape: spatial shape the network sees.
    """

    ornt: np.ndarray
    stored_shape: tuple[int, ...]
    canonical_shape: tuple[int, ...]
    spacing: tuple[float, ...]
    target_spacing: tuple[float, ...] | None
    network_shape: tuple[int, ...]


def to_canonical(
    data: np.ndarray, affine: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, tuple[float, ...]]:
    """Re-orient a stored ``(X, Y, Z[, C])`` volume to canonical RAS.

    Returns:
        ``(array, ornt, spacing)``: the re-oriented array (a view where possible), the orientation applied and
        the voxel spacing along the canonical axes. ``affine=None`` leaves the array as it is (spacing 1).
    """
    if affine is None:
        return data, _IDENTITY[: min(3, data.ndim)].copy(), (1.0,) * min(3, data.ndim)
    ornt = nib.orientations.io_orientation(affine)
    spacing = voxel_spacing(affine)
    canonical = nib.orientations.apply_orientation(data, ornt)
    order = np.argsort(ornt[:, 0].astype(int))  # canonical axis k comes from stored axis order[k]
    return canonical, ornt, tuple(spacing[int(i)] for i in order)


def from_canonical(data: np.ndarray, ornt: np.ndarray) -> np.ndarray:
    """The inverse of :func:`to_canonical` on the array: canonical RAS back to the stored axis order."""
    back = nib.orientations.ornt_transform(_IDENTITY[: len(ornt)], ornt)
    return np.ascontiguousarray(nib.orientations.apply_orientation(data, back))


def resampled_shape(
    shape: tuple[int, ...], spacing: tuple[float, ...], target: tuple[float, ...] | None
) -> tuple[int, ...]:
    """``round(shape * spacing / target)`` per axis (at least 1); the shape unchanged without a target."""
    if target is None:
        return tuple(int(s) for s in shape)
    return tuple(max(1, int(round(n * s / t))) for n, s, t in zip(shape, spacing, target, strict=True))


def _mode(ndim: int) -> str:
    return {1: "linear", 2: "bilinear", 3: "trilinear"}[ndim]


def resample_image(image: np.ndarray, size: tuple[int, ...]) -> np.ndarray:
    """``(C, *S)`` float image to ``(C, *size)`` by (bi/tri)linear interpolation (unchanged at its own size)."""
    if tuple(image.shape[1:]) == tuple(size):
        return np.ascontiguousarray(image, dtype=np.float32)
    x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None]
    out = F.interpolate(x, size=tuple(size), mode=_mode(len(size)), align_corners=False)
    return out[0].numpy()


def resample_labels(labels: np.ndarray, size: tuple[int, ...]) -> np.ndarray:
    """``(*S)`` integer labels to ``size`` by nearest neighbour (unchanged at its own size)."""
    if tuple(labels.shape) == tuple(size):
        return np.ascontiguousarray(labels)
    x = torch.from_numpy(np.ascontiguousarray(labels).astype(np.float32))[None, None]
    return F.interpolate(x, size=tuple(size), mode="nearest")[0, 0].numpy().astype(labels.dtype)


def _slab_grid(size: tuple[int, ...], start: int, stop: int) -> torch.Tensor:
    """``grid_sample`` coordinates of output rows ``start:stop`` (first axis) of a grid of ``size``.

    Normalised coordinates of pixel centres (``align_corners=False``), so the mapping equals
    ``interpolate(..., size=size, align_corners=False)``; grid_sample lists the last axis first.
    """
    axes = [
        torch.arange(start, stop, dtype=torch.float32),
        *(torch.arange(n, dtype=torch.float32) for n in size[1:]),
    ]
    coords = [(a + 0.5) / n * 2 - 1 for a, n in zip(axes, size, strict=True)]
    mesh = torch.meshgrid(*coords, indexing="ij")
    return torch.stack(mesh[::-1], dim=-1)[None]


def restore(
    probabilities: torch.Tensor,
    geometry: Geometry,
    to_labels: Callable[[torch.Tensor], torch.Tensor],
    slab: int = 16,
) -> tuple[np.ndarray, np.ndarray]:
    """Network-grid probabilities ``(K, *S_net)`` onto the stored grid, slab by slab.

    Probabilities (not labels) are resampled, as nnU-Net does, then ``to_labels`` (``(K, *S) -> (*S)``)
    decides each voxel. Memory: the network-grid probabilities plus one slab of ``slab`` canonical rows.

    Returns:
        ``(labels, foreground)`` in the stored axis order: ``uint8`` labels and the ``float32`` foreground
        probability (``p`` for one channel, ``1 - p(background)`` for several).
    """
    target = tuple(geometry.canonical_shape)
    probabilities = probabilities.float()

    def decide(p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        foreground = p[0] if p.shape[0] == 1 else 1.0 - p[0]
        return to_labels(p).to(torch.uint8), foreground

    if tuple(probabilities.shape[1:]) == target:
        labels, foreground = decide(probabilities)
    else:
        source = probabilities[None]
        parts = []
        for start in range(0, target[0], slab):
            grid = _slab_grid(target, start, min(target[0], start + slab))
            part = F.grid_sample(source, grid, mode="bilinear", padding_mode="border", align_corners=False)
            parts.append(decide(part[0]))
        labels = torch.cat([p[0] for p in parts], dim=0)
        foreground = torch.cat([p[1] for p in parts], dim=0)
    return from_canonical(labels.numpy(), geometry.ornt), from_canonical(foreground.numpy(), geometry.ornt)
