"""Inference: one :class:`Predictor` that ``hlfnet predict`` and ``hlfnet evaluate`` both wrap.

The predictor rebuilds the training preprocessing from the run (``hlfnet.data.preprocess_image`` /
``volume_to_slices`` with the run's ``DataConfig``), runs the network in batches, and brings the prediction
back to the input's geometry:

* 2-D images: the class probabilities are resized bilinearly from the network size to the original image
  size, then thresholded (binary: ``p > threshold``; multi-class: argmax) and written as 8-bit PNG — binary
  masks as 0/255, multi-class masks as class indices — never JPEG.
* NIfTI volumes: every axial slice is predicted (as the paper, a 2-D network on slices), probabilities are
  resized back to the slice size, and the labels are stacked into a NIfTI with the input's affine and header
  (``hlfnet.data.slices_to_volume``).

Options (each measured on real data in ``docs/evaluation.md``): probability maps, flip test-time
augmentation (the mean of the probabilities over identity, horizontal, vertical and both flips — the flips
of the training augmentation) and keeping only the largest connected component of each class.
"""

from __future__ import annotations

import json
import logging
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hlfnet.atomic import atomic_write_bytes, check_target, record_outputs
from hlfnet.errors import OutputRefused

__all__ = [
    "Prediction",
    "Predictor",
    "VolumePrediction",
    "largest_component",
    "collect_inputs",
    "write_mask_png",
    "write_probability_png",
    "MANIFEST_NAME",
]

logger = logging.getLogger(__name__)

MANIFEST_NAME = "predictions.json"
PROBABILITY_DIR = "probabilities"
# flips of the training augmentation (hflip, vflip) and their combination; dims of (B, K, H, W)
TTA_FLIPS: tuple[tuple[int, ...], ...] = ((), (3,), (2,), (2, 3))


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


@dataclass
class PreparedImage:
    id: str
    tensor: torch.Tensor
    original: tuple[int, int]
    source: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def largest_component(mask: np.ndarray, num_classes: int = 2) -> np.ndarray:
    """Keep, for every foreground class, only its largest connected component (full connectivity).

    Args:
        mask: ``uint8`` labels, 2-D ``(H, W)`` or 3-D ``(H, W, D)``.
        num_classes: classes including background 0.

    Returns:
        A new label array; removed voxels become background. Classes absent from ``mask`` stay absent.
    """
    from scipy import ndimage

    out = mask.copy()
    structure = np.ones((3,) * mask.ndim, dtype=bool)
    for k in range(1, num_classes):
        labelled, count = ndimage.label(mask == k, structure=structure)
        if count <= 1:
            continue
        sizes = np.bincount(labelled.ravel())
        sizes[0] = 0
        out[(labelled != int(sizes.argmax())) & (mask == k)] = 0
    return out


def write_mask_png(
    mask: np.ndarray,
    path: str | os.PathLike[str],
    num_classes: int = 2,
    root: str | os.PathLike[str] | None = None,
) -> Path:
    """Write labels as an 8-bit grey PNG: binary as 0/255, multi-class as the class indices.

    The file is written atomically and never through a symlink (:mod:`hlfnet.atomic`); with ``root`` it must
    lie inside that folder.

    Raises:
        ValueError: ``path`` does not end in ``.png`` (masks are never written lossy).
        OutputRefused: ``path`` is a symlink or lies outside ``root``.
    """
    from PIL import Image

    from hlfnet.atomic import atomic_path

    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"{path}: masks are written as PNG only (lossless), not {path.suffix!r}")
    data = (mask > 0).astype(np.uint8) * 255 if num_classes == 2 else mask.astype(np.uint8)
    with atomic_path(path, root) as tmp:
        Image.fromarray(data, mode="L").save(tmp, format="PNG", optimize=False, compress_level=1)
    return path


def write_probability_png(
    probability: np.ndarray, path: str | os.PathLike[str], root: str | os.PathLike[str] | None = None
) -> Path:
    """Write a probability map ``(H, W)`` in [0, 1] as an 8-bit PNG (``round(255 p)``), atomically."""
    from PIL import Image

    from hlfnet.atomic import atomic_path

    path = Path(path)
    with atomic_path(path, root) as tmp:
        Image.fromarray(np.rint(np.clip(probability, 0, 1) * 255).astype(np.uint8), mode="L").save(
            tmp, format="PNG", compress_level=1
        )
    return path


def _refuse_input_folder(inputs: Path, output: Path) -> None:
    """Predictions never go into the input folder (they could replace the images), even with ``overwrite``."""
    folder = inputs if inputs.is_dir() else inputs.parent
    if output.exists() and output.resolve() == folder.resolve():
        raise OutputRefused(
            f"{output}: is the input folder; predictions are never written among the inputs (even with "
            "--overwrite): choose another --output"
        )


def collect_inputs(folder: str | os.PathLike[str], pattern: str | None = None) -> tuple[list[Path], str]:
    """The images or volumes of a folder, sorted by name.

    Args:
        folder: the input folder (not searched recursively; hidden files are ignored).
        pattern: a glob such as ``"ISIC_*.jpg"`` choosing the files; others are ignored. Without it every
            file must be an image (PNG, JPEG, BMP, TIFF, ``.npy``) or every file a NIfTI volume.

    Returns:
        ``(files, kind)`` with ``kind`` ``"image"`` or ``"volume"``.

    Raises:
        FileNotFoundError: the folder does not exist.
        ValueError: no images in it, a file that is not an image among them (named), or images mixed with
            volumes.
    """
    from hlfnet.data.io import IMAGE_SUFFIXES, is_nifti

    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder")
    if pattern is not None and (not pattern or "/" in pattern or "\\" in pattern or pattern.startswith("..")):
        raise ValueError(
            f"--pattern {pattern!r}: a file-name pattern inside the input folder such as '*.png', not a path"
        )
    files = sorted(
        p
        for p in (folder.glob(pattern) if pattern else folder.iterdir())
        if p.is_file() and not p.name.startswith(".")
    )
    volumes = [p for p in files if is_nifti(p)]
    images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
    others = [p for p in files if p not in volumes and p not in images]
    if others:
        raise ValueError(
            f"{folder}: {len(others)} file(s) that are not images or NIfTI volumes, e.g. {others[0].name!r}; "
            f"remove them or choose the images with --pattern (e.g. '*.jpg')"
        )
    if volumes and images:
        raise ValueError(
            f"{folder}: holds both images (e.g. {images[0].name}) and volumes (e.g. {volumes[0].name})"
        )
    if not files:
        what = f"matching {pattern!r}" if pattern else f"({', '.join(IMAGE_SUFFIXES)}, .nii, .nii.gz)"
        raise ValueError(f"{folder}: no images {what}")
    return files, "volume" if volumes else "image"


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` -> ``cuda`` when PyTorch sees a GPU, else ``cpu``; other names are checked.

    Raises:
        ValueError: an unknown device name, or a CUDA device PyTorch does not see.
    """
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(
            f"--device {device!r}: not a torch device ({error}); use auto, cpu or cuda[:N]"
        ) from None
    if resolved.type == "cuda" and (
        not torch.cuda.is_available() or (resolved.index or 0) >= torch.cuda.device_count()
    ):
        raise ValueError(
            f"--device {device!r}: PyTorch sees {torch.cuda.device_count()} CUDA device(s); use --device auto or cpu"
        )
    if resolved.type not in ("cpu", "cuda"):
        raise ValueError(f"--device {device!r}: only cpu and cuda devices are supported")
    return resolved


class Predictor:
    """Predict masks for images, folders and NIfTI volumes with a trained 2-D network.

    Args:
        model: a network (``nn.Module`` returning logits), an :class:`~hlfnet.evaluation.export.OnnxModel`,
            or a TorchScript module.
        data: the run's preprocessing (``DataConfig`` or its dictionary).
        in_channels: channels the model takes; read from the model when ``None``.
        out_channels: logits channels ``K`` (1 = binary); read from the model when ``None``.
        batch_size: images per forward pass.
        tta: average the probabilities over flips (4 forward passes per image).
        largest_component: keep only the largest connected component of each class.
        threshold: binary threshold on the foreground probability.
        device: torch device for ``nn.Module`` models; ``"auto"`` (default) = ``cuda`` when PyTorch sees a
            GPU, else ``cpu``.
        channels_last: run an ``nn.Module`` in channels-last memory format (faster on CPU, same results up to
            float rounding; ``docs/benchmarks.md``).
        bf16: run an ``nn.Module`` under bfloat16 autocast (about 2× faster on CPUs with avx512_bf16 and on
            GPUs; probabilities differ from float32 by ~1e-2, so a few boundary pixels may flip).
        workers: threads that read and preprocess the next images while the network runs.
        progress: show a progress bar on stderr.

    Raises:
        ValueError: a 3-D network, an unknown channel count, or a bad option.
    """

    def __init__(
        self,
        model: nn.Module | Callable[[torch.Tensor], torch.Tensor],
        data: Any,
        *,
        in_channels: int | None = None,
        out_channels: int | None = None,
        batch_size: int = 8,
        tta: bool = False,
        largest_component: bool = False,
        threshold: float = 0.5,
        device: str | torch.device = "auto",
        channels_last: bool = False,
        bf16: bool = False,
        workers: int = 2,
        progress: bool = False,
    ) -> None:
        from hlfnet.data.config import DataConfig

        if getattr(model, "spatial_dims", 2) != 2:
            raise ValueError(
                f"Predictor runs 2-D networks (slice by slice); got spatial_dims={model.spatial_dims}"
            )
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must lie in (0, 1), got {threshold}")
        in_channels = in_channels or getattr(model, "in_channels", None)
        out_channels = out_channels or getattr(model, "out_channels", None)
        if in_channels is None or out_channels is None:
            raise ValueError("in_channels and out_channels are needed for a model that does not carry them")
        cfg = data if isinstance(data, DataConfig) else DataConfig.from_dict(data)
        # the model's channel count decides the conversion (grey -> RGB + grey for a 4-channel model), which is
        # the rule training applied to build that model's inputs
        self.cfg = replace(cfg, in_channels=int(in_channels))
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self.num_classes = 2 if self.out_channels == 1 else self.out_channels
        self.device = resolve_device(device)
        if (channels_last or bf16) and not isinstance(model, nn.Module):
            raise ValueError("channels_last and bf16 apply to PyTorch models, not to an exported model")
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.bf16 = bf16
        if isinstance(model, nn.Module):
            model = model.to(self.device, memory_format=self.memory_format).eval()
        self.model = model
        self.batch_size = batch_size
        self.tta = tta
        self.largest_component = largest_component
        self.threshold = threshold
        self.workers = max(0, workers)
        self.progress = progress
        self.source: dict[str, Any] = {}

    @classmethod
    def from_path(
        cls, path: str | os.PathLike[str], backend: str = "torch", checkpoint: str = "best", **kwargs: Any
    ) -> Predictor:
        """Build a predictor from a run folder, weights, or an exported ``.onnx`` / ``.torchscript.pt`` file.

        Args:
            path: ``runs/<name>``, ``model.safetensors``, ``*.ckpt``, ``*.onnx`` or ``*.torchscript.pt``.
            backend: ``"torch"``, or ``"onnx"`` to run the run's ``export/model.onnx`` through ONNX Runtime.
            checkpoint: ``"best"`` or ``"last"`` weights of a run folder (see :func:`~hlfnet.evaluation.load_run`).
            **kwargs: options of :class:`Predictor`.

        Raises:
            FileNotFoundError: missing weights / export (says which command writes them).
            ValueError: unknown backend, no recorded preprocessing, weights that do not match their network.
        """
        from hlfnet.evaluation.export import load_exported
        from hlfnet.evaluation.run import load_run

        if backend not in ("torch", "onnx"):
            raise ValueError(f"backend must be 'torch' or 'onnx', got {backend!r}")
        path = Path(path)
        if path.suffix not in (".onnx", ".pt"):
            return cls.from_run(load_run(path, checkpoint=checkpoint), backend=backend, **kwargs)
        model, info = load_exported(path)
        if not info.get("data"):
            raise ValueError(f"{path}: no preprocessing recorded ('data' in {path.name}.json)")
        predictor = cls(
            model,
            info["data"],
            in_channels=info["input_shape"][0],
            out_channels=info.get("out_channels", 1),
            **kwargs,
        )
        predictor.source = {"model": info.get("name"), "weights": str(path), "backend": info.get("format")}
        return predictor

    @classmethod
    def from_run(cls, run: Any, backend: str = "torch", **kwargs: Any) -> Predictor:
        """Build a predictor from a :class:`~hlfnet.evaluation.run.LoadedRun` (see :meth:`from_path`)."""
        from hlfnet.evaluation.export import load_exported

        if backend not in ("torch", "onnx"):
            raise ValueError(f"backend must be 'torch' or 'onnx', got {backend!r}")
        if not run.data:
            raise ValueError(
                f"{run.weights}: no preprocessing recorded (no 'data' in its JSON description or config.yaml); "
                "cannot rebuild the training preprocessing"
            )
        model = run.model
        source = {"model": run.model_name, "weights": str(run.weights), "backend": backend}
        if backend == "onnx":
            onnx_path = (run.root or run.weights.parent) / "export" / "model.onnx"
            if not onnx_path.is_file():
                raise FileNotFoundError(
                    f"{onnx_path}: not found; write it with `hlfnet export {run.root or run.weights} --format onnx`"
                )
            model, _ = load_exported(onnx_path)
            source["weights"] = str(onnx_path)
        predictor = cls(
            model, run.data, in_channels=run.model.in_channels, out_channels=run.model.out_channels, **kwargs
        )
        predictor.source = source
        return predictor

    # ------------------------------------------------------------------ tensors

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The network's logits for a preprocessed batch ``(B, C, H, W)``, in the predictor's device, memory
        format and precision (returned as float32 on the CPU)."""
        if isinstance(self.model, nn.Module):
            x = x.to(self.device).contiguous(memory_format=self.memory_format)
            with torch.inference_mode(), torch.autocast(self.device.type, torch.bfloat16, enabled=self.bf16):
                return self.model(x).float().cpu()
        return self.model(x)

    def _activate(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(logits) if self.out_channels == 1 else torch.softmax(logits, dim=1)

    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` preprocessed images → ``(B, K, H, W)`` probabilities (sigmoid / softmax), TTA-averaged."""
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"expected preprocessed images (B, {self.in_channels}, H, W), got {tuple(x.shape)}"
            )
        if not self.tta:
            return self._activate(self.logits(x))
        total = torch.zeros(0)
        for dims in TTA_FLIPS:
            p = self._activate(self.logits(x.flip(dims) if dims else x))
            p = p.flip(dims) if dims else p
            total = p if total.numel() == 0 else total + p
        return total / len(TTA_FLIPS)

    def labels(self, probabilities: torch.Tensor) -> torch.Tensor:
        """``(B, K, H, W)`` probabilities → ``(B, H, W)`` ``uint8`` labels (threshold or argmax)."""
        if probabilities.shape[1] == 1:
            return (probabilities[:, 0] > self.threshold).to(torch.uint8)
        return probabilities.argmax(dim=1).to(torch.uint8)

    def _postprocess(self, labels: np.ndarray) -> np.ndarray:
        return largest_component(labels, self.num_classes) if self.largest_component else labels

    # ------------------------------------------------------------------ 2-D images

    def load_image(self, image: str | os.PathLike[str] | np.ndarray, case_id: str | None) -> PreparedImage:
        """Read and preprocess one image as training did: its tensor ``(C, H, W)``, original size and id."""
        from hlfnet.data.preprocess import preprocess_image

        if isinstance(image, np.ndarray):
            tensor, original = preprocess_image(image, self.cfg)
            return PreparedImage(case_id or "array", tensor, original)
        path = Path(image)
        tensor, original = preprocess_image(path, self.cfg)
        return PreparedImage(case_id or path.stem, tensor, original, source=path)

    def _prefetch(
        self, loader: Callable[[Any], PreparedImage], inputs: Iterable[Any]
    ) -> Iterator[PreparedImage]:
        """Load inputs in background threads, at most a few batches ahead, keeping their order."""
        if self.workers == 0:
            yield from map(loader, inputs)
            return
        ahead = 2 * self.batch_size
        with ThreadPoolExecutor(self.workers, thread_name_prefix="hlfnet-read") as pool:
            pending: deque[Future[PreparedImage]] = deque()
            for value in inputs:
                pending.append(pool.submit(loader, value))
                if len(pending) >= ahead:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()

    def _batches(self, items: Iterator[PreparedImage]) -> Iterator[list[PreparedImage]]:
        batch: list[PreparedImage] = []
        for item in items:
            batch.append(item)
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch:
            yield batch

    def predict_images(
        self,
        images: Sequence[str | os.PathLike[str] | np.ndarray],
        ids: Sequence[str] | None = None,
        keep_probabilities: bool = False,
    ) -> Iterator[Prediction]:
        """Predict 2-D images in batches, yielding one :class:`Prediction` per image in input order.

        Args:
            images: image files or arrays ``(H, W[, C])``.
            ids: case ids (default: the file stems).
            keep_probabilities: also return the probabilities at the original size.

        Raises:
            FileNotFoundError, ValueError: an unreadable image or one whose channels the model cannot take
                (names the file).
        """
        if ids is not None and len(ids) != len(images):
            raise ValueError(f"got {len(ids)} ids for {len(images)} images")
        pairs = list(zip(images, ids if ids is not None else [None] * len(images), strict=True))
        items = self._prefetch(lambda pair: self.load_image(*pair), pairs)
        for batch in self._batches(items):
            probs = self.probabilities(torch.stack([item.tensor for item in batch]))
            network_labels = self.labels(probs).numpy()
            for item, p, net in zip(batch, probs, network_labels, strict=True):
                full = F.interpolate(p[None], size=item.original, mode="bilinear", align_corners=False)
                mask = self._postprocess(self.labels(full)[0].numpy())
                yield Prediction(
                    id=item.id,
                    mask=mask,
                    network_mask=self._postprocess(net),
                    probabilities=full[0].numpy() if keep_probabilities else None,
                    source=item.source,
                )

    def predict_image(
        self, image: str | os.PathLike[str] | np.ndarray, keep_probabilities: bool = False
    ) -> Prediction:
        """Predict one image (file or array); see :meth:`predict_images`."""
        return next(self.predict_images([image], keep_probabilities=keep_probabilities))

    # ------------------------------------------------------------------ volumes

    def predict_volume_array(self, path: str | os.PathLike[str]) -> VolumePrediction:
        """Predict every axial slice of a NIfTI volume.

        Returns:
            The :class:`VolumePrediction`, in the slice layout of ``hlfnet.data`` (rows, columns, slice).

        Raises:
            FileNotFoundError: missing file.
            ValueError: unreadable volume, or a 4-D volume whose channels the 2-D model cannot take (names the
                file and both counts).
        """
        from hlfnet.data.io import load_volume
        from hlfnet.data.preprocess import reorient_to_slices, volume_to_slices

        path = Path(path)
        volume, meta = load_volume(path)
        channels = volume.shape[3] if volume.ndim == 4 else 1
        if channels != self.in_channels:
            raise ValueError(
                f"{path}: {volume.ndim}-D volume of shape {volume.shape} ({channels} channel(s)), but the 2-D model "
                f"takes slices with {self.in_channels} channel(s); give a 3-D volume (X, Y, Z)"
                + (" or one with matching channels" if self.in_channels > 1 else "")
            )
        rows, cols = reorient_to_slices(volume[..., 0] if volume.ndim == 4 else volume, meta.affine).shape[:2]
        slices = volume_to_slices(volume, self.cfg, affine=meta.affine)
        labels, network_labels, probabilities = [], [], []
        for start in range(0, slices.shape[0], self.batch_size):
            p = self.probabilities(slices[start : start + self.batch_size])
            network_labels.append(self.labels(p).numpy())
            p = F.interpolate(p, size=(rows, cols), mode="bilinear", align_corners=False)
            labels.append(self.labels(p).numpy())
            probabilities.append(p.numpy())
        label_volume = np.concatenate(labels)
        network_volume = np.concatenate(network_labels)
        if self.largest_component:
            # the largest component in 3-D: (N, rows, cols) is a volume as well
            label_volume = largest_component(label_volume, self.num_classes)
            network_volume = largest_component(network_volume, self.num_classes)
        return VolumePrediction(path.name, label_volume, network_volume, np.concatenate(probabilities), path)

    def predict_volume(
        self,
        path: str | os.PathLike[str],
        out_path: str | os.PathLike[str],
        probabilities_path: str | None = None,
        root: str | os.PathLike[str] | None = None,
    ) -> Path:
        """Predict a NIfTI volume slice by slice and write the labels with the input's affine and header.

        Args:
            path: input ``.nii`` / ``.nii.gz``.
            out_path: output NIfTI (``uint8`` labels).
            probabilities_path: also write the foreground probability (``uint8``, ``round(255 p)``; multi-class:
                1 - p(background)) as a NIfTI with the same geometry.
            root: the output folder both files must stay inside (:mod:`hlfnet.atomic`).

        Returns:
            ``out_path``.
        """
        from hlfnet.data.preprocess import slices_to_volume

        prediction = self.predict_volume_array(path)
        if probabilities_path is not None:
            p = prediction.probabilities
            foreground = p[:, 0] if p.shape[1] == 1 else 1.0 - p[:, 0]
            slices_to_volume(np.rint(foreground * 255).astype(np.uint8), path, probabilities_path, root=root)
        return slices_to_volume(prediction.labels, path, out_path, root=root)

    # ------------------------------------------------------------------ files and folders

    def predict(
        self,
        inputs: str | os.PathLike[str],
        output: str | os.PathLike[str],
        *,
        overwrite: bool = False,
        save_probabilities: bool = False,
        pattern: str | None = None,
    ) -> list[Path]:
        """Predict an image, a NIfTI volume or a folder of either, writing into the folder ``output``.

        Masks go to ``output/<stem>.png`` (0/255 at the input's size) or ``output/<stem>.nii.gz``; probability
        maps to ``output/probabilities/``; ``output/predictions.json`` records the model and options.

        Args:
            inputs: an image, a ``.nii``/``.nii.gz`` volume, or a folder of them.
            output: the output folder (created).
            overwrite: replace predictions hlfnet wrote in ``output`` (listed in its ``.hlfnet-output.json``);
                other files are never replaced, and ``output`` may never be the input folder. Without it, a
                folder holding complete predictions is refused, while one left by a killed run with the same
                model, inputs and options is finished (masks already written are kept).
            save_probabilities: also write probability maps.
            pattern: glob choosing the files of an input folder.

        Returns:
            The written mask files.

        Raises:
            FileNotFoundError: ``inputs`` does not exist.
            FileExistsError: ``output`` already holds predictions and ``overwrite`` is false.
            OutputRefused: ``output`` is the input folder, or a target is a symlink or a file hlfnet did not
                write.
            ValueError: no images, a non-image file, an image or volume the model cannot take (names the file).
        """
        from hlfnet.data.io import IMAGE_SUFFIXES, is_nifti, nifti_stem

        inputs = Path(inputs)
        if inputs.is_dir():
            files, kind = collect_inputs(inputs, pattern)
        elif inputs.is_file():
            if is_nifti(inputs):
                files, kind = [inputs], "volume"
            elif inputs.suffix.lower() in IMAGE_SUFFIXES:
                files, kind = [inputs], "image"
            else:
                raise ValueError(f"{inputs}: not an image ({', '.join(IMAGE_SUFFIXES)}) or NIfTI volume")
        else:
            raise FileNotFoundError(f"{inputs}: no such file or folder")
        output = Path(output)
        stems = [nifti_stem(f) if kind == "volume" else f.stem for f in files]
        duplicates = sorted({s for s in stems if stems.count(s) > 1})
        if duplicates:
            raise ValueError(
                f"{inputs}: several inputs share the name {duplicates[0]!r}; their outputs would collide"
            )
        suffix = ".nii.gz" if kind == "volume" else ".png"
        targets = [output / f"{stem}{suffix}" for stem in stems]
        _refuse_input_folder(inputs, output)
        planned = [t.name for t in targets] + [MANIFEST_NAME]
        if save_probabilities:
            planned += [
                f"{PROBABILITY_DIR}/{name}" for stem in stems for name in self._probability_names(stem, kind)
            ]
        signature = self._signature(inputs, files, save_probabilities)
        done = self._prepare_output(output, planned, overwrite, signature)
        prob_dir = output / PROBABILITY_DIR
        written: list[Path] = [t for t in targets if t.name in done]
        todo = [(f, t, s) for f, t, s in zip(files, targets, stems, strict=True) if t.name not in done]
        if done:
            logger.info(
                "%s: %d prediction(s) already complete; predicting the other %d", output, len(done), len(todo)
            )
        bar = self.progress_bar(len(todo), "volume" if kind == "volume" else "img")
        try:
            if kind == "volume":
                for file, target, stem in todo:
                    prob = str(prob_dir / f"{stem}.nii.gz") if save_probabilities else None
                    written.append(self.predict_volume(file, target, prob, root=output))
                    bar.update(1)
            else:
                todo_files = [f for f, _, _ in todo]
                for pred, (_, target, _) in zip(
                    self.predict_images(todo_files, keep_probabilities=save_probabilities), todo, strict=True
                ):
                    # probabilities first: a mask under its final name means the case is complete
                    if save_probabilities and pred.probabilities is not None:
                        self._write_probabilities(pred.probabilities, prob_dir, target.stem, output)
                    written.append(write_mask_png(pred.mask, target, self.num_classes, root=output))
                    bar.update(1)
        finally:
            bar.close()
        written.sort(key=targets.index)
        self._write_manifest(output, inputs, written, save_probabilities)
        record_outputs(output, planned, "predictions", status="complete", signature=signature)
        logger.info("wrote %d prediction(s) to %s", len(written), output)
        return written

    def _write_probabilities(self, probabilities: np.ndarray, folder: Path, stem: str, root: Path) -> None:
        if probabilities.shape[0] == 1:
            write_probability_png(probabilities[0], folder / f"{stem}.png", root)
        else:
            for k in range(1, probabilities.shape[0]):
                write_probability_png(probabilities[k], folder / f"{stem}_class{k}.png", root)

    def _probability_names(self, stem: str, kind: str) -> list[str]:
        if kind == "volume":
            return [f"{stem}.nii.gz"]
        if self.out_channels == 1:
            return [f"{stem}.png"]
        return [f"{stem}_class{k}.png" for k in range(1, self.out_channels)]

    def _signature(self, inputs: Path, files: list[Path], probabilities: bool) -> str:
        """What decides the predictions: a rerun with the same signature may finish a killed one."""
        import hashlib

        facts = {
            **{k: str(v) for k, v in self.source.items()},
            "input": str(inputs.absolute()),
            "files": [f.name for f in files],
            "tta": self.tta,
            "largest_component": self.largest_component,
            "threshold": self.threshold,
            "probabilities": probabilities,
            "data": self.cfg.to_dict(),
        }
        return hashlib.sha256(json.dumps(facts, sort_keys=True, default=str).encode()).hexdigest()[:16]

    @staticmethod
    def _prepare_output(output: Path, planned: list[str], overwrite: bool, signature: str) -> set[str]:
        """Apply the output policy (:mod:`hlfnet.atomic`) to ``output``; returns the masks that a killed run
        with the same signature completed (kept, and skipped by this run)."""
        from hlfnet.atomic import claim_outputs, clean_temporaries, read_marker

        if os.path.lexists(output) and not output.is_dir():
            raise FileExistsError(f"{output}: exists and is not a folder")
        if output.is_dir():
            clean_temporaries(output)
            clean_temporaries(output / PROBABILITY_DIR)
        marker = read_marker(output) if output.is_dir() else None
        resumable = (
            marker is not None and marker.get("status") == "running" and marker.get("signature") == signature
        )
        if resumable and not overwrite:
            owned = set(marker["files"])
            for name in planned:
                check_target(output / name, output)
            return {
                name
                for name in planned
                if name in owned and name != MANIFEST_NAME and "/" not in name and (output / name).is_file()
            }
        legacy: list[str] = []
        if (
            marker is None
            and (output / MANIFEST_NAME).is_file()
            and not (output / MANIFEST_NAME).is_symlink()
        ):
            # predictions written before the marker existed: their predictions.json lists them
            try:
                legacy = [MANIFEST_NAME, *json.loads((output / MANIFEST_NAME).read_text()).get("files", [])]
            except (OSError, ValueError, AttributeError):
                legacy = []
        if output.is_dir():
            claim_outputs(output, planned, overwrite=overwrite, legacy=legacy, what="predictions")
        record_outputs(output, planned, "predictions", status="running", signature=signature)
        return set()

    def progress_bar(self, total: int, unit: str) -> Any:
        """The one progress bar of prediction and evaluation (tqdm on stderr; silent unless ``progress``)."""
        from tqdm import tqdm

        return tqdm(total=total, unit=unit, disable=not self.progress, dynamic_ncols=True, leave=False)

    def _write_manifest(self, output: Path, inputs: Path, written: list[Path], probabilities: bool) -> None:
        manifest = {
            **self.source,
            "input": str(inputs),
            "files": [p.name for p in written],
            "tta": self.tta,
            "largest_component": self.largest_component,
            "threshold": self.threshold,
            "probabilities": probabilities,
            "data": self.cfg.to_dict(),
        }
        atomic_write_bytes(output / MANIFEST_NAME, json.dumps(manifest, indent=2).encode(), root=output)

    # ------------------------------------------------------------------ attention (Fig. 4)

    def attention(
        self, image: str | os.PathLike[str] | np.ndarray | torch.Tensor
    ) -> tuple[torch.Tensor, Any, torch.Tensor]:
        """Preprocessed image, attention maps and probabilities of one image, at the network size.

        Args:
            image: an image file or array (preprocessed here), or an already preprocessed ``(C, H, W)`` tensor
                (e.g. a slice from ``volume_to_slices``).

        Returns:
            ``(image (C, H, W), AttentionMaps with batch size 1, probabilities (K, H, W))``.

        Raises:
            ValueError: the model is not a PyTorch network with ``forward_with_attention`` (e.g. ONNX).
        """
        if not hasattr(self.model, "forward_with_attention"):
            raise ValueError("attention maps need the PyTorch network (not an exported model)")
        tensor = image if isinstance(image, torch.Tensor) else self.load_image(image, None).tensor
        with torch.inference_mode():
            out = self.model.forward_with_attention(tensor[None].to(self.device))
        return tensor, out.attention, self._activate(out.logits.float().cpu())[0]
