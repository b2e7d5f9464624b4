"""Ensembles of cross-validation folds: which networks, whether they may be averaged, the post-processing chosen.

``hlfnet predict --model`` names an ensemble in one of two ways (nnU-Net's and a plain list):

* a comma-separated list of run folders (or weights / exports), ``runs/a_fold0,runs/a_fold1``;
* a folder holding the fold run folders ``fold_0``, ``fold_1``, ... that ``hlfnet train --fold N`` writes
  (``runs/<name>/``); ``fold_all`` is not a cross-validation fold and is left out (give it on its own).

The members' probabilities are averaged (:meth:`~hlfnet.evaluation.predictor.Predictor.forward_probabilities`),
so they must agree on what their outputs mean and how their inputs are made: :func:`check_compatible`.

The post-processing that cross-validation chose (``hlfnet evaluate FOLDER`` writes
``FOLDER/crossval/postprocessing.json``) is read by :func:`read_postprocessing`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "CROSSVAL_DIR",
    "ENSEMBLE_DATA_KEYS",
    "POSTPROCESSING_FILE",
    "check_compatible",
    "default_postprocessing",
    "ensemble_members",
    "fold_folders",
    "read_postprocessing",
]

#: Where ``hlfnet evaluate FOLDER`` writes the cross-validation of the folds in ``FOLDER``.
CROSSVAL_DIR = "crossval"
#: The post-processing decision of a cross-validation (read by ``predict``).
POSTPROCESSING_FILE = "postprocessing.json"
#: ``DataConfig`` fields that decide a network's input tensor and the meaning of its outputs: members of an
#: ensemble must agree on every one (and on their networks' input and output channels).
ENSEMBLE_DATA_KEYS = (
    "num_classes",
    "label_values",
    "image_size",
    "preprocessing",
    "spatial_dims",
    "patch_size",
    "target_spacing",
    "normalization",
    "intensity_stats",
    "ct_window",
)

_FOLD_DIR = re.compile(r"^fold_(\d+)$")


def fold_folders(folder: str | os.PathLike[str]) -> list[Path]:
    """The cross-validation fold run folders ``fold_<N>`` of ``folder``, by fold number (may be empty)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [
        (int(m.group(1)), p)
        for p in folder.iterdir()
        if (m := _FOLD_DIR.match(p.name)) and p.is_dir() and not p.is_symlink()
    ]
    return [p for _, p in sorted(found)]


def ensemble_members(spec: str | os.PathLike[str]) -> list[Path] | None:
    """The members of the ensemble ``spec`` names, or ``None`` when it names one network.

    Args:
        spec: ``"A,B,..."`` (two or more paths), or a folder holding ``fold_<N>`` run folders and no
            ``config.yaml`` of its own; anything else names one network.

    Raises:
        ValueError: a comma list with an empty or repeated entry.
    """
    text = os.fspath(spec)
    if "," in text and not Path(text).exists():
        members = [part.strip() for part in text.split(",")]
        if any(not m for m in members):
            raise ValueError(f"--model {text!r}: an empty entry in the comma-separated list of folds")
        if len(set(members)) != len(members):
            raise ValueError(f"--model {text!r}: a fold appears twice")
        return [Path(m) for m in members]
    path = Path(text)
    if path.is_dir() and not (path / "config.yaml").exists():
        folds = fold_folders(path)
        if folds:
            return folds
    return None


def _settings(data: Any) -> dict[str, Any]:
    """The :data:`ENSEMBLE_DATA_KEYS` of a recorded data section, defaults filled in (through ``DataConfig``)."""
    from hlfnet.data.config import DataConfig

    cfg = data if isinstance(data, DataConfig) else DataConfig.from_dict(data)
    values = {key: getattr(cfg, key) for key in ENSEMBLE_DATA_KEYS}
    return {
        k: [list(x) if isinstance(x, tuple) else x for x in v] if isinstance(v, tuple) else v
        for k, v in values.items()
    }


def check_compatible(networks: Sequence[Any], names: Sequence[object]) -> None:
    """Refuse members whose probabilities cannot be averaged: other classes, channels or preprocessing plan.

    Args:
        networks: :class:`~hlfnet.evaluation.predictor.loading.LoadedNetwork` (or anything with ``data``,
            ``in_channels`` and ``out_channels``).
        names: what each member was loaded from (for the message).

    Raises:
        ValueError: one line naming the member, the key and both values.
    """
    if len(networks) < 2:
        raise ValueError(f"an ensemble needs at least two networks, got {len(networks)}")
    first, first_name = networks[0], names[0]
    mine_all = _settings(first.data)
    for network, name in zip(networks[1:], names[1:], strict=True):
        theirs_all = _settings(network.data)
        differences = [
            (f"{label} channels", getattr(first, attr), getattr(network, attr))
            for label, attr in (("input", "in_channels"), ("output", "out_channels"))
            if getattr(first, attr) != getattr(network, attr)
        ]
        differences += [
            (f"data.{key}", mine_all[key], theirs_all[key])
            for key in ENSEMBLE_DATA_KEYS
            if mine_all[key] != theirs_all[key]
        ]
        if differences:
            what, mine, theirs = differences[0]
            raise ValueError(
                f"{name}: cannot be ensembled with {first_name}: {what} is {theirs!r} there and {mine!r} in "
                f"{first_name}; the folds of an ensemble must share classes, channels and preprocessing plan"
            )


def default_postprocessing(spec: str | os.PathLike[str]) -> Path | None:
    """``FOLDER/crossval/postprocessing.json`` of a folder of folds, when it exists."""
    path = Path(os.fspath(spec)) / CROSSVAL_DIR / POSTPROCESSING_FILE
    return path if path.is_file() else None


def read_postprocessing(path: str | os.PathLike[str], num_classes: int) -> tuple[int, ...]:
    """The classes whose largest connected component a cross-validation chose to keep.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a post-processing decision, or classes the network does not have (naming the file).
    """
    from hlfnet.limits import read_json

    path = Path(path)
    data = read_json(path, "post-processing file")
    classes = data.get("largest_component_classes") if isinstance(data, dict) else None
    if not isinstance(classes, list) or not all(
        isinstance(k, int) and not isinstance(k, bool) for k in classes
    ):
        raise ValueError(
            f"{path}: not a post-processing decision (no 'largest_component_classes' list of class indices); "
            "`hlfnet evaluate FOLDER` writes one"
        )
    bad = [k for k in classes if not 1 <= k < num_classes]
    if bad:
        raise ValueError(f"{path}: classes {bad} are not foreground classes of a {num_classes}-class network")
    return tuple(sorted(set(classes)))
