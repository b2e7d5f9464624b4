"""Pretrained networks that ship inside the package: weights + a manifest, loaded by name, no network access.

``src/hlfnet/pretrained/`` holds ``manifest.json`` and one ``<name>.safetensors`` per entry (float16 storage,
loaded as float32). Each manifest entry records the file's sha256, the network and its arguments, the
preprocessing it was trained with, the training data and split, the protocol, the code commit and the measured
scores. Loading verifies the hash and refuses a mismatch.

Example:
    >>> from hlfnet.pretrained import load_pretrained  # doctest: +SKIP
    >>> loaded = load_pretrained("hlfnet-isic2017")    # doctest: +SKIP
    >>> loaded.model, loaded.data["image_size"]        # doctest: +SKIP

Every command that takes a run folder (``predict --model``, ``evaluate``, ``report``, ``export``) also takes a
pretrained name, through :func:`hlfnet.evaluation.run.load_run`. Replacing shipped weights is a deliberate step:
:func:`publish_pretrained` (``hlfnet pretrained publish``).
"""

from __future__ import annotations

import hashlib
import json
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
    "load_pretrained",
    "pretrained_info",
    "pretrained_table",
    "publish_pretrained",
    "verify_pretrained",
]

logger = logging.getLogger(__name__)

#: What ``hlfnet serve`` and the README use when no model is named.
DEFAULT_PRETRAINED = "hlfnet-isic2017"
MANIFEST_NAME = "manifest.json"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


def _folder() -> Path:
    """The package's own folder, or ``$HLFNET_PRETRAINED_DIR`` (a site's own model store; the tests' too)."""
    override = os.environ.get("HLFNET_PRETRAINED_DIR")
    return Path(override) if override else Path(str(resources.files("hlfnet.pretrained")))


def _document(folder: Path | None = None) -> dict[str, Any]:
    """The whole manifest file (``{"models": {...}, ...}``; other keys are kept when publishing)."""
    from hlfnet.limits import read_json

    path = (folder or _folder()) / MANIFEST_NAME
    if not path.is_file():
        return {}
    manifest = read_json(path, "pretrained manifest")
    if not isinstance(manifest, dict) or not isinstance(manifest.get("models", {}), dict):
        raise ValueError(f"{path}: expected {{'models': {{name: entry}}}}; reinstall hlfnet")
    return manifest


def _manifest(folder: Path | None = None) -> dict[str, dict[str, Any]]:
    return _document(folder).get("models", {})


def _legacy_files(document: dict[str, Any]) -> list[str]:
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
    return sorted(_manifest())


def is_pretrained_name(reference: str | os.PathLike[str]) -> bool:
    """Whether ``reference`` names a shipped pretrained network (a path that exists always wins)."""
    text = str(reference)
    return not Path(text).exists() and text in _manifest()


def pretrained_info(name: str) -> dict[str, Any]:
    """The manifest entry of ``name`` (network, preprocessing, data, protocol, scores, sha256).

    Raises:
        KeyError: an unknown name (lists the shipped ones).
    """
    manifest = _manifest()
    if name not in manifest:
        shipped = ", ".join(sorted(manifest)) or "none in this installation"
        raise KeyError(f"{name!r} is not a pretrained model (shipped: {shipped})")
    return dict(manifest[name])


def _sha256(path: Path) -> str:
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
    path = _folder() / entry["file"]
    if not path.is_file():
        raise FileNotFoundError(f"{path}: pretrained weights of {name!r} missing; reinstall hlfnet")
    actual = _sha256(path)
    if actual != entry["sha256"]:
        raise ValueError(
            f"{path}: sha256 {actual[:16]}... does not match the manifest's {entry['sha256'][:16]}... "
            f"(the file was modified or truncated); reinstall hlfnet"
        )
    return path


def load_pretrained(name: str, map_location: str = "cpu") -> Any:
    """Load a shipped network by name, with the preprocessing it was trained with.

    Args:
        name: a name from :func:`list_pretrained`, e.g. ``"hlfnet-isic2017"``.
        map_location: device for the weights.

    Returns:
        A :class:`hlfnet.evaluation.run.LoadedRun`: ``.model`` (float32, eval mode), ``.data`` (the
        preprocessing as a ``DataConfig`` dictionary), ``.info`` (the manifest entry), ``.split`` (the training
        split's ids when shipped), ``.root`` ``None``.

    Raises:
        KeyError: an unknown name. ValueError: a weights file whose sha256 differs from the manifest's.
    """
    from safetensors.torch import load_file

    from hlfnet.data.splits import read_split
    from hlfnet.evaluation.run import LoadedRun
    from hlfnet.models import create_model
    from hlfnet.models.io import load_checked_state

    entry = pretrained_info(name)
    path = verify_pretrained(name)
    network = entry["network"]
    model = create_model(network["name"], **network["kwargs"])
    state = {k: v.float() for k, v in load_file(str(path), device=map_location).items()}
    load_checked_state(model, state, path, f"{network['name']!r} {network['kwargs']}")
    split = read_split(_folder() / entry["split_file"]) if entry.get("split_file") else None
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


def pretrained_table() -> str:
    """Markdown table of the shipped networks: protocol (its short name, before ``:``), input size, test scores."""
    rows = [
        "| pretrained | network | input (H×W) | protocol | test cases | Dice | Jaccard | accuracy | thresholded Jaccard |",
        "|---|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for name, entry in sorted(_manifest().items()):
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
    from hlfnet.evaluation.run import load_run
    from hlfnet.limits import read_json

    if not _NAME.match(name):
        raise ValueError(f"pretrained name {name!r}: use lower-case letters, digits, '-' and '_'")
    folder = Path(folder) if folder is not None else _folder()
    document = _document(folder)
    manifest = dict(document.get("models", {}))
    if name in manifest and not replace:
        raise FileExistsError(f"{folder / MANIFEST_NAME}: {name!r} is already shipped (pass replace=True)")
    weights, split_file = folder / f"{name}.safetensors", f"{name}.split.json"
    files = [MANIFEST_NAME, weights.name, split_file]
    legacy = _legacy_files(document)
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
    from hlfnet.engine.callbacks import read_metrics_csv

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
        "sha256": _sha256(weights),
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
