"""The :class:`Predictor`: one network with its training preprocessing and prediction options.

It holds the state the parts share and ties them together: :mod:`.loading` builds the network,
:mod:`.preprocessing` prepares each input, :mod:`.inference` turns batches into probabilities and labels,
:mod:`.images` and :mod:`.volumes` give predictions at each input's own size (:class:`Prediction`,
:class:`VolumePrediction`), and :mod:`.predict_folder` writes a folder of them (:meth:`Predictor.predict`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import hlfnet.evaluation.predictor.inference as inference
from hlfnet.evaluation.predictor.images import Prediction, image_predictions
from hlfnet.evaluation.predictor.loading import LoadedNetwork, load_network, network_of_run, resolve_device
from hlfnet.evaluation.predictor.preprocessing import PreparedImage, prepare_image
from hlfnet.evaluation.predictor.volumes import VolumePrediction, volume_prediction
from hlfnet.evaluation.predictor.writers import write_volume_prediction
from hlfnet.progress import progress_bar

__all__ = ["Predictor"]


class Predictor:
    """Predict masks for images, folders and NIfTI volumes with a trained network, or an ensemble of them.

    Args:
        model: a network (``nn.Module`` returning logits), an :class:`~hlfnet.evaluation.export.OnnxModel`,
            or a TorchScript module; or a list of them (an ensemble of cross-validation folds, which must share
            the preprocessing ``data`` and the channel counts): their probabilities are averaged.
        data: the run's preprocessing (``DataConfig`` or its dictionary).
        in_channels: channels the model takes; read from the model when ``None``.
        out_channels: logits channels ``K`` (1 = binary); read from the model when ``None``.
        batch_size: images per forward pass.
        tta: average the probabilities over flips (4 forward passes per image and network).
        largest_component: keep only the largest connected component of each foreground class (``True``), of
            the listed classes (a tuple, e.g. what a cross-validation chose), or of none (``False``).
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
        model: nn.Module | Callable[[torch.Tensor], torch.Tensor] | Sequence[Any],
        data: Any,
        *,
        in_channels: int | None = None,
        out_channels: int | None = None,
        batch_size: int = 8,
        tta: bool = False,
        largest_component: bool | tuple[int, ...] = False,
        threshold: float = 0.5,
        device: str | torch.device = "auto",
        channels_last: bool = False,
        bf16: bool = False,
        workers: int = 2,
        progress: bool = False,
        class_indices: bool = False,
    ) -> None:
        from hlfnet.data.config import DataConfig

        cfg = data if isinstance(data, DataConfig) else DataConfig.from_dict(data)
        models = list(model) if isinstance(model, (list, tuple)) else [model]
        if not models:
            raise ValueError("an ensemble needs at least one network")
        expected = cfg.spatial_dims if cfg.is_patch_plan else 2
        for member in models:
            if getattr(member, "spatial_dims", expected) != expected:
                raise ValueError(
                    f"the {cfg.preprocessing} plan of this model predicts with {expected}-D networks; got "
                    f"spatial_dims={member.spatial_dims}"
                )
        model = models[0]
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must lie in (0, 1), got {threshold}")
        in_channels = in_channels or getattr(model, "in_channels", None)
        out_channels = out_channels or getattr(model, "out_channels", None)
        if in_channels is None or out_channels is None:
            raise ValueError("in_channels and out_channels are needed for a model that does not carry them")
        # the model's channel count decides the conversion (grey -> RGB + grey for a 4-channel model), which is
        # the rule training applied to build that model's inputs
        self.cfg = replace(cfg, in_channels=int(in_channels))
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self.num_classes = 2 if self.out_channels == 1 else self.out_channels
        self.device = resolve_device(device)
        if (channels_last or bf16) and not all(isinstance(m, nn.Module) for m in models):
            raise ValueError("channels_last and bf16 apply to PyTorch models, not to an exported model")
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.bf16 = bf16
        #: the networks whose probabilities are averaged (one, or the folds of an ensemble)
        self.models = tuple(
            m.to(self.device, memory_format=self.memory_format).eval() if isinstance(m, nn.Module) else m
            for m in models
        )
        #: the first network (the only one unless this is an ensemble)
        self.model = self.models[0]
        self.batch_size = batch_size
        self.tta = tta
        if not isinstance(largest_component, bool):
            largest_component = tuple(int(k) for k in largest_component)
            bad = [k for k in largest_component if not 1 <= k < self.num_classes]
            if bad:
                raise ValueError(
                    f"largest_component: classes {bad} are not foreground classes of a {self.num_classes}-class model"
                )
        self.largest_component = largest_component
        self.threshold = threshold
        self.workers = max(0, workers)
        self.progress = progress
        self.class_indices = class_indices
        self.source: dict[str, Any] = {}

    @property
    def output_values(self) -> tuple[int, ...] | None:
        """The values written for each class: the data's ``label_values`` (the user's encoding) unless
        ``class_indices``; ``None`` = the default encoding (binary 0/255, multi-class 0..K-1)."""
        return None if self.class_indices else self.cfg.label_values

    @property
    def is_ensemble(self) -> bool:
        """True when the probabilities are the mean of several networks'."""
        return len(self.models) > 1

    @classmethod
    def from_path(
        cls,
        path: str | os.PathLike[str],
        backend: str = "torch",
        checkpoint: str = "best",
        postprocessing: str | os.PathLike[str] | None = "auto",
        **kwargs: Any,
    ) -> Predictor:
        """Build a predictor from a run folder, weights, an exported ``.onnx`` / ``.torchscript.pt`` file, or an
        ensemble of them.

        ``path``, ``backend`` and ``checkpoint`` are those of
        :func:`~hlfnet.evaluation.predictor.loading.load_network` (which lists the errors); an ensemble is
        ``"A,B,..."`` or a folder of ``fold_<N>`` run folders (:func:`~.ensemble.ensemble_members`).
        ``kwargs`` are the options of :class:`Predictor`.

        Args:
            postprocessing: ``"auto"``: a folder of folds applies the largest-component decision of its
                cross-validation (``FOLDER/crossval/postprocessing.json``) when there is one; a path: that
                decision file; ``None`` / ``"none"``: none. ``largest_component=True`` always wins.

        Raises:
            ValueError: members that disagree on classes, channels or preprocessing (:func:`~.ensemble.check_compatible`).
        """
        from hlfnet.evaluation.predictor.ensemble import (
            check_compatible,
            default_postprocessing,
            ensemble_members,
            read_postprocessing,
        )

        members = ensemble_members(path)
        if members is None:
            networks = [load_network(path, backend, checkpoint)]
        else:
            networks = [load_network(member, backend, checkpoint) for member in members]
            check_compatible(networks, members)
        decision = None
        if postprocessing not in (None, "none", "auto"):
            decision = Path(postprocessing)
        elif postprocessing == "auto" and members is not None:
            decision = default_postprocessing(path)
        if decision is not None and kwargs.get("largest_component") is not True:
            out_channels = networks[0].out_channels
            kwargs["largest_component"] = read_postprocessing(
                decision, 2 if out_channels == 1 else out_channels
            )
        predictor = cls.from_networks(networks, **kwargs)
        if decision is not None:
            predictor.source["postprocessing"] = str(decision)
        return predictor

    @classmethod
    def from_run(cls, run: Any, backend: str = "torch", **kwargs: Any) -> Predictor:
        """Build a predictor from a :class:`~hlfnet.experiment.run_folder.LoadedRun` (see :meth:`from_path`)."""
        return cls.from_network(network_of_run(run, backend), **kwargs)

    @classmethod
    def from_network(cls, network: LoadedNetwork, **kwargs: Any) -> Predictor:
        """Build a predictor from a :class:`~hlfnet.evaluation.predictor.loading.LoadedNetwork`."""
        return cls.from_networks([network], **kwargs)

    @classmethod
    def from_networks(cls, networks: Sequence[LoadedNetwork], **kwargs: Any) -> Predictor:
        """Build a predictor averaging the probabilities of ``networks`` (one network: a plain predictor).

        The members must agree (:func:`~hlfnet.evaluation.predictor.ensemble.check_compatible`, which
        :meth:`from_path` calls); the first member's preprocessing is used.
        """
        first = networks[0]
        predictor = cls(
            [n.model for n in networks],
            first.data,
            in_channels=first.in_channels,
            out_channels=first.out_channels,
            **kwargs,
        )
        predictor.source = dict(first.source)
        if len(networks) > 1:
            predictor.source["weights"] = [str(n.source.get("weights")) for n in networks]
            predictor.source["ensemble"] = len(networks)
        return predictor

    # ------------------------------------------------------------------ tensors

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The network's logits for a preprocessed batch ``(B, C, H, W)``, in the predictor's device, memory
        format and precision (returned as float32 on the CPU).

        Raises:
            ValueError: an ensemble (it averages probabilities, not logits: use :meth:`forward_probabilities`).
        """
        if self.is_ensemble:
            raise ValueError("an ensemble averages its networks' probabilities and has no logits of its own")
        return inference.network_logits(self.model, x, self.device, self.memory_format, self.bf16)

    def forward_probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """One forward pass (no TTA): ``(B, C, *S)`` → ``(B, K, *S)`` probabilities (sigmoid / softmax), the mean
        over the networks of an ensemble. Flip TTA and sliding windows are linear in it, so averaging here
        equals averaging each network's TTA / window probabilities."""
        total = None
        for model in self.models:
            logits = inference.network_logits(model, x, self.device, self.memory_format, self.bf16)
            p = inference.activate(logits, self.out_channels)
            total = p if total is None else total + p
        assert total is not None
        return total / len(self.models) if self.is_ensemble else total

    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` preprocessed images → ``(B, K, H, W)`` probabilities (sigmoid / softmax), TTA-averaged."""
        if self.cfg.is_patch_plan:
            raise ValueError(
                "a native-resolution plan predicts whole images by sliding windows: use predict_images"
            )
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"expected preprocessed images (B, {self.in_channels}, H, W), got {tuple(x.shape)}"
            )

        once = self.forward_probabilities
        return inference.flip_averaged(once, x) if self.tta else once(x)

    def labels(self, probabilities: torch.Tensor) -> torch.Tensor:
        """``(B, K, H, W)`` probabilities → ``(B, H, W)`` ``uint8`` labels (threshold or argmax)."""
        return inference.to_labels(probabilities, self.threshold)

    def postprocess(self, labels: np.ndarray) -> np.ndarray:
        """Labels after the chosen post-processing (the largest component of the chosen classes)."""
        if self.largest_component is False or self.largest_component == ():
            return labels
        classes = None if self.largest_component is True else self.largest_component
        return inference.largest_component(labels, self.num_classes, classes)

    # ------------------------------------------------------------------ 2-D images

    def load_image(self, image: str | os.PathLike[str] | np.ndarray, case_id: str | None) -> PreparedImage:
        """Read and preprocess one image as training did: its tensor ``(C, H, W)``, original size and id."""
        return prepare_image(image, self.cfg, case_id)

    def predict_images(
        self,
        images: Sequence[str | os.PathLike[str] | np.ndarray],
        ids: Sequence[str] | None = None,
        keep_probabilities: bool = False,
    ) -> Iterator[Prediction]:
        """Predict 2-D images in batches, yielding one :class:`Prediction` per image in input order.

        ``images`` are files or arrays ``(H, W[, C])``, ``ids`` the case ids (default: the file stems);
        ``keep_probabilities`` also returns the probabilities at the original size. Images are read in
        ``workers`` background threads; see :func:`~hlfnet.evaluation.predictor.images.image_predictions`.
        """
        return image_predictions(self, images, ids, keep_probabilities)

    def predict_image(
        self, image: str | os.PathLike[str] | np.ndarray, keep_probabilities: bool = False
    ) -> Prediction:
        """Predict one image (file or array); see :meth:`predict_images`."""
        return next(self.predict_images([image], keep_probabilities=keep_probabilities))

    # ------------------------------------------------------------------ volumes

    def predict_volume_array(
        self, path: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]
    ) -> VolumePrediction:
        """Predict every axial slice of a NIfTI volume (or of a case's channel files in order, one 3-D volume
        each): a :class:`VolumePrediction` in the slice layout of
        ``hlfnet.data`` (rows, columns, slice); see :func:`~hlfnet.evaluation.predictor.volumes.volume_prediction`.
        """
        return volume_prediction(self, path)

    def predict_volume(
        self,
        path: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
        out_path: str | os.PathLike[str],
        probabilities_path: str | None = None,
        root: str | os.PathLike[str] | None = None,
    ) -> Path:
        """Predict a NIfTI volume slice by slice and write the labels with the input's affine and header.

        ``path`` is the input ``.nii`` / ``.nii.gz`` (or a case's channel files: the output takes channel 0's
        affine and header); the other arguments are those of
        :func:`~hlfnet.evaluation.predictor.writers.write_volume_prediction`. Returns ``out_path``.
        """
        prediction = self.predict_volume_array(path)
        return write_volume_prediction(
            prediction.labels,
            prediction.probabilities,
            prediction.source,
            out_path,
            probabilities_path,
            root,
            self.output_values,
        )

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
        """Predict an image, a NIfTI volume or a folder of either into the folder ``output``.

        Masks go to ``output/<stem>.png`` (0/255 at the input's size) or ``output/<stem>.nii.gz``, probability
        maps to ``output/probabilities/``, the manifest to ``output/predictions.json``. The arguments, the
        overwrite / resume policy and the errors are those of
        :func:`~hlfnet.evaluation.predictor.predict_folder.predict_to_folder`.

        Returns:
            The written mask files.
        """
        from hlfnet.evaluation.predictor.predict_folder import predict_to_folder

        return predict_to_folder(
            self, inputs, output, overwrite=overwrite, save_probabilities=save_probabilities, pattern=pattern
        )

    def progress_bar(self, total: int, unit: str) -> Any:
        """The progress bar of prediction and evaluation (:func:`hlfnet.progress.progress_bar`; silent unless
        ``progress``)."""
        return progress_bar(total, unit, enabled=self.progress)

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
        if self.is_ensemble:
            raise ValueError("attention maps are a single network's: give one fold, not an ensemble")
        if not hasattr(self.model, "forward_with_attention"):
            raise ValueError("attention maps need the PyTorch network (not an exported model)")
        tensor = image if isinstance(image, torch.Tensor) else self.load_image(image, None).tensor
        with torch.inference_mode():
            out = self.model.forward_with_attention(tensor[None].to(self.device))
        return tensor, out.attention, inference.activate(out.logits.float().cpu(), self.out_channels)[0]
