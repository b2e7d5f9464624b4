"""Images as the page receives them: PNG bytes and base64 text (``data:`` URLs in JSON answers)."""

from __future__ import annotations

import base64
import io

import numpy as np

__all__ = ["b64", "png_bytes"]


def png_bytes(array: np.ndarray) -> bytes:
    """An 8-bit grey or RGB array as PNG bytes (for display; masks go through ``write_mask_png``)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
