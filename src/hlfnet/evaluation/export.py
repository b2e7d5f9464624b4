"""Export a trained network to ONNX or TorchScript, and run an ONNX file through ONNX Runtime.

The exported graph maps ``(B, C, H, W)`` images to ``(B, K, H, W)`` logits (no sigmoid, like the network).
The batch is dynamic; the spatial size is fixed to the network input size of the run's preprocessing
(the network pads inputs whose size is not a multiple of ``2**depth``, and that branch is decided when the
graph is traced). Beside ``model.onnx`` / ``model.torchscript.pt`` goes ``<file>.json``: the run's model
description plus ``format`` and ``input_shape``, so :class:`~hlfnet.evaluation.predictor.Predictor` can rebuild
the preprocessing from the exported file alone.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from hlfnet.atomic import atomic_path, atomic_write_bytes, owned_outputs
from hlfnet.limits import read_json

__all__ = ["EXPORT_FORMATS", "export_model", "export_run", "OnnxModel", "exported_json_path", "load_exported"]

logger = logging.getLogger(__name__)

ExportFormat = Literal["onnx", "torchscript"]
EXPORT_FORMATS: tuple[str, ...] = ("onnx", "torchscript")
SUFFIXES = {"onnx": ".onnx", "torchscript": ".torchscript.pt"}


def exported_json_path(path: str | os.PathLike[str]) -> Path:
    """``model.onnx -> model.onnx.json``: the description beside an exported file."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def export_model(
    model: nn.Module,
    path: str | os.PathLike[str],
    input_size: tuple[int, ...],
    fmt: ExportFormat = "onnx",
    info: dict[str, Any] | None = None,
    overwrite: bool = False,
    opset: int = 18,
) -> Path:
    """Export ``model`` for inputs ``(B, in_channels, *input_size)``.

    Args:
        model: a network built by :func:`hlfnet.models.create_model` (``model.in_channels`` is read).
        path: the file to write (``.onnx`` or ``.pt``).
        input_size: spatial size of the network input, e.g. ``(192, 256)``.
        fmt: ``"onnx"`` or ``"torchscript"``.
        info: JSON-serialisable description written beside the file (``model.json`` plus the preprocessing).
        overwrite: replace an existing file.
        opset: ONNX opset.

    Returns:
        ``path``.

    Raises:
        ValueError: unknown format or a bad ``input_size``.
        FileExistsError: ``path`` exists and ``overwrite`` is false.
    """
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"format must be one of {EXPORT_FORMATS}, got {fmt!r}")
    if not input_size or any(int(s) < 1 for s in input_size):
        raise ValueError(f"input_size must be positive spatial sizes such as (192, 256), got {input_size!r}")
    path = Path(path)
    if path.exists() and not path.is_dir() and not overwrite:
        raise FileExistsError(f"{path}: already exists (pass overwrite=True / --overwrite to replace it)")
    # --overwrite replaces an export hlfnet wrote, never another file, a folder or a symlink (hlfnet.atomic);
    # exports from before the marker live in a run's export/ folder
    names = [path.name, exported_json_path(path).name]
    legacy = names if path.parent.name == "export" else ()
    with owned_outputs(path.parent, names, "export", overwrite=overwrite, legacy=legacy):
        _export(model, path, fmt, input_size, opset, info)
    return path


def _export(
    model: torch.nn.Module,
    path: Path,
    fmt: str,
    input_size: tuple[int, ...],
    opset: int,
    info: dict[str, Any] | None,
) -> None:
    model = model.eval()
    example = torch.rand(2, model.in_channels, *(int(s) for s in input_size))
    with atomic_path(path, path.parent) as tmp:
        if fmt == "onnx":
            require(("onnx", "onnxscript"), "ONNX export")
            batch = torch.export.Dim("batch", min=1, max=4096)
            # the exporter reports its progress on stdout; the CLI owns the terminal
            with contextlib.redirect_stdout(io.StringIO()), torch.no_grad():
                torch.onnx.export(
                    model,
                    (example,),
                    str(tmp),
                    input_names=["image"],
                    output_names=["logits"],
                    dynamo=True,
                    dynamic_shapes={"x": {0: batch}},
                    external_data=False,
                    opset_version=opset,
                    verbose=False,
                )
        else:
            # the padding branch is fixed by the trace on purpose: the spatial size is part of the export
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore", torch.jit.TracerWarning)
                traced = torch.jit.trace(model, example, check_trace=False)
            torch.jit.save(traced, str(tmp))
    description = {
        **(info or {}),
        "format": fmt,
        "input_shape": [int(model.in_channels), *(int(s) for s in input_size)],
        "out_channels": int(getattr(model, "out_channels", 1)),
    }
    atomic_write_bytes(exported_json_path(path), json.dumps(description, indent=2).encode(), root=path.parent)
    logger.info(
        "exported %s to %s (input (B, %s))", fmt, path, ", ".join(map(str, description["input_shape"]))
    )


def require(modules: tuple[str, ...], purpose: str) -> None:
    """Raise a clear ``ImportError`` when an optional dependency of ``purpose`` is not installed."""
    import importlib.util

    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise ImportError(
            f"{purpose} needs {', '.join(missing)}, which is not installed: pip install 'hlfnet[export]'"
        )


class OnnxModel:
    """An ONNX file run by ONNX Runtime, called like the network: ``(B, C, H, W)`` tensor -> logits tensor.

    Args:
        path: the ``.onnx`` file.
        threads: intra-op threads (0: ONNX Runtime's default).

    Raises:
        FileNotFoundError: ``path`` is missing.
        ValueError: the file is not a loadable ONNX model.
    """

    def __init__(self, path: str | os.PathLike[str], threads: int = 0) -> None:
        require(("onnxruntime",), "the ONNX backend")
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: no such ONNX file (write one with `hlfnet export RUN`)")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises its own exception types
            raise ValueError(f"{self.path}: not a loadable ONNX model ({error})") from None
        node = self.session.get_inputs()[0]
        self.input_name = node.name
        self.input_shape = tuple(node.shape)
        self.in_channels = int(self.input_shape[1])

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W) -> (B, K, H, W)`` logits; ``ValueError`` when the shape differs from the export's."""
        fixed = [(i, s) for i, s in enumerate(self.input_shape) if isinstance(s, int)]
        if x.ndim != len(self.input_shape) or any(x.shape[i] != s for i, s in fixed):
            raise ValueError(
                f"{self.path}: expects input {tuple(self.input_shape)} (batch free), got {tuple(x.shape)}"
            )
        out = self.session.run(
            None, {self.input_name: np.ascontiguousarray(x.detach().cpu().numpy(), np.float32)}
        )
        return torch.from_numpy(out[0])

    def eval(self) -> OnnxModel:
        """For symmetry with ``nn.Module``: an ONNX session is always in inference mode."""
        return self


def load_exported(path: str | os.PathLike[str]) -> tuple[OnnxModel | torch.jit.ScriptModule, dict[str, Any]]:
    """Load an exported ONNX or TorchScript file and its JSON description.

    Returns:
        ``(callable model, description)``; the description holds ``data`` (the preprocessing) when the
        export came from a run.

    Raises:
        FileNotFoundError: the file or its ``.json`` is missing.
        ValueError: unknown suffix or unreadable file.
    """
    path = Path(path)
    info_path = exported_json_path(path)
    for p in (path, info_path):
        if not p.is_file():
            raise FileNotFoundError(
                f"{p}: not found (an exported model needs {path.name} and {info_path.name})"
            )
    info = read_json(info_path, "export description")
    if path.suffix == ".onnx":
        return OnnxModel(path), info
    if path.suffix == ".pt":
        try:
            return torch.jit.load(str(path), map_location="cpu").eval(), info
        except RuntimeError as error:
            raise ValueError(f"{path}: not a TorchScript file ({error})") from None
    raise ValueError(f"{path}: unknown export format (expected .onnx or .torchscript.pt)")


def export_run(
    run: str | os.PathLike[str],
    fmt: ExportFormat = "onnx",
    output: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    checkpoint: str = "best",
) -> Path:
    """Export a run's network for the input size of its preprocessing (``checkpoint``: ``best`` or ``last``).

    Args:
        run: run folder or weights file.
        fmt: ``"onnx"`` or ``"torchscript"``.
        output: the file to write; default ``RUN/export/model.onnx`` or ``RUN/export/model.torchscript.pt``
            (where ``hlfnet predict --backend onnx`` looks).
        overwrite: replace an existing export.

    Raises:
        FileNotFoundError: no weights in the run.
        FileExistsError: the export exists and ``overwrite`` is false.
        ValueError: no recorded input size, unknown format.
    """
    from hlfnet.experiment.run_folder import load_run

    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"format must be one of {EXPORT_FORMATS}, got {fmt!r}")
    loaded = load_run(run, checkpoint=checkpoint)
    # a native-resolution plan exports the network for one window of its sliding-window inference
    patch = loaded.data.get("preprocessing") == "patch"
    size = loaded.data.get("patch_size") if patch else loaded.data.get("image_size")
    if not size:
        raise ValueError(
            f"{loaded.weights}: no recorded preprocessing ('data.image_size'), so no input size to export"
        )
    path = (
        Path(output)
        if output is not None
        else loaded.output_folder("the export")
        / "export"
        / f"model{'' if checkpoint == 'best' else '-last'}{SUFFIXES[fmt]}"
    )
    info = {k: v for k, v in loaded.info.items() if k != "manifest"}
    return export_model(
        loaded.model, path, tuple(size), fmt, info={**info, "data": loaded.data}, overwrite=overwrite
    )
