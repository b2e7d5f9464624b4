"""NIfTI volumes: a :class:`VolumePrediction` per volume, slice by slice, as the paper's 2-D network, or by 3-D
sliding windows for a native-resolution plan (:mod:`.windows`).

Every axial slice is preprocessed as in training (:func:`~.preprocessing.prepare_volume`), predicted in batches,
its probabilities resized bilinearly back to the volume's own slice size, and the labels stacked in the axial
slice layout of ``hlfnet.data``; the largest-component option then works in 3-D.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from hlfnet.evaluation.predictor.inference import resize_probabilities
from hlfnet.evaluation.predictor.preprocessing import prepare_volume

if TYPE_CHECKING:
    from hlfnet.evaluation.predictor.predictor import Predictor

__all__ = ["VolumePrediction", "volume_prediction"]


@dataclass
class VolumePrediction:
    """The prediction of one volume, slice by slice, in the axial slice layout of ``hlfnet.data``.

    Attributes:
        id: the file name.
        labels: ``uint8`` ``(N, rows, cols)`` at the volume's own slice size.
        network_labels: ``uint8`` ``(N, H, W)`` at the network input size.
        probabilities: ``float32`` ``(N, K, rows, cols)``; for a native-resolution plan ``(N, 1, rows, cols)``,
            the foreground probability (the full-resolution probabilities of every class are never kept).
        source: the NIfTI file.
    """

    id: str
    labels: np.ndarray
    network_labels: np.ndarray
    probabilities: np.ndarray
    source: Path


def _patch_volume_prediction(predictor: Predictor, files: tuple[Path, ...]) -> VolumePrediction:
    """A native-resolution plan: sliding windows over the whole volume at the plan's spacing (3-D networks)."""
    from hlfnet.data.io import load_volume_channels
    from hlfnet.data.plan import prepare_case
    from hlfnet.data.preprocess import reorient_to_slices
    from hlfnet.evaluation.predictor.windows import case_labels

    path = files[0]
    volume, meta = load_volume_channels(files)
    image = volume[None] if volume.ndim == 3 else np.moveaxis(volume, -1, 0)
    if image.shape[0] != predictor.in_channels:
        raise ValueError(
            f"{path}: volume of shape {volume.shape} has {image.shape[0]} channel(s), the model takes "
            f"{predictor.in_channels}"
        )
    labels, foreground = case_labels(
        predictor, prepare_case(image, meta.affine, predictor.cfg, None, path.name)
    )

    def slice_layout(array: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(np.transpose(reorient_to_slices(array, meta.affine), (2, 0, 1)))

    labels = slice_layout(labels)
    return VolumePrediction(path.name, labels, labels, slice_layout(foreground)[:, None], path)


def volume_prediction(
    predictor: Predictor, path: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]
) -> VolumePrediction:
    """Predict every axial slice of a NIfTI volume with ``predictor``.

    ``path`` is one file, or a case's channel files in order (one 3-D volume each, stacked as channels; the
    prediction takes channel 0's grid and name).

    Returns:
        The :class:`VolumePrediction`, in the slice layout of ``hlfnet.data`` (rows, columns, slice).

    Raises:
        FileNotFoundError: missing file.
        ValueError: unreadable volume, or a 4-D volume whose channels the 2-D model cannot take (names the
            file and both counts).
    """
    from hlfnet.data.io import channel_files

    files = channel_files(path)
    path = files[0]
    if predictor.cfg.is_patch_plan:
        return _patch_volume_prediction(predictor, files)
    volume = prepare_volume(files, predictor.cfg, predictor.in_channels)
    labels, network_labels, probabilities = [], [], []
    for start in range(0, volume.slices.shape[0], predictor.batch_size):
        p = predictor.probabilities(volume.slices[start : start + predictor.batch_size])
        network_labels.append(predictor.labels(p).numpy())
        p = resize_probabilities(p, volume.slice_size)
        labels.append(predictor.labels(p).numpy())
        probabilities.append(p.numpy())
    # the largest component in 3-D: (N, rows, cols) is a volume as well
    label_volume = predictor.postprocess(np.concatenate(labels))
    network_volume = predictor.postprocess(np.concatenate(network_labels))
    return VolumePrediction(path.name, label_volume, network_volume, np.concatenate(probabilities), path)
