"""``/docs``: Swagger UI 5 served from this server's own files, so the API documentation works offline.

FastAPI writes OpenAPI 3.1, which Swagger UI 4 cannot read ("Unable to render this definition"); Swagger UI 5
can. Its files come from the ``swagger-ui-py`` package (Apache-2.0, Swagger UI's own ``dist`` files under
``swagger_ui/static``), found without importing it (its handlers import web frameworks). Without it, or with a
Swagger UI older than 5, ``/docs`` is a local page that says so and links ``/openapi.json``: never a CDN.
"""

from __future__ import annotations

import base64
import hashlib
import html
import importlib.util
import re
from pathlib import Path

__all__ = ["MINIMUM_SWAGGER_UI", "SwaggerUI", "docs_csp", "find_swagger_ui", "missing_docs_html"]

MINIMUM_SWAGGER_UI = (5, 0, 0)
_FILES = ("swagger-ui-bundle.js", "swagger-ui.css")
_VERSION = re.compile(rb'PACKAGE_VERSION:"(\d+)\.(\d+)\.(\d+)"')


class SwaggerUI:
    """A folder of Swagger UI's files and their version."""

    def __init__(self, folder: Path, version: tuple[int, int, int]) -> None:
        self.folder = folder
        self.version = version

    @property
    def version_text(self) -> str:
        return ".".join(str(v) for v in self.version)


def _bundle_version(bundle: Path) -> tuple[int, int, int] | None:
    match = _VERSION.search(bundle.read_bytes())
    return (int(match[1]), int(match[2]), int(match[3])) if match else None


def find_swagger_ui() -> SwaggerUI | None:
    """The installed Swagger UI (≥ 5) of ``swagger-ui-py``, or ``None``."""
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        folder = Path(location) / "static"
        if all((folder / name).is_file() for name in _FILES):
            version = _bundle_version(folder / _FILES[0])
            if version is not None and version >= MINIMUM_SWAGGER_UI:
                return SwaggerUI(folder, version)
    return None


def docs_csp(page_csp: str, page: str) -> str:
    """``page_csp`` plus the sha256 of each inline script of ``page`` (nothing else inline runs) and inline
    styles (Swagger UI sets element styles)."""
    scripts = re.findall(r"<script>(.*?)</script>", page, flags=re.S)
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() + "'" for s in scripts
    )
    return page_csp.replace("script-src 'self'", f"script-src 'self' {hashes}").replace(
        "style-src 'self'", "style-src 'self' 'unsafe-inline'"
    )


def missing_docs_html() -> str:
    """The local ``/docs`` page when no Swagger UI ≥ 5 is installed."""
    version = ".".join(str(v) for v in MINIMUM_SWAGGER_UI[:1])
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>hlfnet serve: API</title>"
        "<link rel='stylesheet' href='/static/app.css'></head><body><main><h1>hlfnet serve: API</h1>"
        f"<p>The interactive documentation needs Swagger UI {html.escape(version)} or newer, from the "
        "<code>swagger-ui-py</code> package: <code>pip install 'hlfnet[serve]'</code>. The OpenAPI 3.1 "
        "description of the API is at <a href='/openapi.json'>/openapi.json</a>.</p></main></body></html>"
    )
