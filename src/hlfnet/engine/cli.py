"""Sub-commands of this area (registered by :mod:`hlfnet.cli`)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add this area's sub-commands to ``hlfnet``."""
