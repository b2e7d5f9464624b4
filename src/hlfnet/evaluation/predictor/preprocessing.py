"""Preprocessing: an input file or array as the network's tensor, exactly as training prepared it.

2-D images go through ``hlfnet.data.preprocess_image`` and NIfTI volumes through ``volume_to_slices``, both with
the run's ``DataConfig``. Images are read in background threads a few batches ahead of the network
(:func:`prefetch`) and grouped into batches (:func:`batched`), keeping the input order.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

__all__ = ["PreparedImage", "PreparedVolume", "batched", "prefetch", "prepare_image", "prepare_volume"]

T = TypeVar("T")


@dataclass
class PreparedImage:
    """One 2-D image ready for the network.

    Attributes:
        id: the case id (the file stem, ``"array"`` for an array without an id).
        tensor: the preprocessed image ``(C, H, W)`` at the network input size.
        original: the image's own size ``(H0, W0)``, to which the prediction is resized back.
        source: the image file, or ``None`` for an array.
        extra: free room for callers.
    """

    id: str
    tensor: torch.Tensor
    original: tuple[int, int]
    source: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class PreparedVolume:
    """Every axial slice of one NIfTI volume, ready for the network.

    Attributes:
        slices: ``(N, C, H, W)`` preprocessed slices at the network input size.
        slice_size: ``(rows, cols)`` of the volume's own axial slices, to which predictions are resized back.
    """

    slices: torch.Tensor
    slice_size: tuple[int, int]


def prepare_image(
    image: str | os.PathLike[str] | np.ndarray | Sequence[str | os.PathLike[str]],
    cfg: Any,
    case_id: str | None = None,
) -> PreparedImage:
    """Read and preprocess one image as training did: its tensor ``(C, H, W)``, original size and id.

    ``image`` is a file, an array, or a case's channel files in order (tuple or list: nnU-Net's
    ``<case>_0000.png``, ``<case>_0001.png``..., stacked as channels; the source is channel 0).

    Raises:
        FileNotFoundError, ValueError: an unreadable image or one whose channels the model cannot take
            (names the file).
    """
    from hlfnet.data.preprocess import preprocess_image

    if isinstance(image, np.ndarray):
        tensor, original = preprocess_image(image, cfg)
        return PreparedImage(case_id or "array", tensor, original)
    if isinstance(image, (tuple, list)):
        from hlfnet.data.io import channel_files, read_image_channels

        files = channel_files(image)
        tensor, original = preprocess_image(read_image_channels(files), cfg)
        return PreparedImage(case_id or files[0].stem, tensor, original, source=files[0])
    path = Path(image)
    tensor, original = preprocess_image(path, cfg)
    return PreparedImage(case_id or path.stem, tensor, original, source=path)


def prepare_volume(
    path: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], cfg: Any, in_channels: int
) -> PreparedVolume:
    """Read a NIfTI volume (or a case's channel files, stacked) and preprocess every axial slice as training did.

    Raises:
        FileNotFoundError: missing file.
        ValueError: unreadable volume, or a 4-D volume whose channels the 2-D model cannot take (names the
            file and both counts).
    """
    from hlfnet.data.io import channel_files, load_volume_channels
    from hlfnet.data.preprocess import reorient_to_slices, volume_to_slices

    files = channel_files(path)
    path = files[0]
    volume, meta = load_volume_channels(files)
    channels = volume.shape[3] if volume.ndim == 4 else 1
    if channels != in_channels:
        raise ValueError(
            f"{path}: {volume.ndim}-D volume of shape {volume.shape} ({channels} channel(s)), but the 2-D model "
            f"takes slices with {in_channels} channel(s); give a 3-D volume (X, Y, Z)"
            + (" or one with matching channels" if in_channels > 1 else "")
        )
    rows, cols = reorient_to_slices(volume[..., 0] if volume.ndim == 4 else volume, meta.affine).shape[:2]
    return PreparedVolume(volume_to_slices(volume, cfg, affine=meta.affine), (rows, cols))


def prefetch(loader: Callable[[Any], T], inputs: Iterable[Any], workers: int, ahead: int) -> Iterator[T]:
    """``map(loader, inputs)``, run in ``workers`` background threads at most ``ahead`` inputs in advance.

    The results come in input order; with ``workers == 0`` everything runs in the calling thread.
    """
    if workers == 0:
        yield from map(loader, inputs)
        return
    with ThreadPoolExecutor(workers, thread_name_prefix="hlfnet-read") as pool:
        pending: deque[Future[T]] = deque()
        for value in inputs:
            pending.append(pool.submit(loader, value))
            if len(pending) >= ahead:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of ``size`` items (the last one shorter)."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
