"""Reading what training leaves behind: a run folder, bare weights or a pretrained name, into a network plus its
preprocessing. Evaluation, serve, export and the pretrained publisher all read runs through this module.

A run folder (``runs/<name>/``) holds ``config.yaml``, ``split.json``, ``model.safetensors`` + ``model.json``
(the best weights, written by :func:`hlfnet.models.save_model`), ``checkpoints/{best,last}.ckpt``,
``metrics.csv`` and ``curves.png``. :func:`load_run` accepts the folder, a ``.safetensors`` file, or a
Lightning ``.ckpt`` inside a run folder. Nothing is unpickled: safetensors are plain tensors, and checkpoints
are read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import csv
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hlfnet.data.splits import read_split
from hlfnet.models import create_model, load_model
from hlfnet.models.io import load_checked_state

__all__ = [
    "CHECKPOINTS",
    "WEIGHTS_NAME",
    "LoadedRun",
    "load_pretrained",
    "load_run",
    "read_config",
    "read_metrics_csv",
]

logger = logging.getLogger(__name__)

WEIGHTS_NAME = "model.safetensors"


@dataclass
class LoadedRun:
    """A network ready for inference and what is known about how it was trained.

    Attributes:
        model: the network in eval mode.
        info: the model description (``model.json``: ``name``, ``kwargs`` and extras such as ``data``).
        data: the preprocessing the network was trained with (a ``DataConfig`` as a dictionary), or ``{}``.
        weights: the file the weights came from.
        root: the run folder, or ``None`` for bare weights outside a run.
        config: the resolved training configuration (``config.yaml``), or ``None``.
        split: ``{"train": [...], "val": [...], "test": [...]}`` case ids, or ``None``.
    """

    model: nn.Module
    info: dict[str, Any]
    data: dict[str, Any]
    weights: Path
    root: Path | None = None
    config: dict[str, Any] | None = None
    split: dict[str, list[str]] | None = None

    @property
    def name(self) -> str:
        """The run's name: its folder, or the weights' stem."""
        return self.root.name if self.root is not None else self.weights.stem

    @property
    def pretrained(self) -> str | None:
        """The shipped pretrained name this network was loaded by, or ``None``."""
        return self.info.get("pretrained")

    def output_folder(self, what: str) -> Path:
        """Where outputs of ``what`` go by default: inside the run folder (beside bare weights).

        Raises:
            ValueError: for a pretrained network, whose files live inside the installed package.
        """
        if self.pretrained:
            raise ValueError(
                f"{self.pretrained} is a pretrained model (its files are part of the installed package): "
                f"pass --output to say where {what} should go"
            )
        return self.root or self.weights.parent

    @property
    def model_name(self) -> str:
        """The registered network (``hlfnet``, ``unet``, ...)."""
        return str(self.info["name"])


def read_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate a run folder's ``config.yaml`` (:func:`hlfnet.experiment.load_config`), as plain data.

    Raises:
        ValueError: not a valid configuration; names the file and the key.
    """
    from hlfnet.experiment.config import config_to_dict, load_config

    return config_to_dict(load_config(path))


def _load_checkpoint(ckpt: Path, config: dict[str, Any] | None, map_location: str) -> tuple[nn.Module, dict]:
    """Rebuild the network from ``config.yaml``'s ``model`` section and load a Lightning checkpoint's weights."""
    if config is None or not isinstance(config.get("model"), dict) or "name" not in config["model"]:
        raise FileNotFoundError(
            f"{ckpt}: a checkpoint needs the run's config.yaml with a 'model: {{name: ...}}' section beside "
            f"checkpoints/ to rebuild the network"
        )
    kwargs = {k: v for k, v in config["model"].items() if k != "name"}
    model = create_model(config["model"]["name"], **kwargs)
    try:
        payload = torch.load(ckpt, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises UnpicklingError, RuntimeError, EOFError... for bad files
        raise ValueError(f"{ckpt}: cannot be read as a weights-only checkpoint ({error})") from None
    state = payload.get("state_dict", payload) if isinstance(payload, dict) else None
    if not isinstance(state, dict):
        raise ValueError(f"{ckpt}: holds no state_dict")
    expected = model.state_dict()
    # Lightning prefixes the network's keys with the attribute that holds it (e.g. "model.").
    for prefix in ("", "model.", "net.", "network."):
        candidate = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        if set(candidate) == set(expected):
            break
    else:
        raise ValueError(
            f"{ckpt}: weights do not match network {config['model']['name']!r}: keys such as "
            f"{sorted(state)[:3]} do not name its parameters such as {sorted(expected)[:3]}"
        )
    load_checked_state(model, candidate, ckpt, repr(config["model"]["name"]))
    info = {"name": config["model"]["name"], "kwargs": model.model_kwargs}
    return model.eval(), info


CHECKPOINTS = ("best", "last")


def load_run(path: str | os.PathLike[str], map_location: str = "cpu", checkpoint: str = "best") -> LoadedRun:
    """Load a trained network from a run folder, a ``.safetensors`` file, a run's ``.ckpt`` or a pretrained name.

    Args:
        path: a pretrained name (``hlfnet-isic2017``, see :func:`hlfnet.pretrained.list_pretrained`), ``runs/<name>``, ``.../model.safetensors`` (with its ``model.json``) or
            ``runs/<name>/checkpoints/best.ckpt``.
        map_location: device for the weights.
        checkpoint: for a run folder, ``"best"`` (``model.safetensors``, the best-on-validation weights) or
            ``"last"`` (``checkpoints/last.ckpt``, the last epoch's).

    Returns:
        The :class:`LoadedRun`.

    Raises:
        FileNotFoundError: the path does not exist, or the run folder holds no weights (names what it looked for).
        ValueError: the weights do not match the network their description names, or a file is malformed.
    """
    from hlfnet.pretrained import is_pretrained_name, list_pretrained

    if checkpoint not in CHECKPOINTS:
        raise ValueError(f"--checkpoint must be one of {CHECKPOINTS}, got {checkpoint!r}")
    if is_pretrained_name(path):
        if checkpoint != "best":
            raise ValueError(
                f"{path}: a pretrained model ships only its best weights; drop --checkpoint last"
            )
        return load_pretrained(str(path), map_location=map_location)
    path = Path(path)
    if not path.exists():
        shipped = ", ".join(list_pretrained()) or "none installed"
        raise FileNotFoundError(
            f"{path}: no such run folder or weights file, nor a pretrained model name (pretrained: {shipped})"
        )
    if path.is_dir() and checkpoint == "last":
        root, weights = path, path / "checkpoints" / "last.ckpt"
        if not weights.is_file():
            raise FileNotFoundError(
                f"{weights}: not found (--checkpoint last needs a run folder's last checkpoint)"
            )
    elif checkpoint == "last":
        raise ValueError(f"{path}: --checkpoint last needs a run folder, not a weights file")
    elif path.is_dir():
        root = path
        weights = root / WEIGHTS_NAME
        if not weights.is_file():
            best = root / "checkpoints" / "best.ckpt"
            if not best.is_file():
                raise FileNotFoundError(
                    f"{root}: run folder without weights: neither {WEIGHTS_NAME} nor checkpoints/best.ckpt "
                    f"(has training finished its first epoch?)"
                )
            weights = best
    else:
        weights = path
        root = (
            path.parent.parent
            if path.suffix == ".ckpt" and path.parent.name == "checkpoints"
            else path.parent
        )
        if not (root / "config.yaml").is_file() and not (root / "split.json").is_file():
            root = None
    config = (
        read_config(root / "config.yaml") if root is not None and (root / "config.yaml").is_file() else None
    )
    split = read_split(root / "split.json") if root is not None and (root / "split.json").is_file() else None
    if weights.suffix == ".ckpt":
        model, info = _load_checkpoint(weights, config, map_location)
    elif weights.suffix == ".safetensors":
        model, info = load_model(weights, map_location=map_location)
    else:
        raise ValueError(f"{weights}: not a weights file (expected .safetensors or .ckpt)")
    data = info.get("data") or (config or {}).get("data") or {}
    if not isinstance(data, dict):
        raise ValueError(f"{weights}: the recorded preprocessing ('data') is not a mapping: {data!r}")
    logger.info(
        "loaded %s (%s) from %s", info["name"], "run " + root.name if root else "bare weights", weights
    )
    return LoadedRun(
        model=model, info=info, data=dict(data), weights=weights, root=root, config=config, split=split
    )


def load_pretrained(name: str, map_location: str = "cpu") -> LoadedRun:
    """Load a shipped network by name, with the preprocessing it was trained with.

    Args:
        name: a name from :func:`hlfnet.pretrained.list_pretrained`, e.g. ``"hlfnet-isic2017"``.
        map_location: device for the weights.

    Returns:
        A :class:`LoadedRun`: ``.model`` (float32, eval mode), ``.data`` (the
        preprocessing as a ``DataConfig`` dictionary), ``.info`` (the manifest entry), ``.split`` (the training
        split's ids when shipped), ``.root`` ``None``.

    Raises:
        KeyError: an unknown name. ValueError: a weights file whose sha256 differs from the manifest's.
    """
    from safetensors.torch import load_file

    from hlfnet.pretrained import pretrained_info, store_folder, verify_pretrained

    entry = pretrained_info(name)
    path = verify_pretrained(name)
    network = entry["network"]
    model = create_model(network["name"], **network["kwargs"])
    state = {k: v.float() for k, v in load_file(str(path), device=map_location).items()}
    load_checked_state(model, state, path, f"{network['name']!r} {network['kwargs']}")
    split = read_split(store_folder() / entry["split_file"]) if entry.get("split_file") else None
    info = {"name": network["name"], "kwargs": network["kwargs"], "pretrained": name, "manifest": entry}
    logger.info("loaded pretrained %s (%s) from %s", name, network["name"], path)
    return LoadedRun(
        model=model.eval(),
        info=info,
        data=dict(entry["preprocessing"]),
        weights=path,
        root=None,
        config=None,
        split=split,
    )


def read_metrics_csv(path: str | Path) -> list[dict[str, float]]:
    """Read a run's ``metrics.csv`` back: a list of ``{column: float}`` (``epoch`` as int).

    Raises:
        FileNotFoundError: no such file (names it).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: metrics file not found")
    with path.open(newline="") as handle:
        return [
            {k: (int(v) if k == "epoch" else float(v)) for k, v in row.items()}
            for row in csv.DictReader(handle)
        ]
