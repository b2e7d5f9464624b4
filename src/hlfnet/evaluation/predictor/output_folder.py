"""The output folder of ``hlfnet predict``: overwrite and resume policy, and the manifest ``predictions.json``.

The policy is :mod:`hlfnet.atomic`'s: a folder holding predictions is refused unless ``overwrite``, and then only
the files hlfnet wrote there (listed in its marker) are replaced. A run killed half-way leaves the marker in
state ``running`` with the *signature* of its model, inputs and options; a rerun with the same signature keeps
the masks already written and predicts only the others. ``predictions.json`` records the model, inputs,
options and preprocessing of the predictions in the folder.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from hlfnet.atomic import (
    atomic_write_bytes,
    check_target,
    claim_outputs,
    clean_temporaries,
    read_marker,
    record_outputs,
)

__all__ = ["MANIFEST_NAME", "prepare_output", "prediction_signature", "write_manifest"]

#: The manifest of an output folder: model, inputs, options and preprocessing of its predictions.
MANIFEST_NAME = "predictions.json"


def prediction_signature(facts: dict[str, Any]) -> str:
    """A short hash of what decides the predictions: a rerun with the same signature may finish a killed one."""
    return hashlib.sha256(json.dumps(facts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def prepare_output(output: Path, planned: list[str], overwrite: bool, signature: str) -> set[str]:
    """Apply the output policy to ``output`` before predicting into it, and mark it ``running``.

    The caller holds the folder's lock (:func:`hlfnet.atomic.folder_lock`) from here until the predictions
    are complete.

    Args:
        output: the output folder (created when missing).
        planned: every entry the predictions will write, relative to ``output``.
        overwrite: replace predictions hlfnet wrote earlier.
        signature: :func:`prediction_signature` of this run.

    Returns:
        The masks that a killed run with the same signature completed (kept, and skipped by this run).

    Raises:
        FileExistsError: ``output`` is a file, or holds predictions and ``overwrite`` is false.
        OutputRefused: a planned target is a symlink or a file hlfnet did not write.
    """
    if os.path.lexists(output) and not output.is_dir():
        raise FileExistsError(f"{output}: exists and is not a folder")
    clean_temporaries(output, recursive=True)
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
    if output.is_dir():
        claim_outputs(
            output,
            planned,
            overwrite=overwrite,
            legacy=legacy_outputs(output, marker),
            what="predictions",
            kind="predictions",
        )
    record_outputs(output, planned, "predictions", status="running", signature=signature)
    return set()


def legacy_outputs(output: Path, marker: dict[str, Any] | None) -> list[str]:
    """Predictions written before the marker existed: those their ``predictions.json`` lists (or none)."""
    manifest = output / MANIFEST_NAME
    if marker is not None or not manifest.is_file() or manifest.is_symlink():
        return []
    try:
        return [MANIFEST_NAME, *json.loads(manifest.read_text()).get("files", [])]
    except (OSError, ValueError, AttributeError):
        return []


def write_manifest(output: Path, manifest: dict[str, Any]) -> None:
    """Write ``output/predictions.json`` atomically."""
    atomic_write_bytes(output / MANIFEST_NAME, json.dumps(manifest, indent=2).encode(), root=output)
