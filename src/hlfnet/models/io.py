"""Weights on disk: safetensors plus a JSON file naming the network and its arguments.

``save_model(model, "run/model.safetensors")`` writes ``model.safetensors`` and ``model.json``;
``load_model("run/model.safetensors")`` rebuilds the network from the JSON and loads the tensors. Nothing is
unpickled. Both files are written atomically (temporary file, then ``os.replace``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from hlfnet.atomic import atomic_path, atomic_write_bytes
from hlfnet.errors import NonFiniteError
from hlfnet.limits import read_json
from hlfnet.models.registry import create_model

__all__ = [
    "save_model",
    "load_model",
    "model_json_path",
    "load_checked_state",
]


def model_json_path(weights: str | os.PathLike[str]) -> Path:
    return Path(weights).with_suffix(".json")


def save_model(
    model: nn.Module,
    weights: str | os.PathLike[str],
    extra: dict[str, Any] | None = None,
    root: str | os.PathLike[str] | None = None,
) -> Path:
    """Save ``model`` (built by :func:`create_model`) as safetensors + JSON; returns the weights path.

    Args:
        model: a network with ``model_name`` and ``model_kwargs`` (set by :func:`create_model`).
        weights: path of the ``.safetensors`` file; the JSON goes beside it with suffix ``.json``.
        extra: more JSON-serialisable facts to keep beside the weights (e.g. the preprocessing).
        root: the output folder both files must stay inside (:func:`hlfnet.atomic.check_target`).
    """
    name = getattr(model, "model_name", None)
    if name is None:
        raise ValueError("model has no 'model_name': build it with hlfnet.create_model to save it")
    weights = Path(weights)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(weights, root) as tmp:
        save_file(state, str(tmp), metadata={"model_name": name})
    info = {"name": name, "kwargs": model.model_kwargs, **(extra or {})}
    atomic_write_bytes(model_json_path(weights), json.dumps(info, indent=2).encode(), root)
    return weights


def load_checked_state(model: nn.Module, state: dict[str, Any], source: Any, description: str) -> None:
    """Load ``state`` into ``model`` after checking it has exactly the network's keys and shapes.

    Raises:
        ValueError: naming ``source``, the network (``description``), and the missing/unexpected keys or the
            first tensor whose shape differs.
    """
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ValueError(
            f"{source}: weights do not match network {description}: "
            f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
            f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}"
        )
    for key, tensor in state.items():
        if tensor.shape != expected[key].shape:
            raise ValueError(
                f"{source}: weights do not match network {description}: {key} has shape "
                f"{tuple(tensor.shape)}, the network expects {tuple(expected[key].shape)}"
            )
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise NonFiniteError(
                f"{source}: tensor {key} holds {int((~torch.isfinite(tensor)).sum())} NaN/inf value(s); "
                "the weights are corrupt or come from a diverged training (they would predict empty masks): "
                "use the run's best weights or train again"
            )
    model.load_state_dict(state)


def load_model(
    weights: str | os.PathLike[str], map_location: str = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the network named in the JSON beside ``weights`` and load the safetensors into it.

    Returns:
        ``(model in eval mode, the JSON dictionary)``.

    Raises:
        FileNotFoundError: the weights or their JSON are missing (names the path).
        ValueError: the tensors do not match the network the JSON names (lists missing/unexpected keys or
            the first shape mismatch).
        NonFiniteError: a tensor holds NaN or inf (names it).
    """
    weights = Path(weights)
    info_path = model_json_path(weights)
    for path in (weights, info_path):
        if not path.is_file():
            raise FileNotFoundError(f"{path}: not found (a model needs {weights.name} and {info_path.name})")
    info = read_json(info_path, "model description")
    try:
        name, kwargs = info["name"], dict(info["kwargs"])
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{info_path}: not a model description ({type(error).__name__}: {error})") from None
    try:
        model = create_model(name, **kwargs)
    except (KeyError, TypeError, ValueError) as error:
        message = error.args[0] if error.args else error
        raise ValueError(f"{info_path}: describes a network hlfnet cannot build ({message})") from None
    try:
        state = load_file(str(weights), device=map_location)
    except (
        Exception
    ) as error:  # safetensors raises SafetensorError (and others) for random or truncated files
        raise ValueError(
            f"{weights}: not a readable safetensors file ({type(error).__name__}: {error}); it may be truncated "
            "or corrupt: restore it, or export the weights again from the run's checkpoints"
        ) from None
    load_checked_state(model, state, weights, f"{name!r} {kwargs}")
    return model.eval(), info
