"""The settings of ``hlfnet serve``: one validated dataclass that the CLI fills and :func:`create_app` reads."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

__all__ = ["BYTES_PER_PIXEL", "BYTES_PER_VOXEL", "ServeConfig", "is_loopback"]

#: Bytes a request holds per pixel of an uploaded image while it is decoded, predicted and answered (the
#: decoded image, its model-channel copy, the probabilities and mask at full size, the answer's PNGs), with a
#: margin; the memory budget reserves this much per pixel before decoding (benchmarks/serve_memory.py checks it).
BYTES_PER_PIXEL = 24
#: The same per voxel of an uploaded volume (float32 data, its reoriented copy, slices and probabilities).
BYTES_PER_VOXEL = 48


def is_loopback(host: str) -> bool:
    """True when ``host`` only accepts connections from this machine (``127.0.0.0/8``, ``::1``, ``localhost``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ServeConfig:
    """What ``hlfnet serve`` serves and the limits it enforces.

    Args:
        model: pretrained name, run folder, ``.safetensors`` or ``.onnx``; ``None`` = the default pretrained
            network (:data:`hlfnet.pretrained.DEFAULT_PRETRAINED`).
        host: address to bind; loopback by default (no authentication is assumed).
        port: TCP port (``0`` = any free port).
        token: when set, every ``/api/`` request needs ``Authorization: Bearer <token>``.
        max_upload_mb: largest request body, in MiB (413 above it).
        max_pixels: largest image, width × height (413 above it; decompression bombs never get decoded);
            ``None`` = hlfnet's shared limit (``hlfnet.limits``, ``HLFNET_MAX_IMAGE_PIXELS``).
        max_voxels: largest volume (413 above it); ``None`` = ``HLFNET_MAX_VOLUME_VOXELS``.
        max_batch: most images in one forward pass.
        batch_window_ms: how long the batcher waits for more images when other requests are on their way.
        queue_size: most inference jobs waiting; beyond it the server answers 503 with ``Retry-After``.
        max_inflight: most API requests handled at once (uploads included); beyond it 503.
        request_timeout_s: a request (upload, queue and inference) taking longer gets 504.
        memory_budget_mb: most MiB of decoded pixels and voxels in flight at once, reserved from the file's
            header before decoding (:data:`BYTES_PER_PIXEL`, :data:`BYTES_PER_VOXEL`); a request that would
            exceed it waits for memory (within the request timeout). The serving pixel and voxel limits are
            lowered so that one request always fits.
        max_connections: most open client connections; further ones are closed at once (before they cost a
            request, a thread or a file descriptor).
        header_timeout_s: a connection that has not sent a complete request head within this many seconds is
            closed (idle sockets cannot starve the server); idle keep-alive connections close after 5 s.
        tta, largest_component, threshold: :class:`~hlfnet.evaluation.Predictor` options, as ``hlfnet predict``.
        device: torch device of the network.
        channels_last, bf16: :class:`~hlfnet.evaluation.Predictor` speed options (PyTorch models).

    Raises:
        ValueError: a limit that is not positive, or a port outside 0..65535 (names the setting).
    """

    model: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    token: str | None = None
    max_upload_mb: float = 64.0
    max_pixels: int | None = None
    max_voxels: int | None = None
    max_batch: int = 8
    batch_window_ms: float = 5.0
    queue_size: int = 32
    max_inflight: int = 64
    request_timeout_s: float = 120.0
    memory_budget_mb: float = 2048.0
    max_connections: int = 1024
    header_timeout_s: float = 10.0
    tta: bool = False
    largest_component: bool = False
    threshold: float = 0.5
    device: str = "cpu"
    channels_last: bool = False
    bf16: bool = False

    def __post_init__(self) -> None:
        for name in (
            "max_upload_mb",
            "max_pixels",
            "max_voxels",
            "max_batch",
            "queue_size",
            "max_inflight",
            "memory_budget_mb",
            "max_connections",
        ):
            if getattr(self, name) is not None and not 0 < getattr(self, name) < 2**53:
                raise ValueError(f"serve: {name} must be positive and finite, got {getattr(self, name)}")
        for name in ("request_timeout_s", "header_timeout_s"):
            if not 0 < getattr(self, name) < 10**7:
                raise ValueError(f"serve: {name} must be positive and finite, got {getattr(self, name)}")
        if self.batch_window_ms < 0:
            raise ValueError(f"serve: batch_window_ms must be ≥ 0, got {self.batch_window_ms}")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"serve: port must lie in 0..65535, got {self.port}")
        if self.token is not None and not self.token.strip():
            raise ValueError("serve: token must not be empty")
        if self.token is not None and not (self.token.isascii() and self.token.isprintable()):
            raise ValueError(
                "serve: --token (or HLFNET_SERVE_TOKEN) must be printable ASCII: HTTP headers carry no other "
                "characters, so no client could send it"
            )

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def memory_budget_bytes(self) -> int:
        return int(self.memory_budget_mb * 1024 * 1024)

    @property
    def pixel_limit(self) -> int:
        """``max_pixels``, never above hlfnet's shared limit nor what the memory budget holds."""
        from hlfnet.limits import limit

        shared = min(limit("image_pixels"), self.memory_budget_bytes // BYTES_PER_PIXEL)
        return shared if self.max_pixels is None else min(self.max_pixels, shared)

    @property
    def voxel_limit(self) -> int:
        """``max_voxels``, never above hlfnet's shared limit nor what the memory budget holds."""
        from hlfnet.limits import limit

        shared = min(limit("volume_voxels"), self.memory_budget_bytes // BYTES_PER_VOXEL)
        return shared if self.max_voxels is None else min(self.max_voxels, shared)
