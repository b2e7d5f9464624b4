"""Loading: the network a predictor runs, and the device it runs on.

A network comes from a run folder (its weights, ``config.yaml`` and recorded preprocessing, through
:func:`~hlfnet.experiment.run_folder.load_run`), from an exported ``.onnx`` / ``.torchscript.pt`` file with its JSON
description, or — with ``backend="onnx"`` — from a run's ``export/model.onnx``. Each way gives a
:class:`LoadedNetwork`: the callable model, the preprocessing recorded at training, the channel counts and what
it was loaded from (the ``source`` written to ``predictions.json``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

__all__ = ["BACKENDS", "LoadedNetwork", "load_network", "network_of_run", "resolve_device"]

#: How a run's network may be executed: PyTorch, or its ONNX export through ONNX Runtime.
BACKENDS = ("torch", "onnx")


@dataclass
class LoadedNetwork:
    """A network ready to predict with, and the facts a predictor needs about it.

    Attributes:
        model: an ``nn.Module``, an :class:`~hlfnet.evaluation.export.OnnxModel` or a TorchScript module.
        data: the preprocessing recorded at training (``DataConfig`` dictionary).
        in_channels: channels the model takes.
        out_channels: logits channels ``K`` (1 = binary).
        source: ``model`` (name), ``weights`` (file) and ``backend``, as recorded in ``predictions.json``.
    """

    model: Callable[[torch.Tensor], torch.Tensor]
    data: Any
    in_channels: int
    out_channels: int
    source: dict[str, Any] = field(default_factory=dict)


def check_backend(backend: str) -> None:
    """Raise ``ValueError`` unless ``backend`` is one of :data:`BACKENDS`."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be 'torch' or 'onnx', got {backend!r}")


def load_network(
    path: str | os.PathLike[str], backend: str = "torch", checkpoint: str = "best"
) -> LoadedNetwork:
    """Load the network of a run folder, weights file, or exported ``.onnx`` / ``.torchscript.pt`` file.

    Args:
        path: ``runs/<name>``, ``model.safetensors``, ``*.ckpt``, ``*.onnx`` or ``*.torchscript.pt``.
        backend: ``"torch"``, or ``"onnx"`` to run the run's ``export/model.onnx`` through ONNX Runtime.
        checkpoint: ``"best"`` or ``"last"`` weights of a run folder (see :func:`~hlfnet.experiment.load_run`).

    Raises:
        FileNotFoundError: missing weights / export (says which command writes them).
        ValueError: unknown backend, no recorded preprocessing, weights that do not match their network.
    """
    from hlfnet.evaluation.export import load_exported
    from hlfnet.experiment.run_folder import load_run

    check_backend(backend)
    path = Path(path)
    if path.suffix not in (".onnx", ".pt"):
        return network_of_run(load_run(path, checkpoint=checkpoint), backend)
    model, info = load_exported(path)
    if not info.get("data"):
        raise ValueError(f"{path}: no preprocessing recorded ('data' in {path.name}.json)")
    return LoadedNetwork(
        model,
        info["data"],
        in_channels=info["input_shape"][0],
        out_channels=info.get("out_channels", 1),
        source={"model": info.get("name"), "weights": str(path), "backend": info.get("format")},
    )


def network_of_run(run: Any, backend: str = "torch") -> LoadedNetwork:
    """The network of a :class:`~hlfnet.experiment.run_folder.LoadedRun`, or its ONNX export (see :func:`load_network`)."""
    from hlfnet.evaluation.export import load_exported

    check_backend(backend)
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
    return LoadedNetwork(model, run.data, run.model.in_channels, run.model.out_channels, source)


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
