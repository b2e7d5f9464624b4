"""Results: what a :class:`~hlfnet.evaluation.predictor.Predictor` returns for a 2-D image and for a volume.

Both hold the labels at the input's own size (what is written and scored against the original mask) and at
the network input size (what ``hlfnet evaluate`` scores at the ``network`` / ``slice`` level).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["Prediction", "VolumePrediction"]


@dataclass
class Prediction:
    """The prediction of one 2-D image.

    Attributes:
        id: the case id (the file stem for files).
        mask: ``uint8`` labels ``(H0, W0)`` at the original image size (binary: 0/1).
        network_mask: ``uint8`` labels ``(H, W)`` at the network input size.
        probabilities: ``float32`` ``(K, H0, W0)`` at the original size (``K = 1`` binary: the foreground
            probability), or ``None`` unless asked for.
        source: the image file, or ``None`` for an array.
    """

    id: str
    mask: np.ndarray
    network_mask: np.ndarray
    probabilities: np.ndarray | None = None
    source: Path | None = None


@dataclass
class VolumePrediction:
    """The prediction of one volume, slice by slice, in the axial slice layout of ``hlfnet.data``.

    Attributes:
        id: the file name.
        labels: ``uint8`` ``(N, rows, cols)`` at the volume's own slice size.
        network_labels: ``uint8`` ``(N, H, W)`` at the network input size.
        probabilities: ``float32`` ``(N, K, rows, cols)``.
        source: the NIfTI file.
    """

    id: str
    labels: np.ndarray
    network_labels: np.ndarray
    probabilities: np.ndarray
    source: Path
