"""The model behind the server: one :class:`~hlfnet.evaluation.Predictor`, loaded once, used by the batcher's
single inference thread, and the encoding of its results (PNG / NIfTI bytes, areas, attention maps)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hlfnet.serve.config import ServeConfig
from hlfnet.serve.encoding import b64, png_bytes

__all__ = ["ImageJob", "ImageResult", "ModelService", "load_predictor", "default_model"]

logger = logging.getLogger(__name__)


def default_model() -> str:
    """The model ``hlfnet serve`` serves without ``--model``: the default pretrained network.

    Raises:
        FileNotFoundError: no pretrained network is installed (says what can be served instead).
    """
    from hlfnet.pretrained import DEFAULT_PRETRAINED, list_pretrained

    available = list_pretrained()
    if DEFAULT_PRETRAINED in available:
        return DEFAULT_PRETRAINED
    names = ", ".join(available) if available else "none installed"
    raise FileNotFoundError(
        f"the default pretrained model {DEFAULT_PRETRAINED!r} is not installed (pretrained: {names}); "
        "serve a run folder, .safetensors or .onnx with --model PATH"
    )


def load_predictor(config: ServeConfig) -> Any:
    """The :class:`~hlfnet.evaluation.Predictor` for ``config.model`` with the serving options.

    Raises:
        FileNotFoundError, ValueError: as :meth:`Predictor.from_path` (unknown name, missing weights...).
    """
    from hlfnet.evaluation import Predictor

    reference = config.model or default_model()
    return Predictor.from_path(
        reference,
        batch_size=config.max_batch,
        tta=config.tta,
        largest_component=config.largest_component,
        threshold=config.threshold,
        device=config.device,
        channels_last=config.channels_last,
        bf16=config.bf16,
        workers=0,
        progress=False,
    )


def _scoring_rule(predictor: Any) -> Any:
    """How the served model's masks are read and scored, and its classes (names, stored values, colours)."""
    from hlfnet.evaluation.palette import BINARY_TRUTH_COLOUR, class_colour
    from hlfnet.serve.scoring import ClassInfo, ScoringRule

    count = predictor.num_classes
    values = predictor.output_values
    if values is not None and len(values) != count:
        values = None
    names = predictor.cfg.names_of_classes(count)
    stored = values or ((0, 255) if count == 2 else tuple(range(count)))
    classes = tuple(
        ClassInfo(
            k,
            int(stored[k]),
            names[k],
            class_colour(k),
            BINARY_TRUTH_COLOUR if count == 2 and k else class_colour(k),
        )
        for k in range(count)
    )
    return ScoringRule(count, values, classes)


def display_image(array: np.ndarray) -> np.ndarray:
    """``read_image``'s ``(H, W, C)`` array as 8-bit grey or RGB for the page."""
    if array.dtype != np.uint8:
        array = np.rint(np.clip(array, 0, 1) * 255).astype(np.uint8)
    if array.shape[2] == 1:
        return array[..., 0]
    if array.shape[2] >= 3:
        return array[..., :3]
    return array[..., 0]


@dataclass
class ImageJob:
    """An image decoded by :func:`~hlfnet.serve.uploads.check_image`, and what the request asks for."""

    array: np.ndarray
    probabilities: bool = False
    attention: bool = False


@dataclass
class ImageResult:
    """The prediction of one image: labels at its size, probabilities on request, attention maps on request."""

    mask: np.ndarray
    probabilities: np.ndarray | None
    attention: list[dict[str, Any]] | None


class ModelService:
    """The loaded predictor and what the API reports about it.

    Args:
        predictor: a :class:`~hlfnet.evaluation.Predictor` (built once, reused by every request).
        reference: what was asked for (pretrained name or path), for ``/api/v1/models``.
    """

    def __init__(self, predictor: Any, reference: str) -> None:
        self.predictor = predictor
        self.reference = reference
        # Unet-28, Res-Unet-28 and unet16 have forward_with_attention too, but no LFE/HFE maps to return
        self.attention_available = bool(getattr(predictor.model, "has_attention_maps", False))
        self.scoring = _scoring_rule(predictor)

    # ---------------------------------------------------------------- description

    def describe(self) -> dict[str, Any]:
        """Name, source, channels, input size, capabilities, classes, options and the model's manifest
        (``model.json`` or the pretrained entry); file names only, never a server path."""
        from hlfnet.serve.redact import public_value

        p = self.predictor
        rule = self.scoring
        return public_value(
            {
                "name": p.source.get("model") or Path(str(self.reference)).name,
                "reference": str(self.reference),
                "source": {k: str(v) for k, v in p.source.items()},
                "in_channels": p.in_channels,
                "out_channels": p.out_channels,
                "num_classes": p.num_classes,
                "label_values": list(rule.label_values) if rule.label_values is not None else None,
                "classes": [vars(c) for c in rule.classes],
                "input_size": list(p.cfg.image_size),
                "attention": self.attention_available,
                "options": self._options(),
                "manifest": self._manifest(),
            }
        )

    def _options(self) -> dict[str, Any]:
        p = self.predictor
        return {
            "tta": p.tta,
            "largest_component": p.largest_component,
            "threshold": p.threshold,
            "max_batch": p.batch_size,
        }

    def _manifest(self) -> dict[str, Any] | None:
        try:
            from hlfnet.pretrained import is_pretrained_name, pretrained_info

            if is_pretrained_name(self.reference):
                return pretrained_info(str(self.reference))
        except (ImportError, KeyError, ValueError):
            pass
        weights = self.predictor.source.get("weights")
        if weights:
            path = Path(weights)
            for candidate in (path.with_suffix(".json"), Path(f"{path}.json")):
                if candidate.is_file():
                    from hlfnet.limits import read_json

                    try:
                        return read_json(candidate, "model description")
                    except (OSError, ValueError):
                        return None
        return None

    # ---------------------------------------------------------------- work (inference thread)

    def process(self, kind: str, payloads: list[Any]) -> list[Any]:
        """The batcher's ``process``: a list of :class:`ImageJob` in one forward pass, or one volume path."""
        if kind == "image":
            try:
                return self._images(payloads)
            except Exception:  # one bad image must not fail the others: run them one by one
                if len(payloads) == 1:
                    raise
                results: list[Any] = []
                for job in payloads:
                    try:
                        results.extend(self._images([job]))
                    except Exception as error:
                        results.append(error)
                return results
        if kind == "volume":
            return [self.predictor.predict_volume_array(path) for path in payloads]
        raise ValueError(f"unknown job kind {kind!r}")

    def _images(self, jobs: list[ImageJob]) -> list[ImageResult]:
        keep = any(job.probabilities for job in jobs)
        predictions = list(
            self.predictor.predict_images([job.array for job in jobs], keep_probabilities=keep)
        )
        return [
            ImageResult(
                pred.mask,
                pred.probabilities if job.probabilities else None,
                self._attention(job.array) if job.attention and self.attention_available else None,
            )
            for job, pred in zip(jobs, predictions, strict=True)
        ]

    def _attention(self, array: np.ndarray) -> list[dict[str, Any]]:
        """The Fig. 4 maps of one image: LFE (encoder, shallow → deep), then HFE (decoder, deep → shallow)."""
        _, maps, _ = self.predictor.attention(array)
        out = []
        named = [(f"LFE {i + 1}", "lfe", m) for i, m in enumerate(maps.lfe)]
        count = len(maps.hfe_spatial)
        named += [(f"HFE {count - i}", "hfe", m) for i, m in enumerate(maps.hfe_spatial)]
        for name, kind, tensor in named:
            values = tensor[0, 0].float().cpu().numpy()
            low, high = float(values.min()), float(values.max())
            scaled = (values - low) / (high - low) if high > low else np.zeros_like(values)
            out.append(
                {
                    "name": name,
                    "kind": kind,
                    "size": list(values.shape),
                    "min": low,
                    "max": high,
                    "png": b64(png_bytes(np.rint(scaled * 255).astype(np.uint8))),
                }
            )
        return out
