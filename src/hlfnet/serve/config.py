"""The settings of ``hlfnet serve``: one validated dataclass that the CLI fills and :func:`create_app` reads."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

__all__ = ["ServeConfig", "is_loopback"]


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
    tta: bool = False
    largest_component: bool = False
    threshold: float = 0.5
    device: str = "cpu"
    channels_last: bool = False
    bf16: bool = False

    def __post_init__(self) -> None:
        for name in ("max_upload_mb", "max_pixels", "max_voxels", "max_batch", "queue_size", "max_inflight"):
            if getattr(self, name) is not None and getattr(self, name) <= 0:
                raise ValueError(f"serve: {name} must be positive, got {getattr(self, name)}")
        if self.request_timeout_s <= 0:
            raise ValueError(f"serve: request_timeout_s must be positive, got {self.request_timeout_s}")
        if self.batch_window_ms < 0:
            raise ValueError(f"serve: batch_window_ms must be ≥ 0, got {self.batch_window_ms}")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"serve: port must lie in 0..65535, got {self.port}")
        if self.token is not None and not self.token.strip():
            raise ValueError("serve: token must not be empty")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def pixel_limit(self) -> int:
        """``max_pixels``, never above hlfnet's shared limit (the readers enforce that one anyway)."""
        from hlfnet.limits import limit

        shared = limit("image_pixels")
        return shared if self.max_pixels is None else min(self.max_pixels, shared)

    @property
    def voxel_limit(self) -> int:
        """``max_voxels``, never above hlfnet's shared limit."""
        from hlfnet.limits import limit

        shared = limit("volume_voxels")
        return shared if self.max_voxels is None else min(self.max_voxels, shared)
