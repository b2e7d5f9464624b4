"""Run the app with uvicorn: one process, graceful shutdown on SIGTERM / SIGINT, connection limits.

Connections are limited by uvicorn's own settings where it has them (``limit_concurrency``: 503 beyond the
in-flight limit; ``timeout_keep_alive``: idle keep-alive connections close; ``h11_max_incomplete_event_size``:
request heads of at most 16 KiB) and by :class:`LimitedH11Protocol` where it has none: a connection that has
not sent a complete request head within ``header_timeout_s`` is closed, and connections beyond
``max_connections`` are closed as soon as they are accepted, so that idle sockets can neither starve the
server nor exhaust its file descriptors.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from hlfnet.serve.app import create_app
from hlfnet.serve.config import ServeConfig

__all__ = ["LimitedH11Protocol", "serve", "connection_limit"]

logger = logging.getLogger(__name__)

#: When the connection cap was last reported (monotonic seconds).
_LAST_WARNING = [0.0]
#: Largest request head (request line and headers) uvicorn buffers.
MAX_HEAD_BYTES = 16 * 1024


class LimitedH11Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with a deadline for the first request head and a cap on connections.

    ``max_connections`` and ``header_timeout_s`` are set on a subclass by :func:`limited_protocol`.
    """

    max_connections = 1024
    header_timeout_s = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            now = time.monotonic()
            if now - _LAST_WARNING[0] > 10:  # one line per 10 s, not one per socket
                _LAST_WARNING[0] = now
                logger.warning("more than %d connections open: closing new ones", self.max_connections)
            transport.close()
            return
        self._head_deadline = asyncio.get_running_loop().call_later(self.header_timeout_s, self._head_timeout)

    def _head_timeout(self) -> None:
        if self.cycle is None and not self.transport.is_closing():  # no complete request head yet
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        deadline = getattr(self, "_head_deadline", None)
        if deadline is not None:
            deadline.cancel()
        super().connection_lost(exc)


def connection_limit(wanted: int) -> int:
    """``wanted``, lowered to what the file-descriptor limit leaves (64 kept for files and the model)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        # raise the soft limit to the hard one: a server may use what the administrator allows
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(1, min(wanted, int(soft) - 64))


def limited_protocol(config: ServeConfig) -> type[LimitedH11Protocol]:
    """A :class:`LimitedH11Protocol` with ``config``'s connection cap and head deadline."""
    return type(
        "LimitedH11Protocol",
        (LimitedH11Protocol,),
        {
            "max_connections": connection_limit(config.max_connections),
            "header_timeout_s": config.header_timeout_s,
        },
    )


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
            http=limited_protocol(config),
            # uvicorn's own cap (503 beyond it) counts connections too: above ours, so idle sockets that our
            # protocol has not closed yet never turn legitimate requests away
            limit_concurrency=connection_limit(config.max_connections) + 1,
            h11_max_incomplete_event_size=MAX_HEAD_BYTES,
            server_header=False,
            proxy_headers=False,
            lifespan="on",
        )
    )
    server.run()
