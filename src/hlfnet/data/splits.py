"""The train/val/test split: official folders when the layout has them, else a seeded split saved to a file.

A seeded split is made once, written to ``cfg.split_file`` (default under the cache root), and reused by every
later run with the same file — also when files were added to the folder since (they are ignored, with a
warning). For volume formats the split is at patient (volume) level, as in the paper (25/4/12 of 41).

Every split file hlfnet reads or writes — these, a run folder's ``split.json``, a pretrained network's
``<name>.split.json`` — goes through :func:`read_split` and :func:`write_split`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from hlfnet.atomic import atomic_write_bytes
from hlfnet.data.config import SPLITS, DataConfig
from hlfnet.data.folds import ALL_FOLDS, fold_split, training_pool
from hlfnet.data.layouts import Discovered, Pair, discover
from hlfnet.data.synthetic import synthetic_ids
from hlfnet.limits import read_json

__all__ = ["resolve_split", "split_counts", "default_split_path", "split_pairs", "read_split", "write_split"]

logger = logging.getLogger(__name__)

#: data roots whose one-training-case warning was already logged in this process
_SAID_ONE_CASE: set[str] = set()

_SHAPE = "a split maps 'train', 'val' and 'test' to lists of ids"


def _is_id(value: object) -> bool:
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


def _checked(split: Any, source: object) -> dict[str, list[str]]:
    """``split``'s three lists of ids (as strings), or a one-line ``ValueError`` naming ``source``."""
    if not isinstance(split, Mapping) or any(
        not isinstance(split.get(s), list) or not all(_is_id(i) for i in split[s]) for s in SPLITS
    ):
        raise ValueError(f"{source}: {_SHAPE}")
    return {s: [str(i) for i in split[s]] for s in SPLITS}


def read_split(path: str | os.PathLike[str], available: set[str] | None = None) -> dict[str, list[str]]:
    """Read a split file: ``{"train": [ids], "val": [ids], "test": [ids]}``, ids in the file's order.

    Other keys (what a seeded split records: ``format``, ``root``, ``seed``, ``fractions``, ``source``) are
    left out of the result.

    Args:
        path: the JSON file.
        available: the ids the data holds; when given, the file must list each id at most once and only ids
            of the data (ids of the data the file does not list are ignored, with a warning).

    Raises:
        FileNotFoundError: no such file.
        ValueError: unreadable, not JSON, not that shape, or (with ``available``) repeated or unknown ids; one
            line naming the file.
    """
    path = Path(path)
    data = read_json(path, "split file")
    split = _checked(data, path)
    if available is None:
        return split
    listed = [i for s in SPLITS for i in split[s]]
    if len(set(listed)) != len(listed):
        raise ValueError(f"{path}: an id appears twice in the split")
    missing = sorted(set(listed) - available)
    if missing:
        raise ValueError(
            f"{path}: split lists {len(missing)} id(s) not found in the data, e.g. {missing[:5]}"
        )
    extra = available - set(listed)
    if extra:
        logger.warning(
            "%s: %d sample(s) in the data are not in the saved split and are ignored", path, len(extra)
        )
    return split


def write_split(
    path: str | os.PathLike[str],
    split: Mapping[str, list[str]],
    extra: Mapping[str, Any] | None = None,
    root: str | os.PathLike[str] | None = None,
) -> Path:
    """Write a split file atomically (:func:`hlfnet.atomic.atomic_write_bytes`); :func:`read_split` reads it.

    Args:
        path: the JSON file to write.
        split: ``{"train": [ids], "val": [ids], "test": [ids]}``.
        extra: facts recorded before the ids (e.g. the seed); :func:`read_split` leaves them out.
        root: the folder ``path`` must stay inside, never below a link (:func:`hlfnet.atomic.check_target`).

    Returns:
        ``path``.

    Raises:
        ValueError: ``split`` is not that shape.
    """
    path = Path(path)
    data = {**(extra or {}), **_checked(split, path)}
    atomic_write_bytes(path, (json.dumps(data, indent=1) + "\n").encode(), root)
    return path


def split_counts(n: int, fractions: tuple[float, float, float]) -> tuple[int, int, int]:
    """Sizes of a seeded split of ``n`` items: val and test rounded from their fractions, train ≥ 1 the rest.

    ``split_counts(41, (25/41, 4/41, 12/41)) == (25, 4, 12)``; ``split_counts(1, ...) == (1, 0, 0)``.
    """
    if n < 1:
        raise ValueError(f"cannot split {n} items")
    n_val = int(round(n * fractions[1]))
    n_test = int(round(n * fractions[2]))
    while n - n_val - n_test < 1:
        if n_test >= n_val and n_test > 0:
            n_test -= 1
        else:
            n_val -= 1
    return n - n_val - n_test, n_val, n_test


def default_split_path(cfg: DataConfig) -> Path:
    """``<cache root>/splits/<format>-<hash of root>-seed<seed>.json``."""
    digest = hashlib.sha1(str(Path(cfg.root or "").expanduser().resolve()).encode()).hexdigest()[:12]
    return cfg.cache_root / "splits" / f"{cfg.format}-{digest}-seed{cfg.seed}.json"


def _seeded(ids: list[str], cfg: DataConfig) -> dict[str, list[str]]:
    n_train, n_val, _ = split_counts(len(ids), cfg.fractions)
    order = np.random.default_rng(cfg.seed).permutation(len(ids))
    shuffled = [ids[i] for i in order]
    return {
        "train": sorted(shuffled[:n_train]),
        "val": sorted(shuffled[n_train : n_train + n_val]),
        "test": sorted(shuffled[n_train + n_val :]),
    }


def _file_split(cfg: DataConfig, found: Discovered) -> dict[str, list[str]]:
    if found.official:
        split = {s: [p.id for p in found.splits.get(s, [])] for s in SPLITS}
        if cfg.split_file:
            write_split(Path(cfg.split_file).expanduser(), split, {"source": "official folders"})
        return split
    ids = [p.id for p in found.splits[None]]
    path = Path(cfg.split_file).expanduser() if cfg.split_file else default_split_path(cfg)
    if path.is_file():
        logger.info("reusing split %s", path)
        return read_split(path, set(ids))
    split = _seeded(ids, cfg)
    write_split(
        path,
        split,
        {"format": cfg.format, "root": str(cfg.root), "seed": cfg.seed, "fractions": list(cfg.fractions)},
        root=None if cfg.split_file else cfg.cache_root,  # the cache's splits/ is never a link
    )
    logger.info("seeded split %s saved to %s", {s: len(v) for s, v in split.items()}, path)
    return split


def resolve_split(cfg: DataConfig) -> dict[str, list[str]]:
    """The split in use: ``{"train": [...], "val": [...], "test": [...]}`` of sample ids.

    Ids are image ids for 2-D formats and volume ids (patients) for ``msd``/``nifti``. Official split folders
    win; otherwise the split file is reused, or a seeded split in the paper's proportions is made and saved.
    With ``cfg.fold`` set, that split's train + val cases are cut into cross-validation folds
    (:func:`hlfnet.data.folds.fold_split`); its test cases stay the test split.

    Raises:
        FileNotFoundError, ValueError: the data or the split file is unusable (named in the message).
    """
    if cfg.format == "synthetic":
        return {split: synthetic_ids(split, cfg.synthetic_count(split)) for split in SPLITS}
    return _split_in_use(cfg, discover(cfg))


def _split_in_use(cfg: DataConfig, found: Discovered) -> dict[str, list[str]]:
    """The layout's (or the seeded) split, cut to ``cfg.fold`` when cross-validating."""
    split = _file_split(cfg, found)
    if cfg.fold is None and not split["val"] and len(training_pool(split)) == 1:
        # one training case (one patient's volume): nothing can be held out, so it is trained and validated on,
        # as nnU-Net's fold "all"; the validation score is then a training fit, and the log says so (once)
        if str(cfg.root) not in _SAID_ONE_CASE:
            _SAID_ONE_CASE.add(str(cfg.root))
            logger.warning(
                "%s: one training case (%s): training and validating on it (data.fold=all); its validation "
                "scores measure the fit, not generalisation",
                cfg.root,
                training_pool(split)[0],
            )
        return fold_split(split, cfg.num_folds, ALL_FOLDS, cfg.seed)
    if cfg.fold is None:
        return split
    return fold_split(split, cfg.num_folds, cfg.fold, cfg.seed)


def split_pairs(cfg: DataConfig, split: str, found: Discovered | None = None) -> list[Pair]:
    """The :class:`~hlfnet.data.layouts.Pair` records of one split, in id order."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    found = found or discover(cfg)
    if found.official and cfg.fold is None:
        return sorted(found.splits.get(split, []), key=lambda p: p.id)
    ids = set(_split_in_use(cfg, found)[split])
    if found.official:  # folds: train and val come from the train/ and val/ folders, test from test/
        folders = ("test",) if split == "test" else ("train", "val")
        candidates = [p for name in folders for p in found.splits.get(name, [])]
    else:
        candidates = found.all_pairs()
    return sorted((p for p in candidates if p.id in ids), key=lambda p: p.id)
