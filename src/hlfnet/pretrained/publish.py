"""Publishing a trained run as a shipped pretrained network: weights (float16), split and a manifest entry.

The step that replaces what ``pip install hlfnet`` ships (``hlfnet pretrained publish RUN --name NAME``). It
reads the run through :func:`hlfnet.experiment.load_run` and its evaluation summary, and writes only files of
the store that hlfnet wrote (:func:`hlfnet.atomic.owned_outputs`).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from hlfnet.pretrained import (
    MANIFEST_NAME,
    VALID_NAME,
    file_sha256,
    legacy_files,
    read_document,
    store_folder,
)

__all__ = ["publish_pretrained"]

logger = logging.getLogger(__name__)


def publish_pretrained(
    run: str | os.PathLike[str],
    name: str,
    protocol: str,
    split: str = "test",
    folder: str | os.PathLike[str] | None = None,
    replace: bool = False,
) -> Path:
    """Ship a trained run as pretrained ``name``: float16 safetensors + manifest entry (a deliberate step).

    The run must have been evaluated on ``split`` (``hlfnet evaluate RUN --split test``); its scores, metrics
    history, preprocessing and split go into the manifest.

    Args:
        run: the run folder.
        name: the pretrained name (lower case, digits, ``-`` and ``_``).
        protocol: a short description of how it was trained (e.g. ``"cpu: 96x128, 24 epochs"``).
        split: the evaluated split whose scores are recorded.
        folder: where to write (default: the installed package's folder, i.e. ``src/hlfnet/pretrained`` in a
            development install).
        replace: replace an existing entry of the same name.

    Returns:
        The weights file written.

    Raises:
        FileExistsError: ``name`` exists and ``replace`` is false. FileNotFoundError: no evaluation of ``split``.
    """
    from hlfnet.atomic import claim_outputs, owned_outputs
    from hlfnet.evaluation.compare import summary_path
    from hlfnet.experiment.run_folder import load_run
    from hlfnet.limits import read_json

    if not VALID_NAME.match(name):
        raise ValueError(f"pretrained name {name!r}: use lower-case letters, digits, '-' and '_'")
    folder = Path(folder) if folder is not None else store_folder()
    document = read_document(folder)
    manifest = dict(document.get("models", {}))
    if name in manifest and not replace:
        raise FileExistsError(f"{folder / MANIFEST_NAME}: {name!r} is already shipped (pass replace=True)")
    weights, split_file = folder / f"{name}.safetensors", f"{name}.split.json"
    files = [MANIFEST_NAME, weights.name, split_file]
    legacy = legacy_files(document)
    # a manifest, weights or split hlfnet did not write are never replaced; its own weights only with --replace
    claim_outputs(folder, files[:1], overwrite=True, legacy=legacy, kind="pretrained")
    claim_outputs(
        folder, files[1:], overwrite=replace, legacy=legacy, kind="pretrained", hint="pass --replace"
    )
    loaded = load_run(run)
    if loaded.root is None:
        raise ValueError(f"{run}: publish a run folder (it needs config.yaml, split.json and its evaluation)")
    summary_file = summary_path(loaded.root, split)
    if not summary_file.is_file():
        raise FileNotFoundError(
            f"{summary_file}: evaluate first (hlfnet evaluate {loaded.root} --split {split})"
        )
    summary = read_json(summary_file, "evaluation summary")
    with owned_outputs(folder, files, "pretrained", overwrite=True, legacy=legacy):
        _publish(loaded, summary, name, protocol, split, folder, document, manifest)
    return weights


def _publish(
    loaded: Any,
    summary: dict[str, Any],
    name: str,
    protocol: str,
    split: str,
    folder: Path,
    document: dict[str, Any],
    manifest: dict[str, Any],
) -> None:
    import subprocess

    import torch
    from safetensors.torch import save_file

    from hlfnet.atomic import atomic_path, atomic_write_bytes
    from hlfnet.data.splits import write_split
    from hlfnet.experiment.run_folder import read_metrics_csv

    original = summary["levels"]["original"]
    scores = {
        "split": split,
        "cases": summary["cases"],
        "dice": original["dice"],
        "jaccard": original["jaccard"],
        "accuracy": original["accuracy"],
        # ISIC's column, present in evaluations of ISIC data only (hlfnet.evaluation.evaluate.task_metrics)
        **(
            {"thresholded_jaccard": original["thresholded_jaccard"]}
            if "thresholded_jaccard" in original
            else {}
        ),
        "settings": {k: v for k, v in summary.get("settings", {}).items() if k != "weights"},
    }
    weights = folder / f"{name}.safetensors"
    state = {k: v.detach().to(torch.float16).contiguous() for k, v in loaded.model.state_dict().items()}
    with atomic_path(weights, folder) as tmp:
        save_file(state, str(tmp), metadata={"model_name": loaded.model_name, "pretrained": name})
    split_file = f"{name}.split.json"
    if loaded.split is not None:
        write_split(folder / split_file, loaded.split, root=folder)
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    config = loaded.config or {}
    metrics_csv = loaded.root / "metrics.csv"
    history = read_metrics_csv(metrics_csv) if metrics_csv.is_file() else []
    data = dict(loaded.data)
    entry = {
        "file": weights.name,
        "sha256": file_sha256(weights),
        "storage": "float16",
        "network": {"name": loaded.model_name, "kwargs": loaded.model.model_kwargs},
        "preprocessing": data,
        "training_data": {
            "format": data.get("format"),
            "root": data.get("root"),
            "counts": {k: len(v) for k, v in (loaded.split or {}).items()},
        },
        "split_file": split_file if loaded.split is not None else None,
        "protocol": protocol,
        "config": {k: config.get(k) for k in ("name", "seed", "model", "train")},
        "best_epoch": loaded.info.get("best_epoch"),
        "code_commit": commit,
        "scores": {split: scores, "val": {"dice": loaded.info.get("best_val_dice")}},
        "history": history,
    }
    manifest[name] = entry
    text = json.dumps({**document, "models": manifest}, indent=1) + "\n"  # the file's other keys are kept
    atomic_write_bytes(folder / MANIFEST_NAME, text.encode(), folder)
    logger.info("published %s as %s (%.1f MB)", loaded.root, weights, weights.stat().st_size / 1e6)
