"""The ``hlfnet`` command line: parse, then call a typed function a user could call from Python.

Each area registers its own sub-commands (``hlfnet.<area>.cli.register``); handlers import heavy modules
lazily so that ``hlfnet --help`` stays fast.

Error policy (``docs/safety.md``): a user or environment error — :class:`hlfnet.errors.UserError`, the
``ValueError`` / ``FileNotFoundError`` / ``KeyError`` hlfnet raises on purpose, an operating-system error such
as a read-only or full disk, a missing GPU — is one line on stderr naming the file or key, exit status 2.
Anything else is a bug: its traceback and how to report it, exit status 1. ``hlfnet -v`` shows the traceback
of everything.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import signal
import sys
import threading
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from hlfnet.errors import Terminated, UserError
from hlfnet.version import __version__

AREAS = (
    "hlfnet.models.cli",
    "hlfnet.data.cli",
    "hlfnet.engine.cli",
    "hlfnet.evaluation.cli",
    "hlfnet.pretrained.cli",
    "hlfnet.serve.cli",
)


#: What to do about an operating-system error, by errno.
_OS_ADVICE = {
    errno.EROFS: "read-only file system: choose a writable output, run or cache folder",
    errno.ENOSPC: "no space left on device: free some space or choose a folder on another disk",
    errno.EDQUOT: "disk quota exceeded: free some space or choose a folder on another disk",
    errno.ENOTDIR: "a part of the path is a file, not a folder: fix the path",
    errno.EISDIR: "is a folder: give the path of a file",
    errno.EACCES: "permission denied: choose a folder you may write, or fix its permissions",
    errno.EPERM: "operation not permitted: choose a folder you may write, or fix its permissions",
    errno.ENOENT: "no such file or folder",
    errno.EEXIST: "already exists",
    errno.ELOOP: "too many levels of symbolic links",
    errno.ENAMETOOLONG: "file name too long",
    errno.EMFILE: "too many open files: raise the limit (ulimit -n)",
    errno.ENOMEM: "out of memory: lower data.image_size or train.batch_size",
    errno.EFBIG: "file too large for this file system or for the file size limit (ulimit -f)",
}


def _raised_by_hlfnet(error: BaseException) -> bool:
    """True when the innermost frame of the traceback is a ``raise`` statement in hlfnet's own code.

    A ``ValueError`` from ``int(text)`` or a ``KeyError`` from ``mapping[key]`` inside hlfnet is a bug, not a
    deliberate message to the user: its innermost line is not a ``raise``.
    """
    import linecache

    package = os.path.dirname(os.path.abspath(__file__))
    tb = error.__traceback__
    last = None
    while tb is not None:
        last = tb
        tb = tb.tb_next
    if last is None:
        return False
    filename = os.path.abspath(last.tb_frame.f_code.co_filename)
    line = linecache.getline(filename, last.tb_lineno).strip()
    return filename.startswith(package + os.sep) and line.startswith("raise ")


def user_message(error: BaseException) -> str | None:
    """The one-line message of a user or environment error, or ``None`` for a bug (keep the traceback)."""
    os_error = isinstance(error, OSError) and not isinstance(error, (FileNotFoundError, FileExistsError))
    if os_error and (error.errno in _OS_ADVICE or isinstance(error, PermissionError)):
        where = error.filename or ""
        advice = _OS_ADVICE.get(error.errno, "permission denied")
        detail = "" if error.strerror is None else f" ({error.strerror})"
        return f"{where}: {advice}{detail}" if where else f"{advice}{detail}: {error}"
    if isinstance(error, MemoryError) or type(error).__name__ == "OutOfMemoryError":  # torch.cuda's too
        return (
            "out of memory: lower data.image_size or train.batch_size, or predict with a smaller --batch-size"
        )
    if type(error).__name__ == "DecompressionBombError":  # PIL, if it escaped a reader
        return f"{error}; see docs/safety.md (HLFNET_MAX_IMAGE_PIXELS)"
    deliberate = (UserError, FileNotFoundError, FileExistsError, ImportError, ValueError, KeyError)
    if isinstance(error, UserError) or (
        isinstance(error, (FileNotFoundError, FileExistsError, ImportError)) and error.args
    ):
        pass
    elif not (isinstance(error, deliberate) and _raised_by_hlfnet(error)):
        return None
    message = error.args[0] if isinstance(error, KeyError) and error.args else str(error)
    return " ".join(str(message).split()) or type(error).__name__


def _terminate(signum: int, frame: object) -> None:
    raise Terminated(signal.Signals(signum).name)


@contextmanager
def signal_policy() -> Iterator[None]:
    """SIGTERM raises :class:`~hlfnet.errors.Terminated` (status 143), Ctrl-C :class:`KeyboardInterrupt`
    (130), whatever the command is doing; the handlers in place before are restored afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = argparse.ArgumentParser(
        prog="hlfnet", description="HLF-Net for medical image segmentation (Wang et al., HLF-Net / HLE-Net)."
    )
    parser.add_argument("--version", action="version", version=f"hlfnet {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for area in AREAS:
        importlib.import_module(area).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        with signal_policy():
            return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        print(f"hlfnet {args.command}: interrupted", file=sys.stderr)
        return 130
    except Terminated as error:
        print(
            f"hlfnet {args.command}: terminated ({error}); files already written are complete: rerun the same "
            "command to finish (train: --resume RUN)",
            file=sys.stderr,
        )
        return 143
    except Exception as error:
        message = user_message(error)
        if args.verbose or message is None:
            traceback.print_exc()
        if message is None:
            print(
                f"hlfnet {args.command}: internal error ({type(error).__name__}): this is a bug in hlfnet "
                f"{__version__}; please report it on the project's issue tracker with the command you ran, "
                "`hlfnet --version` and the traceback above",
                file=sys.stderr,
            )
            return 1
        print(f"hlfnet {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
