"""Uploads: a streaming ``multipart/form-data`` reader that writes only into a private folder, and the checks
every uploaded file passes before it reaches the network (kind by content, size, pixels, voxels).

File names sent by a client are never used as paths: a part is stored as ``<field><suffix>`` where the suffix
comes from the file's *content* (magic bytes), and the client's name is kept only, sanitised, for display.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "ApiError",
    "Upload",
    "read_multipart",
    "sniff_kind",
    "check_image",
    "check_volume",
    "decoded_bytes",
    "safe_name",
]

_NAME_CHARS = re.compile(r"[^A-Za-z0-9._ ()+-]+")
#: RFC 2046: a boundary is 1 to 70 characters (we allow some slack for clients that exceed it a little).
_MAX_BOUNDARY = 200
_BOUNDARY = re.compile(rb"[0-9A-Za-z'()+_,./:=? -]+")


class ApiError(Exception):
    """An error answered as one line of JSON: ``{"error": {"code": ..., "message": ...}}``.

    Args:
        status: HTTP status.
        code: a stable, machine-readable code (``upload_too_large``, ``queue_full``...).
        message: one sentence for a person.
        headers: extra response headers (``Retry-After``).
    """

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def safe_name(name: str | None, default: str = "upload") -> str:
    """A client's file name reduced to a display name: last path component, harmless characters, ≤ 100 chars."""
    if not name:
        return default
    base = re.split(r"[\\/]", name)[-1]
    base = _NAME_CHARS.sub("_", base).strip(" .")
    return base[:100] or default


@dataclass
class Upload:
    """One uploaded file, stored in the request's private folder.

    Attributes:
        field: the form field (``file``, ``ground_truth``, ``prediction``).
        name: the client's file name, sanitised (display only).
        path: where it is stored (named by field and content, never by the client).
        size: bytes.
        kind: ``"image"`` or ``"volume"`` (by content; set by :func:`sniff_kind`).
    """

    field: str
    name: str
    path: Path
    size: int = 0
    kind: str = ""
    meta: dict[str, Any] = field(default_factory=dict)


def _disposition(value: bytes) -> tuple[str | None, str | None]:
    from python_multipart.multipart import parse_options_header

    kind, options = parse_options_header(value)
    if kind.lower() != b"form-data":
        return None, None
    name = options.get(b"name")
    filename = options.get(b"filename")
    return (
        name.decode("utf-8", "replace") if name is not None else None,
        filename.decode("utf-8", "replace") if filename is not None else None,
    )


class _Collector:
    """python-multipart callbacks: every file part streams into ``folder``, text fields are refused."""

    def __init__(self, folder: Path, allowed: tuple[str, ...]) -> None:
        self.folder = folder
        self.allowed = allowed
        self.uploads: dict[str, Upload] = {}
        self._headers: dict[bytes, bytes] = {}
        self._field = bytearray()
        self._value = bytearray()
        self._current: Upload | None = None
        self._handle: Any = None

    @property
    def in_file(self) -> bool:
        """A file part has begun and not ended (the body stopped in the middle of a file)."""
        return self._current is not None

    def on_part_begin(self) -> None:
        self._headers = {}

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def on_header_end(self) -> None:
        self._headers[bytes(self._field).strip().lower()] = bytes(self._value).strip()
        self._field.clear()
        self._value.clear()

    def on_headers_finished(self) -> None:
        name, filename = _disposition(self._headers.get(b"content-disposition", b""))
        expected = ", ".join(self.allowed)
        if name not in self.allowed:
            raise ApiError(
                400, "unknown_field", f"unexpected form field {name!r}; this endpoint takes {expected}"
            )
        if filename is None:
            raise ApiError(400, "not_a_file", f"form field {name!r} must be a file upload")
        if name in self.uploads:
            raise ApiError(
                400, "duplicate_field", f"form field {name!r} given twice; send one file per field"
            )
        self._current = Upload(name, safe_name(filename), self.folder / f"{name}.part")
        self._handle = open(self._current.path, "wb")  # noqa: SIM115 (closed in on_part_end / close)

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._handle is not None and self._current is not None:
            self._handle.write(data[start:end])
            self._current.size += end - start

    def on_part_end(self) -> None:
        self.close()
        if self._current is not None:
            self.uploads[self._current.field] = self._current
            self._current = None

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


async def read_multipart(
    content_type: str | None,
    content_length: str | None,
    stream: AsyncIterator[bytes],
    folder: Path,
    allowed: tuple[str, ...],
    max_bytes: int,
) -> dict[str, Upload]:
    """Read a ``multipart/form-data`` body into ``folder``, streaming, refusing it beyond ``max_bytes``.

    Args:
        content_type: the request's ``Content-Type``.
        content_length: the request's ``Content-Length`` (checked before reading), or ``None`` (chunked).
        stream: the body's chunks.
        folder: the request's private folder.
        allowed: the file fields this endpoint takes.
        max_bytes: the upload limit.

    Returns:
        The uploads by field, each with its :attr:`Upload.kind` found from its content.

    Raises:
        ApiError: 415 not multipart, 413 too large, 400 malformed body or unknown field.
    """
    from python_multipart.exceptions import MultipartParseError
    from python_multipart.multipart import MultipartParser, parse_options_header

    kind, options = parse_options_header(content_type or "")
    if kind.lower() != b"multipart/form-data" or b"boundary" not in options:
        raise ApiError(
            415,
            "unsupported_media_type",
            f"expected a multipart/form-data upload (a form with a 'file' field), got {_short_text(content_type)!r}",
        )
    boundary = options[b"boundary"]
    if not 1 <= len(boundary) <= _MAX_BOUNDARY or not _BOUNDARY.fullmatch(boundary):
        raise ApiError(
            400,
            "bad_boundary",
            f"multipart boundary must be 1 to {_MAX_BOUNDARY} characters of RFC 2046 (got {len(boundary)})",
        )
    limit_mb = max_bytes / 2**20
    if content_length is not None:
        try:
            declared = int(content_length)
        except ValueError:
            raise ApiError(400, "bad_request", "Content-Length is not a number") from None
        if declared > max_bytes:
            raise ApiError(
                413,
                "upload_too_large",
                f"upload of {declared / 2**20:.1f} MiB exceeds the {limit_mb:g} MiB limit",
            )
    collector = _Collector(folder, allowed)
    callbacks = {
        name: getattr(collector, name)
        for name in (
            "on_part_begin",
            "on_header_field",
            "on_header_value",
            "on_header_end",
            "on_headers_finished",
            "on_part_data",
            "on_part_end",
        )
    }
    parser = MultipartParser(boundary, callbacks)  # type: ignore[arg-type]
    received = 0
    try:
        async for chunk in stream:
            received += len(chunk)
            if received > max_bytes:
                raise ApiError(413, "upload_too_large", f"upload exceeds the {limit_mb:g} MiB limit")
            if chunk:
                parser.write(chunk)
        parser.finalize()
    except MultipartParseError as error:
        raise ApiError(400, "malformed_upload", f"malformed multipart body ({error})") from None
    finally:
        collector.close()
    if collector.in_file:
        raise ApiError(400, "malformed_upload", "the upload ended in the middle of a file")
    for upload in collector.uploads.values():
        suffix, upload.kind = sniff_kind(upload.path)
        target = upload.path.with_name(f"{upload.field}{suffix}")
        upload.path = upload.path.rename(target)
    return collector.uploads


_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", ".png"),
    (b"\xff\xd8\xff", ".jpg"),
    (b"BM", ".bmp"),
    (b"II*\x00", ".tif"),
    (b"MM\x00*", ".tif"),
)


def _nifti_magic(header: bytes) -> bool:
    return header[344:348] in (b"n+1\x00", b"ni1\x00") or header[4:8] in (b"n+2\x00", b"ni2\x00")


def sniff_kind(path: Path) -> tuple[str, str]:
    """The suffix and kind (``image`` / ``volume``) of a file, from its first bytes, never its name.

    Raises:
        ApiError: 400 empty file, 415 anything but PNG, JPEG, BMP, TIFF or NIfTI (``.nii``/``.nii.gz``).
    """
    with open(path, "rb") as handle:
        head = handle.read(540)
    if not head:
        raise ApiError(400, "empty_file", "the uploaded file is empty")
    for magic, suffix in _MAGIC:
        if head.startswith(magic):
            return suffix, "image"
    if _nifti_magic(head):
        return ".nii", "volume"
    if head.startswith(b"\x1f\x8b"):
        try:
            with gzip.open(path, "rb") as handle:
                inner = handle.read(540)
        except (OSError, EOFError):
            inner = b""
        if _nifti_magic(inner):
            return ".nii.gz", "volume"
    raise ApiError(
        415,
        "unsupported_file",
        "not an image (PNG, JPEG, BMP, TIFF) or a NIfTI volume (.nii, .nii.gz), judged by the file's content",
    )


def check_image(upload: Upload, max_pixels: int) -> np.ndarray:
    """Decode an uploaded image as ``hlfnet predict`` does (:func:`hlfnet.data.read_image`), after checking its
    size from the header alone, and record its resolution (DPI) when the file has one.

    Returns:
        ``(H, W, C)`` as :func:`~hlfnet.data.read_image` returns it.

    Raises:
        ApiError: 413 more pixels than ``max_pixels`` (decompression bombs stop here), 400 unreadable/truncated.
    """
    from PIL import Image, UnidentifiedImageError

    from hlfnet.data import read_image

    image_pixels(upload, max_pixels)
    try:
        with Image.open(upload.path) as img:
            dpi = img.info.get("dpi")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise ApiError(400, "unreadable_image", f"unreadable image ({_short(error)})") from None
    try:
        array = read_image(upload.path)
    except (ValueError, OSError, Image.DecompressionBombError) as error:
        raise ApiError(
            400, "unreadable_image", _short(error).replace(str(upload.path), upload.name)
        ) from None
    upload.meta["size"] = [int(array.shape[0]), int(array.shape[1])]
    if dpi and all(isinstance(v, (int, float)) and v > 0 for v in dpi):
        upload.meta["pixel_spacing_mm"] = [25.4 / float(dpi[1]), 25.4 / float(dpi[0])]
    return array


def check_volume(upload: Upload, max_voxels: int) -> None:
    """Check an uploaded NIfTI from its header: dimensions and voxel count; record the voxel size (mm).

    Raises:
        ApiError: 413 more voxels than ``max_voxels``, 400 unreadable header or not 3-D/4-D.
    """
    import nibabel as nib

    from hlfnet.data.io import check_nifti_size

    try:
        img = nib.load(str(upload.path))
        shape = tuple(int(s) for s in img.shape)
        zooms = [float(z) for z in img.header.get_zooms()[:3]]
    except Exception as error:  # nibabel raises many types for broken headers
        raise ApiError(400, "unreadable_volume", f"unreadable NIfTI header ({_short(error)})") from None
    if len(shape) not in (2, 3, 4) or min(shape) < 1:
        raise ApiError(400, "unreadable_volume", f"volume must be 3-D (X, Y, Z), got shape {shape}")
    voxels = int(np.prod(shape, dtype=np.int64))
    if voxels > max_voxels:
        raise ApiError(413, "too_many_voxels", f"volume of {voxels} voxels exceeds the limit of {max_voxels}")
    try:
        check_nifti_size(img, shape, upload.path)  # a forged header never gets its data allocated
    except ValueError as error:
        raise ApiError(
            400, "truncated_volume", _short(error).replace(str(upload.path), upload.name)
        ) from None
    upload.meta["shape"] = list(shape)
    if len(zooms) == 3 and all(z > 0 for z in zooms):
        upload.meta["voxel_size_mm"] = zooms


def image_pixels(upload: Upload, max_pixels: int) -> int:
    """Pixels of an uploaded image from its header alone (nothing decoded).

    Raises:
        ApiError: 413 more pixels than ``max_pixels``, 400 unreadable.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(upload.path) as img:
            width, height = img.size
    except Image.DecompressionBombError:
        raise ApiError(413, "too_many_pixels", f"image has more than {max_pixels} pixels") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise ApiError(400, "unreadable_image", f"unreadable image ({_short(error)})") from None
    if width * height > max_pixels:
        raise ApiError(
            413,
            "too_many_pixels",
            f"image of {width}×{height} pixels exceeds the limit of {max_pixels} pixels",
        )
    return width * height


def decoded_bytes(uploads: dict[str, Upload], max_pixels: int, max_voxels: int) -> int:
    """Bytes the request's uploads will need once decoded, from their headers (checked against the limits).

    Raises:
        ApiError: as :func:`image_pixels` and :func:`check_volume`.
    """
    from hlfnet.serve.config import BYTES_PER_PIXEL, BYTES_PER_VOXEL

    total = 0
    for upload in uploads.values():
        if upload.kind == "image":
            total += image_pixels(upload, max_pixels) * BYTES_PER_PIXEL
        else:
            check_volume(upload, max_voxels)
            total += int(np.prod(upload.meta["shape"], dtype=np.int64)) * BYTES_PER_VOXEL
    return total


def _short_text(text: str | None) -> str:
    return "none" if not text else text[:100] + ("..." if len(text) > 100 else "")


def _short(error: BaseException) -> str:
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    return text[:300]
