"""Run the app with uvicorn: one process, graceful shutdown on SIGTERM / SIGINT."""

from __future__ import annotations

import logging
from typing import Any

from hlfnet.serve.app import create_app
from hlfnet.serve.config import ServeConfig

__all__ = ["serve"]

logger = logging.getLogger(__name__)


def serve(
    config: ServeConfig, predictor: Any = None, reference: str | None = None, log_level: str = "info"
) -> None:
    """Serve until SIGTERM / SIGINT: then new API requests get 503, in-flight ones finish (up to the request
    timeout), the batcher drains, and the private temporary folder is removed.

    Args:
        config: the settings (host, port, limits...).
        predictor: an already loaded :class:`~hlfnet.evaluation.Predictor`, or ``None`` to load ``config.model``.
        reference: what ``predictor`` was built from.
        log_level: uvicorn's log level.
    """
    import uvicorn

    app = create_app(config, predictor, reference)

    class _Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            app.state.serve.draining = True  # refuse new API requests at once; uvicorn finishes the others
            super().handle_exit(sig, frame)

    server = _Server(
        uvicorn.Config(
            app,
            host=config.host,
            port=config.port,
            log_level=log_level,
            timeout_graceful_shutdown=int(config.request_timeout_s) + 1,
            timeout_keep_alive=5,
            server_header=False,
            proxy_headers=False,
            lifespan="on",
        )
    )
    server.run()
