"""The ``labels`` of a Medical Segmentation Decathlon ``dataset.json``: the classes an MSD dataset declares.

MSD writes labels value-first, ``{"0": "background", "1": "spleen"}`` (nnU-Net v2 writes them name-first, read by
:mod:`hlfnet.data.nnunet`). A dataset with several organs (``"1": "spleen", ..., "7": "pancreas"``) therefore
trains its seven organs without ``data.num_classes`` being set by hand, as nnU-Net's MSD conversion does.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

__all__ = ["DeclaredLabels", "read_msd_labels"]


@dataclass(frozen=True)
class DeclaredLabels:
    """The classes a ``dataset.json`` declares.

    Attributes:
        path: the ``dataset.json`` file.
        labels: ``(name, value)`` pairs sorted by value; the list index of a value is its class.
    """

    path: Path
    labels: tuple[tuple[str, int], ...]

    @property
    def label_values(self) -> tuple[int, ...]:
        """The stored value of every class, class order."""
        return tuple(v for _, v in self.labels)


def read_msd_labels(root: str | Path) -> DeclaredLabels | None:
    """The ``labels`` of ``<root>/dataset.json``; ``None`` when the file declares none. Cached until the file
    changes: every :class:`~hlfnet.data.DataConfig` of an MSD dataset (``dataclasses.replace`` included) asks.

    Raises:
        FileNotFoundError: no ``dataset.json``.
        ValueError: one line naming the file and the bad entry (a key that is not a class value, no background 0,
            a name that is not text).
    """
    path = Path(root).expanduser() / "dataset.json"
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: MSD dataset.json not found") from None
    return _cached(str(path), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=64)
def _cached(path: str, mtime_ns: int, size: int) -> DeclaredLabels | None:
    return _parse(Path(path))


def _parse(path: Path) -> DeclaredLabels | None:
    from hlfnet.limits import read_json

    meta = read_json(path, "MSD dataset.json")
    labels = meta.get("labels") if isinstance(meta, dict) else None
    if labels is None:
        return None
    if not isinstance(labels, dict) or len(labels) < 2:
        raise ValueError(
            f'{path}: \'labels\' must map at least two class values to names, e.g. {{"0": "background", "1": "spleen"}}'
        )
    pairs = []
    for key, name in labels.items():
        if (
            not (isinstance(key, str) and key.strip().isdigit())
            or not isinstance(name, str)
            or not name.strip()
        ):
            raise ValueError(
                f"{path}: labels entry {key!r}: {name!r} is not a class value mapped to a name "
                '(MSD writes {"0": "background", "1": "spleen"})'
            )
        pairs.append((name.strip(), int(key)))
    values = [v for _, v in pairs]
    if len(set(values)) != len(values):
        raise ValueError(f"{path}: two labels entries share one class value: {labels}")
    if 0 not in values:
        raise ValueError(f"{path}: 'labels' needs the background value \"0\", got {labels}")
    return DeclaredLabels(path, tuple(sorted(pairs, key=lambda pair: pair[1])))
