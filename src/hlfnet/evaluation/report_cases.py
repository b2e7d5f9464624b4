"""The cases a report shows: read from the data, with their ground truth, and (native-resolution plans) predicted.

Resize plans (the paper's) show each case as the network saw it: the preprocessed input at the network size, its
ground truth resized to match; the report predicts it there and can draw the paper's Fig. 4 from it.
Native-resolution plans (``data.preprocessing: patch``) show each case at its own size as it was scored: a 2-D
image whole, a volume as the evaluated axial slice (radiological view, the slice layout of ``hlfnet.data``), the
prediction made by sliding windows over the whole image or volume (once per volume).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

__all__ = ["ReportCase", "load_network_cases", "load_native_cases", "display_picture"]


@dataclass
class ReportCase:
    """One case shown in the report.

    Attributes:
        id: case id (``volume:slice`` for slices).
        tensor: the preprocessed network input ``(C, H, W)`` (resize plans), or ``None``.
        truth: ``uint8`` labels ``(H, W)``, at the network size (resize plans) or the case's own (native).
        jaccard: its primary Jaccard (for the caption), or ``None``.
        label: "best", "median", "worst" or "chosen".
        picture: what is drawn, ``(H, W)`` or ``(H, W, 3)`` in [0, 1] (default: from ``tensor``).
        prediction: ``uint8`` labels ``(H, W)`` already predicted (native plans), or ``None`` (predict ``tensor``).
    """

    id: str
    tensor: torch.Tensor | None
    truth: np.ndarray
    jaccard: float | None
    label: str
    picture: np.ndarray | None = None
    prediction: np.ndarray | None = None


def display_picture(tensor: torch.Tensor) -> np.ndarray:
    """Network input ``(C, H, W)`` → an RGB or grey picture ``(H, W[, 3])`` in [0, 1]."""
    array = tensor.detach().cpu().float().numpy()
    if array.shape[0] >= 3:
        return np.clip(np.moveaxis(array[:3], 0, 2), 0, 1)
    return np.clip(array[0], 0, 1)


def _scaled(array: np.ndarray) -> np.ndarray:
    """A grey picture in [0, 1]: clipped to its 0.5–99.5 percentiles (CT and MR have no fixed display range)."""
    low, high = np.percentile(array, [0.5, 99.5])
    if high <= low:
        return np.zeros(array.shape, dtype=np.float32)
    return np.clip((array.astype(np.float32) - low) / (high - low), 0, 1)


def load_network_cases(
    predictor: Any, cfg: Any, pairs: dict[str, Any], wanted: list[tuple[str, dict[str, str]]], volume: bool
) -> list[ReportCase]:
    """Resize plans: the ``wanted`` ``(label, CSV row)`` cases as network inputs with resized ground truth."""
    from hlfnet.data.io import load_label_volume, load_volume_channels, read_image_channels, read_mask
    from hlfnet.data.preprocess import labels_to_slices, preprocess_image, resize_mask, volume_to_slices

    cases = []
    for label, row in wanted:
        if volume:
            pair = pairs[row["volume"]]
            index = int(row["slice_index"])
            data, meta = load_volume_channels(pair.files)
            tensor = volume_to_slices(data, predictor.cfg, affine=meta.affine)[index]
            labels = load_label_volume(pair.mask, meta, data.shape, cfg.num_classes, cfg.label_values)
            truth = labels_to_slices(labels, meta.affine, cfg.image_size)[index].numpy()
            jaccard = float(row["slice_jaccard"])
        else:
            pair = pairs[row["id"]]
            tensor, _ = preprocess_image(
                read_image_channels(pair.channels) if pair.channels else pair.image, predictor.cfg
            )
            truth = resize_mask(
                read_mask(pair.mask, cfg.num_classes, cfg.mask_threshold, cfg.label_values), cfg.image_size
            )
            jaccard = float(row["original_jaccard"]) if "original_jaccard" in row else None
        cases.append(ReportCase(row["id"], tensor, np.asarray(truth), jaccard, label))
    return cases


def load_native_cases(
    predictor: Any, cfg: Any, pairs: dict[str, Any], wanted: list[tuple[str, dict[str, str]]], volume: bool
) -> list[ReportCase]:
    """Native-resolution plans: the ``wanted`` cases at their own size, predicted by sliding windows."""
    if volume:
        return _native_slices(predictor, cfg, pairs, wanted)
    from hlfnet.data.io import read_image_channels, read_mask
    from hlfnet.data.preprocess import image_to_array

    cases = []
    for label, row in wanted:
        pair = pairs[row["id"]]
        source = read_image_channels(pair.channels) if pair.channels else pair.image
        array, _ = image_to_array(source)
        picture = array[..., :3] if array.shape[-1] >= 3 else array[..., 0]
        picture = picture / 255.0 if picture.dtype == np.uint8 else _scaled(picture)
        prediction = predictor.predict_image(source).mask
        truth = read_mask(pair.mask, cfg.num_classes, cfg.mask_threshold, cfg.label_values)
        jaccard = float(row["original_jaccard"]) if "original_jaccard" in row else None
        cases.append(ReportCase(row["id"], None, truth, jaccard, label, picture, prediction))
    return cases


def _native_slices(
    predictor: Any, cfg: Any, pairs: dict[str, Any], wanted: list[tuple[str, dict[str, str]]]
) -> list[ReportCase]:
    from hlfnet.data.io import load_label_volume, load_volume
    from hlfnet.data.preprocess import reorient_to_slices

    def slice_layout(array: np.ndarray, affine: np.ndarray) -> np.ndarray:
        return np.transpose(reorient_to_slices(array, affine), (2, 0, 1))

    volumes: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    cases = []
    for label, row in wanted:
        name = row["volume"]
        if (
            name not in volumes
        ):  # one sliding-window prediction per volume, however many of its slices are shown
            pair = pairs[name]
            data, meta = load_volume(pair.image)
            labels = load_label_volume(pair.mask, meta, data.shape, cfg.num_classes, cfg.label_values)
            prediction = predictor.predict_volume_array(pair.files).labels
            volumes[name] = (slice_layout(data, meta.affine), slice_layout(labels, meta.affine), prediction)
        image, truth, prediction = volumes[name]
        index = int(row["slice_index"])
        cases.append(
            ReportCase(
                row["id"],
                None,
                np.asarray(truth[index]),
                float(row["slice_jaccard"]),
                label,
                _scaled(image[index]),
                np.asarray(prediction[index]),
            )
        )
    return cases
