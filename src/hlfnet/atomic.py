"""The one output policy of hlfnet: every file it writes goes through here.

* **Atomic**: a temporary file beside the target, fsync, ``os.replace``; the file gets the permissions a plain
  ``open()`` would give (``mkstemp`` makes them owner-only). A reader, or a rerun after a kill, never sees a
  partial file under its final name. Leftover temporaries (``.<name>.*.tmp``) are removed by
  :func:`clean_temporaries` when the next run starts in that folder.
* **No symlinks, no escapes**: the target is never a symbolic link (it is refused, not followed), never a
  folder, and — given the output folder ``root`` — never outside ``root`` nor below a symlinked sub-folder of
  it (:func:`check_target`).
* **Only our own files are replaced**: output and run folders carry a marker, ``.hlfnet-output.json``, listing
  the entries hlfnet wrote there. ``--overwrite`` (or a re-evaluation) replaces only those; any other file is
  refused, named (:func:`claim_outputs`, :func:`clear_owned`).

Run folders, splits, weights, checkpoints, predictions, evaluations, reports and exports all use it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hlfnet.errors import OutputRefused

__all__ = [
    "MARKER",
    "atomic_path",
    "atomic_write_bytes",
    "check_target",
    "claim_outputs",
    "clean_temporaries",
    "clear_owned",
    "foreign_entries",
    "is_temporary",
    "owned_entries",
    "read_marker",
    "record_outputs",
]

#: The marker file listing what hlfnet wrote into an output or run folder.
MARKER = ".hlfnet-output.json"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _absolute(path: str | os.PathLike[str]) -> Path:
    # Lexical: symlinks are inspected one by one below, never resolved away.
    return Path(os.path.abspath(path))


def check_target(path: str | os.PathLike[str], root: str | os.PathLike[str] | None = None) -> Path:
    """Check that ``path`` may be written; returns it as an absolute path.

    Args:
        path: the file to write.
        root: the output folder ``path`` must stay inside (``None``: no containment check).

    Raises:
        OutputRefused: ``path`` is a symbolic link or a folder, lies outside ``root``, or a folder between
            ``root`` and ``path`` is a symbolic link or a file.
    """
    path = _absolute(path)
    if root is not None:
        root = _absolute(root)
        if path == root or root not in path.parents:
            raise OutputRefused(f"{path}: outside the output folder {root}; refusing to write there")
        current = root
        for part in path.relative_to(root).parts[:-1]:
            current = current / part
            if current.is_symlink():
                raise OutputRefused(
                    f"{current}: is a symbolic link inside the output folder; hlfnet never writes through "
                    "links (remove it or choose another output folder)"
                )
    if path.is_symlink():
        raise OutputRefused(
            f"{path}: is a symbolic link; hlfnet never writes through links (remove it or choose another "
            "output folder)"
        )
    if path.is_dir():
        raise OutputRefused(f"{path}: is a folder; give the path of a file to write")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise OutputRefused(f"{parent}: is a file, not a folder; cannot write {path} below it")
            break
    return path


@contextmanager
def atomic_path(
    path: str | os.PathLike[str], root: str | os.PathLike[str] | None = None, suffix: str = ""
) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` atomically.

    The temporary file is fsynced and gets the permissions a plain ``open()`` would give (``mkstemp`` makes
    files owner-only); on any error it is removed and ``path`` is left as it was.

    Args:
        path: the file to write.
        root: the output folder the file must stay inside (see :func:`check_target`).
        suffix: end of the temporary name after ``.tmp``, for writers that choose the format by the file name
            (``".nii.gz"``).

    Raises:
        OutputRefused: see :func:`check_target`.
    """
    path = check_target(path, root)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=f".tmp{suffix}")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(
    path: str | os.PathLike[str], data: bytes, root: str | os.PathLike[str] | None = None
) -> None:
    """Write ``data`` to ``path`` so that a reader (or a resume after a crash) never sees a partial file."""
    with atomic_path(path, root) as tmp:
        tmp.write_bytes(data)


#: ``.<name>.<8 random characters>.tmp[suffix]``: what :func:`atomic_path` (``mkstemp``) and the cache's
#: ``mkdtemp`` name their temporaries.
_TEMPORARY = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp(\.[A-Za-z0-9.]+)?$")


def is_temporary(name: str) -> bool:
    """True for the name of a temporary file hlfnet writes before renaming it into place."""
    return bool(_TEMPORARY.match(name))


def clean_temporaries(folder: str | os.PathLike[str], recursive: bool = False) -> list[Path]:
    """Remove the temporaries (``.<name>.*.tmp``) a killed hlfnet left in ``folder``; returns what went.

    Symbolic links are removed as links (never followed); ``recursive`` also cleans sub-folders (not through
    links).
    """
    folder = Path(folder)
    removed: list[Path] = []
    if not folder.is_dir() or folder.is_symlink():
        return removed
    for entry in list(folder.iterdir()):
        if is_temporary(entry.name):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed.append(entry)
        elif recursive and entry.is_dir() and not entry.is_symlink():
            removed += clean_temporaries(entry, recursive=True)
    return removed


def read_marker(folder: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The marker of ``folder`` (``None`` without one; an unreadable marker counts as none)."""
    path = Path(folder) / MARKER
    if path.is_symlink() or not path.is_file():
        return None
    try:
        marker = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) and isinstance(marker.get("files"), list) else None


def owned_entries(folder: str | os.PathLike[str], legacy: Iterable[str] = ()) -> set[str]:
    """Names (relative paths) hlfnet wrote into ``folder``: the marker's list, or ``legacy`` without marker.

    ``legacy`` names the files an hlfnet from before the marker wrote there, so that old run folders stay
    usable; it is used only when the folder has no marker.
    """
    marker = read_marker(folder)
    if marker is None:
        return set(legacy)
    return {str(name) for name in marker["files"]}


def record_outputs(folder: str | os.PathLike[str], names: Iterable[str], kind: str, **extra: Any) -> None:
    """Add ``names`` (relative paths) to the marker of ``folder``, creating it; other keys are merged in."""
    folder = Path(folder)
    marker = read_marker(folder) or {"tool": "hlfnet", "kind": kind, "files": []}
    files = list(dict.fromkeys([*marker["files"], *(str(n) for n in names)]))
    marker.update(extra)
    marker["files"] = files
    atomic_write_bytes(folder / MARKER, json.dumps(marker, indent=1).encode(), root=folder)


def claim_outputs(
    folder: str | os.PathLike[str],
    names: Iterable[str],
    *,
    overwrite: bool,
    legacy: Iterable[str] = (),
    hint: str = "pass --overwrite to replace them",
    what: str = "hlfnet outputs",
) -> list[str]:
    """Check that the files ``names`` may be written into ``folder``; returns those that already exist.

    Raises:
        OutputRefused: an existing target that hlfnet did not write (not in the marker), or one that is a
            symbolic link or folder.
        FileExistsError: targets exist and ``overwrite`` is false.
    """
    folder = Path(folder)
    names = [str(n) for n in names]
    for name in names:
        check_target(folder / name, folder)
    existing = [n for n in names if os.path.lexists(folder / n)]
    if not existing:
        return []
    owned = owned_entries(folder, legacy)
    foreign = [n for n in existing if n not in owned]
    if foreign:
        raise OutputRefused(
            f"{folder / foreign[0]}: exists and was not written by hlfnet"
            f"{f' (and {len(foreign) - 1} more)' if len(foreign) > 1 else ''}; not replacing it even with "
            "--overwrite (move it away or choose another output folder)"
        )
    if not overwrite:
        more = f" and {len(existing) - 1} more" if len(existing) > 1 else ""
        raise FileExistsError(
            f"{folder}: already holds {what} (e.g. {existing[0]}{more}); {hint}, or choose another output folder"
        )
    return existing


def foreign_entries(
    folder: str | os.PathLike[str], legacy: Iterable[str] = (), nested: dict[str, Iterable[str]] | None = None
) -> list[Path]:
    """Entries of ``folder`` hlfnet did not write (temporaries and the marker excepted).

    Args:
        folder: the folder.
        legacy: names hlfnet writes there, used when the folder has no marker.
        nested: for owned sub-folders, the names allowed inside them (e.g. ``{"checkpoints": ["last.ckpt"]}``).
    """
    folder = Path(folder)
    owned = owned_entries(folder, legacy)
    foreign: list[Path] = []
    for entry in sorted(folder.iterdir()):
        name = entry.name
        if name == MARKER or is_temporary(name):
            continue
        if name not in owned:
            foreign.append(entry)
        elif nested and name in nested and entry.is_dir() and not entry.is_symlink():
            allowed = set(nested[name])
            foreign += [
                e for e in sorted(entry.iterdir()) if e.name not in allowed and not is_temporary(e.name)
            ]
    return foreign


def clear_owned(
    folder: str | os.PathLike[str], legacy: Iterable[str] = (), nested: dict[str, Iterable[str]] | None = None
) -> None:
    """Delete what hlfnet wrote in ``folder`` (the marker's entries), keeping the folder; refuse anything else.

    Links are removed as links, never followed.

    Raises:
        OutputRefused: the folder holds entries hlfnet did not write (named; nothing is deleted).
    """
    folder = Path(folder)
    foreign = foreign_entries(folder, legacy, nested)
    if foreign:
        raise OutputRefused(
            f"{foreign[0]}: was not written by hlfnet"
            f"{f' (and {len(foreign) - 1} more entries)' if len(foreign) > 1 else ''}; refusing to overwrite "
            f"{folder} (move it away or choose another folder)"
        )
    for entry in list(folder.iterdir()):
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
