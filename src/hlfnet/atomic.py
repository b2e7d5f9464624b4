"""The one output policy of hlfnet: every file it writes goes through here.

* **Atomic**: a temporary file beside the target, fsync, ``os.replace``; the file gets the permissions a plain
  ``open()`` would give (``mkstemp`` makes them owner-only). A reader, or a rerun after a kill, never sees a
  partial file under its final name. Temporaries are named ``.<name>.hlfnet-<8 random>.tmp`` (the ``hlfnet-``
  tag: a name only hlfnet makes). :func:`clean_temporaries` removes those a killed run left, and only those
  whose target the folder's marker records, only plain files, and only while holding the folder's lock.
* **One writer per folder**: :func:`folder_lock` takes an exclusive ``flock`` on ``<folder>/.hlfnet-lock``;
  a second command writing into the same folder is refused (naming the folder and the holder's pid) before
  it changes anything.
* **No symlinks, no escapes**: the target is never a symbolic link (it is refused, not followed), never a
  folder, and — given the output folder ``root`` — never outside ``root`` nor below a symlinked sub-folder of
  it (:func:`check_target`).
* **Only our own files are replaced**: output and run folders carry a marker, ``.hlfnet-output.json``, listing
  the entries hlfnet wrote there. ``--overwrite`` (or a re-evaluation) replaces only those; any other file is
  refused, named (:func:`claim_outputs`, :func:`clear_owned`). The marker records the *kind* of each entry
  (the command that wrote it: ``run``, ``predictions``, ``export``...); a command replaces only entries of its
  own kind, so ``export --overwrite --output RUN/model.safetensors`` cannot replace a run's weights.
  :func:`owned_outputs` is the one way to do all of it: lock, claim, record.

Run folders, splits, weights, checkpoints, predictions, evaluations, reports and exports all use it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hlfnet.errors import OutputRefused

__all__ = [
    "LOCK",
    "MARKER",
    "TEMPORARY_TAG",
    "atomic_path",
    "check_tree",
    "atomic_write_bytes",
    "check_target",
    "claim_outputs",
    "clean_temporaries",
    "clear_owned",
    "folder_lock",
    "foreign_entries",
    "is_temporary",
    "owned_entries",
    "owned_outputs",
    "temporary_prefix",
    "read_marker",
    "record_outputs",
]

#: The marker file listing what hlfnet wrote into an output or run folder.
MARKER = ".hlfnet-output.json"
#: The lock file of an output or run folder (:func:`folder_lock`); never replaced or deleted by hlfnet.
LOCK = ".hlfnet-lock"
#: Between the target's name and the random part of every temporary hlfnet makes.
TEMPORARY_TAG = "hlfnet-"
#: Bytes of the target's name kept in a temporary's name, so that the temporary of a 255-byte name still fits
#: a file system's name limit (``NAME_MAX``).
_TEMPORARY_NAME_BYTES = 160


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


def check_tree(folder: str | os.PathLike[str], root: str | os.PathLike[str]) -> Path:
    """Check that hlfnet, or a library writing for it (Lightning's loggers and checkpoints), may write below
    ``folder``: no symbolic link between ``root`` and ``folder``, nor anywhere inside ``folder``.

    Returns ``folder`` as an absolute path.

    Raises:
        OutputRefused: naming the first symbolic link (or a file where a folder is expected).
    """
    folder = _absolute(folder)
    check_target(folder / "x", root)
    if os.path.lexists(folder) and not folder.is_dir():
        raise OutputRefused(f"{folder}: is a file, not a folder; cannot write below it")
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        for name in sorted(dirnames + filenames):
            entry = Path(dirpath) / name
            if entry.is_symlink():
                raise OutputRefused(
                    f"{entry}: is a symbolic link inside the output folder; hlfnet never writes through links "
                    "(remove it or choose another output folder)"
                )
    return folder


def temporary_prefix(name: str) -> str:
    """``.<name>.hlfnet-``: the start of the temporaries of ``name`` (long names cut to fit ``NAME_MAX``)."""
    kept = name.encode("utf-8", "surrogateescape")[:_TEMPORARY_NAME_BYTES].decode("utf-8", "ignore")
    return f".{kept}.{TEMPORARY_TAG}"


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
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=temporary_prefix(path.name), suffix=f".tmp{suffix}")
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


#: ``.<name>.hlfnet-<8 random characters>.tmp[suffix]``: what :func:`atomic_path` (``mkstemp``) and the
#: cache's ``mkdtemp`` name their temporaries.
_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.hlfnet-[a-z0-9_]{8}\.tmp(\.[A-Za-z0-9.]+)?$")


def is_temporary(name: str) -> bool:
    """True for the name of a temporary file hlfnet writes before renaming it into place."""
    return bool(_TEMPORARY.match(name))


def _temporary_target(name: str) -> str | None:
    """The (possibly cut) name of the file a temporary was going to become."""
    match = _TEMPORARY.match(name)
    return None if match is None else match.group("name")


def clean_temporaries(folder: str | os.PathLike[str], recursive: bool = False) -> list[Path]:
    """Remove the temporaries a killed hlfnet left in ``folder``; returns what went.

    Only plain files named by :func:`atomic_path` whose target the marker of ``folder`` records (or the marker
    itself) are removed: never a folder, a link, a file of a folder without a marker, nor a temporary of a
    file hlfnet does not own. The caller must hold the folder's :func:`folder_lock`, so that the temporaries
    of a command writing there now are never touched. ``recursive`` also cleans the owned sub-folders (not
    through links).

    Raises:
        RuntimeError: the lock of ``folder`` is not held by this process (a bug in the caller).
    """
    folder = _absolute(folder)
    if folder not in _HELD:
        raise RuntimeError(f"{folder}: clean_temporaries needs the folder's lock (folder_lock)")
    if read_marker(folder) is None:
        return []
    return _clean(folder, folder, owned_entries(folder) | {MARKER}, recursive)


def _clean(folder: Path, root: Path, owned: set[str], recursive: bool) -> list[Path]:
    removed: list[Path] = []
    if not folder.is_dir() or folder.is_symlink():
        return removed
    for entry in sorted(folder.iterdir()):
        relative = entry.relative_to(root)
        if is_temporary(entry.name):
            if _our_temporary(owned, str(relative)) and entry.is_file() and not entry.is_symlink():
                entry.unlink(missing_ok=True)
                removed.append(entry)
        elif recursive and entry.is_dir() and not entry.is_symlink():
            here = str(relative)
            if any(o == here or o.startswith(here + "/") or _owns(owned, f"{here}/x") for o in owned):
                removed += _clean(entry, root, owned, recursive)
    return removed


def _owns(owned: set[str], name: str) -> bool:
    """``name`` (relative, its last part possibly cut) is an owned entry or lies in an owned folder."""
    parts = Path(name).parts
    if any(str(Path(*parts[:i])) in owned for i in range(1, len(parts))):
        return True
    cut = temporary_prefix(parts[-1])
    return any(Path(o).parent == Path(name).parent and temporary_prefix(Path(o).name) == cut for o in owned)


#: Folders this process holds the lock of: absolute path -> (file descriptor, depth of nesting).
_HELD: dict[Path, list[int]] = {}


@contextmanager
def folder_lock(folder: str | os.PathLike[str]) -> Iterator[Path]:
    """Hold the exclusive lock of an output or run folder (created when missing) while writing into it.

    Re-entrant within a process. The lock is an ``flock`` on ``<folder>/.hlfnet-lock``, released by the
    operating system when the process dies, so a killed run never leaves a stale lock.

    Raises:
        OutputRefused: another process holds it (naming its pid), or the lock file is a symbolic link.
    """
    folder = _absolute(folder)
    if folder in _HELD:
        _HELD[folder][1] += 1
        try:
            yield folder
        finally:
            _HELD[folder][1] -= 1
        return
    created_folder = not os.path.lexists(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lock = folder / LOCK
    flags = os.O_RDWR | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    try:
        try:
            fd = os.open(lock, flags | os.O_CREAT | os.O_EXCL, 0o666)
            created_lock = True
        except FileExistsError:
            fd = os.open(lock, flags)
            created_lock = False
    except OSError:
        if os.path.islink(lock):
            raise OutputRefused(f"{lock}: is a symbolic link; hlfnet never writes through links") from None
        raise
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode("ascii", "replace").strip() or "unknown"
        os.close(fd)
        raise OutputRefused(
            f"{folder}: another hlfnet command (pid {holder}) is writing into this folder; wait for it to "
            "finish or choose another output folder (nothing was changed)"
        ) from None
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    _HELD[folder] = [fd, 1]
    try:
        yield folder
    finally:
        del _HELD[folder]
        if created_lock and read_marker(folder) is None:
            # nothing of hlfnet's came to be here (a refused command): leave the folder as it was
            lock.unlink(missing_ok=True)
            if created_folder:
                with contextlib.suppress(OSError):
                    folder.rmdir()
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


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


def record_outputs(
    folder: str | os.PathLike[str],
    names: Iterable[str],
    kind: str,
    kinds: Mapping[str, str] | None = None,
    **extra: Any,
) -> None:
    """Add ``names`` (relative paths) to the marker of ``folder``, creating it; other keys are merged in.

    Each name is recorded with ``kind`` (the command writing it), or with its own kind from ``kinds`` (a run
    folder reserves ``report.html`` for ``report``).
    """
    folder = Path(folder)
    marker = read_marker(folder) or {"tool": "hlfnet", "kind": kind, "files": [], "kinds": {}}
    names = [str(n) for n in names]
    files = list(dict.fromkeys([*marker["files"], *names]))
    recorded = marker.get("kinds") if isinstance(marker.get("kinds"), dict) else {}
    recorded.update({n: (kinds or {}).get(n, kind) for n in names})
    marker.update(extra)
    marker["files"] = files
    marker["kinds"] = recorded
    atomic_write_bytes(folder / MARKER, json.dumps(marker, indent=1).encode(), root=folder)


def _kind_of(marker: dict[str, Any] | None, name: str) -> str | None:
    """The kind recorded for ``name`` (``None``: a marker from before kinds were recorded, or none)."""
    if marker is None or not isinstance(marker.get("kinds"), dict):
        return None
    return marker["kinds"].get(name, marker.get("kind"))


def claim_outputs(
    folder: str | os.PathLike[str],
    names: Iterable[str],
    *,
    overwrite: bool,
    legacy: Iterable[str] = (),
    hint: str = "pass --overwrite to replace them",
    what: str = "hlfnet outputs",
    kind: str | None = None,
) -> list[str]:
    """Check that the files ``names`` may be written into ``folder``; returns those that already exist.

    Args:
        kind: the kind of output about to be written; an existing entry recorded with another kind (another
            command's file) is refused even with ``overwrite``.

    Raises:
        OutputRefused: an existing target that hlfnet did not write (not in the marker), one of another kind,
            or one that is a symbolic link or folder.
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
    marker = read_marker(folder)
    other = [n for n in existing if kind is not None and _kind_of(marker, n) not in (None, kind)]
    if other:
        raise OutputRefused(
            f"{folder / other[0]}: was written by another hlfnet command ({_kind_of(marker, other[0])}), not "
            f"by this one ({kind}); not replacing it even with --overwrite, since that would break its folder "
            "(choose another output path)"
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
    ours = owned | {MARKER}
    foreign: list[Path] = []
    for entry in sorted(folder.iterdir()):
        name = entry.name
        if name in (MARKER, LOCK) or _our_temporary(ours, name):
            continue
        if name not in owned:
            foreign.append(entry)
        elif nested and name in nested and entry.is_dir() and not entry.is_symlink():
            allowed = set(nested[name])
            foreign += [
                e
                for e in sorted(entry.iterdir())
                if e.name not in allowed and not _our_temporary(ours, f"{name}/{e.name}")
            ]
    return foreign


def _our_temporary(owned: set[str], name: str) -> bool:
    """``name`` (relative) is a temporary of :func:`atomic_path` whose target is owned (a plain file)."""
    path = Path(name)
    target = _temporary_target(path.name)
    if target is None:
        return False
    return _owns(owned, str(path.parent / target) if path.parent != Path(".") else target)


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
        if entry.name == LOCK:
            continue  # held by this command
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


@contextmanager
def owned_outputs(
    folder: str | os.PathLike[str],
    names: Iterable[str],
    kind: str,
    *,
    overwrite: bool,
    legacy: Iterable[str] = (),
    hint: str = "pass --overwrite to replace them",
    what: str = "hlfnet outputs",
) -> Iterator[Path]:
    """Write ``names`` into ``folder`` the one way: lock it, claim the names, record them, then yield.

    The names are recorded (with ``kind``) before anything is written, so that a run killed half-way leaves
    files the next run recognises as its own. Yields ``folder`` as an absolute path.

    Raises:
        OutputRefused, FileExistsError: see :func:`folder_lock` and :func:`claim_outputs`.
    """
    names = [str(n) for n in names]
    folder = _absolute(folder)
    for name in names:
        check_target(folder / name, folder)
    if os.path.lexists(folder) and not folder.is_dir():
        raise OutputRefused(f"{folder}: is a file, not a folder; cannot write {names[0]} into it")
    with folder_lock(folder):
        claim_outputs(folder, names, overwrite=overwrite, legacy=legacy, hint=hint, what=what, kind=kind)
        record_outputs(folder, names, kind)
        yield folder
