"""The installed hlfnet's version, from the package metadata (``pyproject.toml`` is its one source)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

__all__ = ["__version__"]

try:
    __version__ = version("hlfnet")
except PackageNotFoundError:  # a source tree on sys.path that was never installed
    __version__ = "0+unknown"
