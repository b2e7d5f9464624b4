"""The ``hlfnet`` command line: parse, then call a typed function a user could call from Python.

Each area registers its own sub-commands (``hlfnet.<area>.cli.register``); handlers import heavy modules
lazily so that ``hlfnet --help`` stays fast.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from hlfnet import __version__

AREAS = ("hlfnet.models.cli", "hlfnet.data.cli", "hlfnet.engine.cli", "hlfnet.evaluation.cli")


class CLIError(Exception):
    """An error to show the user as one line (no traceback), exit status 2."""


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
        return int(args.handler(args) or 0)
    except (CLIError, FileNotFoundError, FileExistsError, ValueError, KeyError, ImportError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"hlfnet {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
