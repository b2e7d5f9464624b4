"""The train/val/test split: official folders when the layout has them, else a seeded split saved to a file.

A seeded split is made once, written to ``cfg.split_file`` (default under the cache root), and reused by every
later run with the same file — also when files were added to the folder since (they are ignored, with a
warning). For volume formats the split is at patient (volume) level, as in the paper (25/4/12 of 41).
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np

from hlfnet.atomic import atomic_write_bytes
from hlfnet.data.config import SPLITS, DataConfig
from hlfnet.data.layouts import Discovered, Pair, discover
from hlfnet.data.synthetic import synthetic_ids

__all__ = ["resolve_split", "split_counts", "default_split_path", "split_pairs", "write_json_atomic"]

logger = logging.getLogger(__name__)


def write_json_atomic(path: Path, data: object) -> None:
    """Write ``data`` as JSON atomically (:func:`hlfnet.atomic.atomic_write_bytes`)."""
    atomic_write_bytes(path, json.dumps(data, indent=1).encode())


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


def _read_split(path: Path, available: set[str]) -> dict[str, list[str]]:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: unreadable split file ({error})") from error
    if not isinstance(data, dict) or any(not isinstance(data.get(s), list) for s in SPLITS):
        raise ValueError(f"{path}: split file must map 'train', 'val', 'test' to lists of ids")
    split = {s: [str(i) for i in data[s]] for s in SPLITS}
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


def _file_split(cfg: DataConfig, found: Discovered) -> dict[str, list[str]]:
    if found.official:
        split = {s: [p.id for p in found.splits.get(s, [])] for s in SPLITS}
        if cfg.split_file:
            write_json_atomic(Path(cfg.split_file), {"source": "official folders", **split})
        return split
    ids = [p.id for p in found.splits[None]]
    path = Path(cfg.split_file).expanduser() if cfg.split_file else default_split_path(cfg)
    if path.is_file():
        logger.info("reusing split %s", path)
        return _read_split(path, set(ids))
    split = _seeded(ids, cfg)
    write_json_atomic(
        path,
        {
            "format": cfg.format,
            "root": str(cfg.root),
            "seed": cfg.seed,
            "fractions": list(cfg.fractions),
            **split,
        },
    )
    logger.info("seeded split %s saved to %s", {s: len(v) for s, v in split.items()}, path)
    return split


def resolve_split(cfg: DataConfig) -> dict[str, list[str]]:
    """The split in use: ``{"train": [...], "val": [...], "test": [...]}`` of sample ids.

    Ids are image ids for 2-D formats and volume ids (patients) for ``msd``/``nifti``. Official split folders
    win; otherwise the split file is reused, or a seeded split in the paper's proportions is made and saved.

    Raises:
        FileNotFoundError, ValueError: the data or the split file is unusable (named in the message).
    """
    if cfg.format == "synthetic":
        return {
            "train": synthetic_ids("train", cfg.synthetic_train),
            "val": synthetic_ids("val", cfg.synthetic_val),
            "test": synthetic_ids("test", cfg.synthetic_test),
        }
    return _file_split(cfg, discover(cfg))


def split_pairs(cfg: DataConfig, split: str, found: Discovered | None = None) -> list[Pair]:
    """The :class:`~hlfnet.data.layouts.Pair` records of one split, in id order."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    found = found or discover(cfg)
    if found.official:
        return sorted(found.splits.get(split, []), key=lambda p: p.id)
    ids = set(_file_split(cfg, found)[split])
    return sorted((p for p in found.all_pairs() if p.id in ids), key=lambda p: p.id)
