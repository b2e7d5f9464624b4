"""2-D images: a :class:`Prediction` per image, at the image's own size and at the network size.

Images are read and preprocessed in background threads a few batches ahead of the network
(:func:`~.preprocessing.prefetch`), run in batches, and each image's probabilities are resized bilinearly back to
its original size before they are turned into labels — so boundaries are smooth at any scale.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from hlfnet.evaluation.predictor.inference import resize_probabilities
from hlfnet.evaluation.predictor.preprocessing import batched, prefetch

if TYPE_CHECKING:
    from hlfnet.evaluation.predictor.predictor import Predictor

__all__ = ["Prediction", "image_predictions"]


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


def _window_predictions(
    predictor: Predictor,
    images: Sequence[str | os.PathLike[str] | np.ndarray],
    ids: Sequence[str] | None,
    keep_probabilities: bool,
) -> Iterator[Prediction]:
    """A native-resolution plan: each image at its own size, by sliding windows (:mod:`.windows`)."""
    from hlfnet.data.channels import resolve_in_channels
    from hlfnet.data.io import channel_files, read_image_channels
    from hlfnet.data.plan import prepare_case
    from hlfnet.data.preprocess import image_to_array, to_model_channels
    from hlfnet.evaluation.predictor.windows import window_probabilities

    for index, image in enumerate(images):
        first = None if isinstance(image, np.ndarray) else channel_files(image)[0]
        if isinstance(image, (tuple, list)):  # a case's channel files, stacked in order
            array, source = image_to_array(read_image_channels(image))
            source = first
        else:
            array, source = image_to_array(image)
        chw = to_model_channels(array, resolve_in_channels(predictor.cfg, array.shape[2]), source)
        case_id = ids[index] if ids is not None else (first.stem if first is not None else "array")
        case = prepare_case(chw, None, predictor.cfg, None, case_id)
        probabilities = window_probabilities(predictor, torch.from_numpy(case.image))
        mask = predictor.postprocess(predictor.labels(probabilities[None])[0].numpy())
        yield Prediction(
            id=case_id,
            mask=mask,
            network_mask=mask,
            probabilities=probabilities.numpy() if keep_probabilities else None,
            source=first,
        )


def image_predictions(
    predictor: Predictor,
    images: Sequence[str | os.PathLike[str] | np.ndarray],
    ids: Sequence[str] | None = None,
    keep_probabilities: bool = False,
) -> Iterator[Prediction]:
    """Predict 2-D images in batches with ``predictor``, yielding one :class:`Prediction` per image in input order.

    Images are read and preprocessed in ``predictor.workers`` background threads, two batches ahead of the
    network.

    Args:
        predictor: the :class:`~hlfnet.evaluation.predictor.Predictor` (network, preprocessing and options).
        images: image files, arrays ``(H, W[, C])``, or tuples of a case's channel files in order (stacked).
        ids: case ids (default: the file stems).
        keep_probabilities: also return the probabilities at the original size.

    Raises:
        FileNotFoundError, ValueError: an unreadable image or one whose channels the model cannot take
            (names the file).
    """
    if ids is not None and len(ids) != len(images):
        raise ValueError(f"got {len(ids)} ids for {len(images)} images")
    if predictor.cfg.is_patch_plan:
        yield from _window_predictions(predictor, images, ids, keep_probabilities)
        return
    pairs = list(zip(images, ids if ids is not None else [None] * len(images), strict=True))
    items = prefetch(
        lambda pair: predictor.load_image(*pair), pairs, predictor.workers, 2 * predictor.batch_size
    )
    for batch in batched(items, predictor.batch_size):
        probabilities = predictor.probabilities(torch.stack([item.tensor for item in batch]))
        network_labels = predictor.labels(probabilities).numpy()
        for item, p, network_mask in zip(batch, probabilities, network_labels, strict=True):
            full = resize_probabilities(p[None], item.original)
            yield Prediction(
                id=item.id,
                mask=predictor.postprocess(predictor.labels(full)[0].numpy()),
                network_mask=predictor.postprocess(network_mask),
                probabilities=full[0].numpy() if keep_probabilities else None,
                source=item.source,
            )
