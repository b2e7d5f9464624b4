"""``hlfnet serve``: a web page and an HTTP API for segmentation, with the same preprocessing, weights and metrics
as ``hlfnet predict`` (see ``docs/serve.md``).

Public API::

    from hlfnet.serve import ServeConfig, create_app, serve

    serve(ServeConfig(model="runs/hlfnet_isic2017", port=8000))      # blocks; Ctrl-C stops gracefully
    app = create_app(ServeConfig(model="hlfnet-isic2017"))           # an ASGI app for your own server

Needs the ``serve`` extra (``pip install "hlfnet[serve]"``: FastAPI, uvicorn, python-multipart).
"""

from __future__ import annotations

import importlib
from typing import Any

from hlfnet.serve.config import ServeConfig

__all__ = ["ServeConfig", "create_app", "serve"]

# FastAPI and uvicorn are an optional extra: imported on first use, so that `hlfnet --help` works without them
_LAZY = {"create_app": "hlfnet.serve.app", "serve": "hlfnet.serve.server"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'hlfnet.serve' has no attribute {name!r}")
