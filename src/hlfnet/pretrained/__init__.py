"""Pretrained networks that ship inside the package: weights + a manifest, loaded by name, no network access.

``src/hlfnet/pretrained/`` holds ``manifest.json`` and one ``<name>.safetensors`` per entry (float16 storage,
loaded as float32). Each manifest entry records the file's sha256, the network and its arguments, the
preprocessing it was trained with, the training data and split, the protocol, the code commit and the measured
scores. Loading verifies the hash and refuses a mismatch.

Example:
    >>> from hlfnet import load_pretrained  # doctest: +SKIP
    >>> loaded = load_pretrained("hlfnet-isic2017")    # doctest: +SKIP
    >>> loaded.model, loaded.data["image_size"]        # doctest: +SKIP

This package is the store only (the manifest, the files, their hashes); it imports nothing of hlfnet above
:mod:`hlfnet.limits`. Loading a network by name is :func:`hlfnet.experiment.load_pretrained` (also
``hlfnet.load_pretrained``), and every command that takes a run folder (``predict --model``, ``evaluate``,
``report``, ``export``) also takes a pretrained name, through :func:`hlfnet.experiment.load_run`. Replacing
shipped weights is a deliberate step: :func:`hlfnet.pretrained.publish.publish_pretrained`
(``hlfnet pretrained publish``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_PRETRAINED",
    "is_pretrained_name",
    "list_pretrained",
    "pretrained_info",
    "pretrained_table",
    "verify_pretrained",
]

logger = logging.getLogger(__name__)

#: What ``hlfnet serve`` and the README use when no model is named.
DEFAULT_PRETRAINED = "hlfnet-isic2017"
MANIFEST_NAME = "manifest.json"
VALID_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


def store_folder() -> Path:
    """The package's own folder, or ``$HLFNET_PRETRAINED_DIR`` (a site's own model store; the tests' too)."""
    override = os.environ.get("HLFNET_PRETRAINED_DIR")
    return Path(override) if override else Path(str(resources.files("hlfnet.pretrained")))


def read_document(folder: Path | None = None) -> dict[str, Any]:
    """The whole manifest file (``{"models": {...}, ...}``; other keys are kept when publishing)."""
    from hlfnet.limits import read_json

    path = (folder or store_folder()) / MANIFEST_NAME
    if not path.is_file():
        return {}
    manifest = read_json(path, "pretrained manifest")
    if not isinstance(manifest, dict) or not isinstance(manifest.get("models", {}), dict):
        raise ValueError(f"{path}: expected {{'models': {{name: entry}}}}; reinstall hlfnet")
    return manifest


def read_manifest(folder: Path | None = None) -> dict[str, dict[str, Any]]:
    return read_document(folder).get("models", {})


def legacy_files(document: dict[str, Any]) -> list[str]:
    """Files a publish from before the marker wrote: the manifest and what its entries name."""
    if "models" not in document:
        return []
    names = [MANIFEST_NAME]
    for entry in document["models"].values():
        if isinstance(entry, dict):
            names += [str(entry[k]) for k in ("file", "split_file") if isinstance(entry.get(k), str)]
    return names


def list_pretrained() -> list[str]:
    """Names of the pretrained networks shipped with this installation (``hlfnet models`` lists them)."""
    return sorted(read_manifest())


def is_pretrained_name(reference: str | os.PathLike[str]) -> bool:
    """Whether ``reference`` names a shipped pretrained network (a path that exists always wins)."""
    text = str(reference)
    return not Path(text).exists() and text in read_manifest()


def pretrained_info(name: str) -> dict[str, Any]:
    """The manifest entry of ``name`` (network, preprocessing, data, protocol, scores, sha256).

    Raises:
        KeyError: an unknown name (lists the shipped ones).
    """
    manifest = read_manifest()
    if name not in manifest:
        shipped = ", ".join(sorted(manifest)) or "none in this installation"
        raise KeyError(f"{name!r} is not a pretrained model (shipped: {shipped})")
    return dict(manifest[name])


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_pretrained(name: str) -> Path:
    """Check that the weights file of ``name`` has the manifest's sha256; return its path.

    Raises:
        KeyError: an unknown name.
        FileNotFoundError: the weights file is missing from the installation.
        ValueError: the file's sha256 differs from the manifest's.
    """
    entry = pretrained_info(name)
    path = store_folder() / entry["file"]
    if not path.is_file():
        raise FileNotFoundError(f"{path}: pretrained weights of {name!r} missing; reinstall hlfnet")
    actual = file_sha256(path)
    if actual != entry["sha256"]:
        raise ValueError(
            f"{path}: sha256 {actual[:16]}... does not match the manifest's {entry['sha256'][:16]}... "
            f"(the file was modified or truncated); reinstall hlfnet"
        )
    return path


def pretrained_table() -> str:
    """Markdown table of the shipped networks: protocol (its short name, before ``:``), input size, test scores."""
    rows = [
        "| pretrained | network | input (H×W) | protocol | test cases | Dice | Jaccard | accuracy | thresholded Jaccard |",
        "|---|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for name, entry in sorted(read_manifest().items()):
        scores = entry.get("scores", {}).get("test", {})
        size = entry["preprocessing"].get("image_size", ["?", "?"])

        def fmt(key: str, scores: dict = scores) -> str:
            return f"{scores[key]:.3f}" if key in scores else "–"

        rows.append(
            f"| {name} | {entry['network']['name']} | {size[0]}×{size[1]} | {entry.get('protocol', '?').split(':')[0]} "
            f"| {scores.get('cases', '–')} | {fmt('dice')} | {fmt('jaccard')} | {fmt('accuracy')} "
            f"| {fmt('thresholded_jaccard')} |"
        )
    return "\n".join(rows)
