"""Sliding-window inference of native-resolution plans (``data.preprocessing: patch``), 2-D and 3-D.

A case is brought onto the plan's grid (:func:`hlfnet.data.plan.prepare_case`: canonical orientation, target
spacing, normalisation), predicted with MONAI's ``sliding_window_inference`` (windows of the plan's patch size,
overlap 0.5, Gaussian importance weighting, ``batch_size`` windows per forward pass on the predictor's device,
the stitched probabilities kept on the CPU), optionally averaged over flips of every spatial axis (test-time
augmentation, as nnU-Net's mirroring), and brought back onto the input's own grid
(:func:`hlfnet.data.geometry.restore`, slab by slab so that full-resolution probabilities of every class never
exist at once).
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

import numpy as np
import torch

from hlfnet.data.geometry import restore
from hlfnet.data.plan import Case

if TYPE_CHECKING:
    from hlfnet.evaluation.predictor.predictor import Predictor

__all__ = ["WINDOW_OVERLAP", "window_probabilities", "case_labels"]

WINDOW_OVERLAP = 0.5


def _flips(spatial_dims: int) -> list[tuple[int, ...]]:
    axes = range(2, 2 + spatial_dims)
    return [c for r in range(spatial_dims + 1) for c in itertools.combinations(axes, r)]


def window_probabilities(predictor: Predictor, image: torch.Tensor) -> torch.Tensor:
    """``(C, *S)`` preprocessed case → ``(K, *S)`` probabilities by Gaussian-weighted sliding windows (an
    ensemble's: the mean of its networks' probabilities in every window, the same as the mean of each
    network's stitched probabilities, since the Gaussian stitching is a fixed weighted average)."""
    from monai.inferers import sliding_window_inference

    from hlfnet.models.slices import on_slices

    window = predictor.cfg.window_size
    network = predictor.forward_probabilities
    if predictor.cfg.is_slice_plan:  # a 2-D network on one axial slice per window
        network = on_slices(network)
    x = image[None].float()
    flips = _flips(predictor.cfg.spatial_dims) if predictor.tta else [()]  # in-plane only for slices
    total = None
    for dims in flips:
        flipped = x.flip(dims) if dims else x
        with torch.inference_mode():
            p = sliding_window_inference(
                flipped,
                window,
                sw_batch_size=predictor.batch_size,
                predictor=network,
                overlap=WINDOW_OVERLAP,
                mode="gaussian",
                padding_mode="constant",
                sw_device="cpu",
                device="cpu",
                progress=False,
            )
        p = p.flip(dims) if dims else p
        total = p if total is None else total + p
    assert total is not None
    return (total / len(flips))[0]


def case_labels(predictor: Predictor, case: Case) -> tuple[np.ndarray, np.ndarray]:
    """Labels and foreground probability of a prepared case, on the input's own (stored) grid."""
    probabilities = window_probabilities(predictor, torch.from_numpy(case.image))
    labels, foreground = restore(probabilities, case.geometry, lambda p: predictor.labels(p[None])[0])
    return predictor.postprocess(labels), foreground
