"""Readers: 2-D images, label masks and NIfTI volumes, each validated and converted by one documented rule.

Image conversion rule (:func:`read_image`), applied in training and inference alike:

* 8-bit grey (``L``, ``1``) → 1 channel, 8-bit colour (``RGB``) → 3 channels, kept as ``uint8``;
* ``RGBA``/``LA``: the alpha channel is dropped (colour/grey kept as stored);
* palette (``P``) images are expanded through their palette to RGB; ``CMYK``/``YCbCr``/``LAB``/``HSV`` → RGB;
* 16-bit and 32-bit images (``I;16``, ``I``, ``F``) and non-``uint8`` ``.npy`` arrays are scaled to [0, 1] by
  per-image min–max (their range rarely fills the container), as ``float32``;
* ``.npy`` arrays ``(H, W)`` or ``(H, W, C)`` give any channel count; multi-frame files are refused.

Mask rule (:func:`read_mask`): a mask is a single-channel label image (grey, palette indices, 1-bit, 16-bit,
or colour whose channels are all equal; a GIF with a grey palette gives its grey values). Its values must belong to the declared label set, else loading fails
naming the file and the stray values — unless ``mask_threshold`` asks for binarisation, or ``label_values``
maps stored values to classes (list index = class, unlisted values → background 0).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from hlfnet.errors import ResourceLimitError, UserError
from hlfnet.limits import (
    GZIP_MAX_RATIO,
    LIMITS,
    check_declared_bytes,
    check_image_pixels,
    check_volume_voxels,
    limit,
)

__all__ = [
    "IMAGE_SUFFIXES",
    "NIFTI_SUFFIXES",
    "VolumeMeta",
    "check_nifti_size",
    "check_regular_file",
    "read_image",
    "read_image_channels",
    "channel_files",
    "read_mask",
    "labels_to_classes",
    "unmapped_values",
    "load_volume",
    "load_volume_channels",
    "load_label_volume",
    "read_label_data",
    "is_nifti",
    "nifti_stem",
]

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif", ".npy")
NIFTI_SUFFIXES = (".nii.gz", ".nii")
_COLOUR_MODES = ("RGB", "RGBA", "RGBX", "RGBa", "P", "PA", "CMYK", "YCbCr", "LAB", "HSV")


def check_regular_file(path: Path, what: str = "input") -> None:
    """Refuse, naming it, a path that is missing or not a regular file (a FIFO, a socket, a device, a folder
    or a broken link): reading one would block, fail obscurely, or be skipped without a word.

    Raises:
        FileNotFoundError: nothing there (a broken link is named as such).
        UserError: something other than a regular file.
    """
    import stat

    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        if path.is_symlink():
            raise UserError(
                f"{path}: is a broken symbolic link (its target is missing); fix or remove it"
            ) from None
        raise FileNotFoundError(f"{path}: file not found") from None
    if not stat.S_ISREG(mode):
        kind = (
            "a folder"
            if stat.S_ISDIR(mode)
            else "a FIFO (named pipe)"
            if stat.S_ISFIFO(mode)
            else "a socket"
            if stat.S_ISSOCK(mode)
            else "a device"
        )
        raise UserError(f"{path}: is {kind}, not a regular file; hlfnet reads only regular files as {what}")


def is_nifti(path: Path) -> bool:
    """True for ``.nii`` / ``.nii.gz`` files."""
    return path.name.lower().endswith(NIFTI_SUFFIXES)


def nifti_stem(path: Path) -> str:
    """File name without ``.nii.gz`` / ``.nii``."""
    name = path.name
    for suffix in NIFTI_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def _pil_bomb(path: Path, error: Exception) -> ResourceLimitError:
    variable = LIMITS["image_pixels"][0]
    return ResourceLimitError(
        f"{path}: image too large to decode ({error}); limit {limit('image_pixels'):,} pixels, raise it with "
        f"{variable} if the machine has the memory (docs/safety.md)"
    )


def pil_header(path: Path):
    """``Image.open`` (header only) with the pixel limit checked before any decoding."""
    import warnings

    from PIL import Image, UnidentifiedImageError

    check_regular_file(path, "an image")
    try:
        with warnings.catch_warnings():
            # hlfnet's own limit (HLFNET_MAX_IMAGE_PIXELS) decides, with a one-line error, not PIL's warning
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            Image.MAX_IMAGE_PIXELS = max(limit("image_pixels"), Image.MAX_IMAGE_PIXELS or 0)
            img = Image.open(path)
    except Image.DecompressionBombError as error:
        raise _pil_bomb(path, error) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise ValueError(f"{path}: unreadable or truncated image ({error})") from error
    check_image_pixels((img.size[1], img.size[0]), path)
    return img


def _open_pil(path: Path):
    from PIL import Image

    img = pil_header(path)
    try:
        if getattr(img, "n_frames", 1) > 1:
            raise ValueError(f"{path}: multi-frame image ({img.n_frames} frames); save one image per file")
        img.load()
    except Image.DecompressionBombError as error:
        raise _pil_bomb(path, error) from None
    except (OSError, SyntaxError, EOFError) as error:
        raise ValueError(f"{path}: unreadable or truncated image ({error})") from error
    return img


def _minmax(array: np.ndarray, path: Path) -> np.ndarray:
    array = array.astype(np.float32)
    if not np.isfinite(array).all():
        raise ValueError(f"{path}: {int((~np.isfinite(array)).sum())} NaN/inf pixel(s)")
    low, high = float(array.min()), float(array.max())
    if high <= low:
        return np.zeros_like(array)
    return (array - low) / (high - low)


_NPY_KINDS = {
    "U": "text",
    "S": "bytes",
    "V": "structured or raw",
    "M": "dates",
    "m": "durations",
    "c": "complex",
}


def npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of a ``.npy`` file from its header alone, checked against the file's size."""
    from numpy.lib import format as npy_format

    check_regular_file(path, "an array")
    try:
        with path.open("rb") as handle:
            version = npy_format.read_magic(handle)
            if version == (1, 0):
                shape, _, dtype = npy_format.read_array_header_1_0(handle)
            else:
                shape, _, dtype = npy_format.read_array_header_2_0(handle)
            offset = handle.tell()
    except (OSError, ValueError, EOFError) as error:
        raise ValueError(f"{path}: unreadable or truncated .npy array ({error})") from error
    if dtype.hasobject:
        raise ValueError(f"{path}: .npy array of Python objects; only numeric arrays are read (no pickle)")
    if (
        dtype.kind not in "biuf"
        or dtype.itemsize < 1
        or dtype.names is not None
        or dtype.subdtype is not None
    ):
        raise UserError(
            f"{path}: .npy array of type {dtype} ({_NPY_KINDS.get(dtype.kind, 'not numeric')}); images are arrays "
            "of booleans, integers or floats"
        )
    needed = (
        offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize if all(s >= 0 for s in shape) else -1
    )
    if needed < 0 or path.stat().st_size < needed:
        raise ValueError(f"{path}: truncated .npy array (header says shape {tuple(shape)} {dtype})")
    return tuple(int(s) for s in shape), dtype


def _load_npy(path: Path) -> np.ndarray:
    shape, _ = npy_header(path)
    if len(shape) not in (2, 3):
        raise ValueError(f"{path}: .npy image must be (H, W) or (H, W, C), got shape {shape}")
    check_image_pixels(shape, path)
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        raise ValueError(f"{path}: unreadable or truncated .npy array ({error})") from error
    return array


def read_image(path: str | Path) -> np.ndarray:
    """Read a 2-D image as ``(H, W, C)``: ``uint8`` for 8-bit sources, else ``float32`` in [0, 1].

    Args:
        path: PNG, JPEG, BMP, TIFF or ``.npy`` file.

    Returns:
        ``(H, W, C)`` array; C = 1 (grey), 3 (colour) or the ``.npy`` channel count.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: unreadable, truncated, multi-frame or of an unsupported shape, naming the file.
    """
    path = Path(path)
    if path.suffix.lower() == ".npy":
        array = _load_npy(path)
        if array.ndim == 2:
            array = array[..., None]
        if array.ndim != 3 or array.shape[-1] > 64:
            raise ValueError(
                f"{path}: .npy image must be (H, W) or (H, W, C) with C ≤ 64, got shape {array.shape}"
            )
        if array.dtype == np.uint8:
            return array
        if array.dtype == bool:
            return array.astype(np.uint8) * 255
        return _minmax(array, path)
    img = _open_pil(path)
    mode = img.mode
    if mode in ("1", "L"):
        return np.asarray(img.convert("L"), dtype=np.uint8)[..., None]
    if mode == "LA":
        return np.asarray(img.getchannel("L"), dtype=np.uint8)[..., None]
    if mode in ("RGB",):
        return np.asarray(img, dtype=np.uint8)
    if mode in _COLOUR_MODES:
        # Palette/RGBA/CMYK...: through the palette to RGB; alpha is dropped (documented rule).
        return np.asarray(img.convert("RGB"), dtype=np.uint8)
    if mode.startswith("I") or mode == "F":
        return _minmax(np.asarray(img), path)[..., None]
    raise ValueError(f"{path}: unsupported image mode {mode!r}")


def raw_mask(path: Path) -> np.ndarray:
    """The label image as stored (no label check): a 2-D integer array, for checks that report its values."""
    if path.suffix.lower() == ".npy":
        if not path.is_file():
            raise FileNotFoundError(f"{path}: file not found")
        array = _load_npy(path)
        if array.ndim == 3 and array.shape[-1] == 1:
            array = array[..., 0]
    else:
        img = _open_pil(path)
        if img.mode in ("LA", "PA"):
            img = img.getchannel(0)
        if img.mode == "P" and img.format == "GIF":
            # GIF has no grey mode: a grey palette stands for the grey values (DRIVE's 0/255 vessel masks)
            rgb = np.asarray(img.convert("RGB"))
            grey = (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all()
            array = rgb[..., 0] if grey else np.asarray(img)
        elif img.mode == "P":
            array = np.asarray(img)  # palette masks store class indices
        elif img.mode == "1":
            array = np.asarray(img, dtype=np.uint8)
        elif img.mode in ("RGB", "RGBA", "RGBX"):
            rgb = np.asarray(img)[..., :3]
            if not ((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all()):
                raise ValueError(
                    f"{path}: colour mask whose R, G, B channels differ; save masks as single-channel label images"
                )
            array = rgb[..., 0]
        elif img.mode in ("L", "F") or img.mode.startswith("I"):
            array = np.asarray(img)
        else:
            raise ValueError(f"{path}: unsupported mask mode {img.mode!r}")
    if array.ndim != 2:
        raise ValueError(f"{path}: mask must be 2-D (H, W), got shape {array.shape}")
    return array


def labels_to_classes(
    array: np.ndarray,
    num_classes: int,
    mask_threshold: int | None,
    source: str | Path,
    label_values: tuple[int, ...] | None = None,
) -> np.ndarray:
    """Map raw label values to class indices ``0..num_classes-1`` (``uint8``), strictly.

    Binary (``num_classes=2``) masks may hold {0, 1} or {0, 255}; multi-class masks 0..K-1. With
    ``mask_threshold`` t, binary masks become ``value > t`` whatever they hold. With ``label_values``, the
    value ``label_values[k]`` becomes class ``k`` and every value not listed becomes background (0): a
    selection of classes from a larger label map (:func:`unmapped_values` lists what was dropped).

    Raises:
        ValueError: NaN/inf, or values outside the declared set (named with the file ``source``).
    """
    if array.dtype.kind == "f":
        if not np.isfinite(array).all():
            raise ValueError(f"{source}: {int((~np.isfinite(array)).sum())} NaN/inf label value(s)")
        if not np.array_equal(array, np.round(array)):
            raise ValueError(
                f"{source}: non-integer label values (e.g. {array[array != np.round(array)][:3]})"
            )
    if mask_threshold is not None:
        return (array > mask_threshold).astype(np.uint8)
    if label_values is not None:
        out = np.zeros(array.shape, np.uint8)
        for k, value in enumerate(label_values):
            if k:
                out[array == value] = k
        return out
    values = np.unique(array)
    if num_classes == 2:
        allowed = {0, 255} if 255 in values else {0, 1}
        stray = [v for v in values.tolist() if v not in allowed]
        if stray:
            raise ValueError(
                f"{source}: mask values {_fmt(stray)} outside the declared binary label set {{0, 1}} or {{0, 255}} "
                "(a JPEG-compressed or resampled mask?); fix the mask or set mask_threshold (e.g. 127) to binarise"
            )
        return (array > 0).astype(np.uint8)
    stray = [v for v in values.tolist() if not (0 <= v < num_classes)]
    if stray:
        raise ValueError(
            f"{source}: label values {_fmt(stray)} outside the declared classes 0..{num_classes - 1} "
            f"(num_classes={num_classes}); masks in another encoding, or a larger label map to select from: "
            f"set data.label_values (stored value per class, e.g. {_fmt(sorted(values.tolist())[:num_classes])})"
        )
    return array.astype(np.uint8)


def unmapped_values(values: list[int] | set[int], label_values: tuple[int, ...] | None) -> list[int]:
    """The stored ``values`` that ``label_values`` does not list (they count as background), sorted."""
    if label_values is None:
        return []
    return sorted(int(v) for v in set(values) - set(label_values))


def _fmt(values: list) -> str:
    values = [int(v) if float(v).is_integer() else v for v in values]
    return str(values[:8])[:-1] + (", ...]" if len(values) > 8 else "]")


def read_mask(
    path: str | Path,
    num_classes: int = 2,
    mask_threshold: int | None = None,
    label_values: tuple[int, ...] | None = None,
) -> np.ndarray:
    """Read a 2-D label mask as ``uint8`` class indices ``(H, W)``.

    Args:
        path: PNG/BMP/TIFF/GIF/JPEG/``.npy`` label image.
        num_classes: Declared number of classes including background.
        mask_threshold: Binarise as ``value > t`` instead of checking the label set.
        label_values: Stored value of each class (see :func:`labels_to_classes`).

    Raises:
        FileNotFoundError: missing file.
        ValueError: unreadable file, colour mask, or stray values, naming the file.
    """
    path = Path(path)
    return labels_to_classes(raw_mask(path), num_classes, mask_threshold, path, label_values)


class VolumeMeta(NamedTuple):
    """Geometry of a loaded volume: the file, its affine (4×4, voxel → world mm) and NIfTI header."""

    path: Path
    affine: np.ndarray
    header: object


def _load_nifti(path: Path):
    import nibabel as nib

    check_regular_file(path, "a volume")
    try:
        img = nib.load(str(path))
        shape = tuple(int(s) for s in img.shape)
    except Exception as error:  # nibabel raises many types for broken files
        raise ValueError(f"{path}: unreadable NIfTI ({type(error).__name__}: {error})") from error
    if len(shape) < 3:
        raise UserError(
            f"{path}: NIfTI of shape {shape} is not a volume; give 3-D (X, Y, Z) or 4-D (X, Y, Z, C) data "
            "(2-D images go in PNG/TIFF/.npy folders, format: folder)"
        )
    check_volume_voxels(shape, path)
    check_nifti_size(img, shape, path)
    affine = np.asarray(img.affine, dtype=np.float64)
    if not np.isfinite(affine).all() or _singular(affine[:3, :3]):
        raise UserError(
            f"{path}: the NIfTI affine is singular or not finite (all zero?): the file has no usable geometry; "
            "fix its qform/sform (e.g. nibabel's img.set_qform)"
        )
    return img


def check_nifti_size(img, shape: tuple[int, ...], path: Path) -> None:
    """Refuse a NIfTI whose header declares more data than the file can hold, before reading any of it."""
    header = img.header
    dtype = header.get_data_dtype()
    if dtype.itemsize < 1 or dtype.kind not in "biuf":
        raise UserError(f"{path}: NIfTI data type {dtype} is not a numeric type hlfnet reads")
    declared = int(header.get_data_offset()) + math.prod(shape) * dtype.itemsize
    size = path.stat().st_size
    gzipped = path.name.lower().endswith(".gz")
    check_declared_bytes(
        declared,
        size * GZIP_MAX_RATIO if gzipped else size,
        path,
        f"shape {shape} of {dtype}{' (compressed)' if gzipped else ''}",
    )


def _singular(matrix: np.ndarray) -> bool:
    """Singular relative to the size of its columns (voxel sizes): 10 µm voxels are fine, zeros are not."""
    norms = np.linalg.norm(matrix, axis=0)
    if not (norms > 0).all():
        return True
    return abs(float(np.linalg.det(matrix))) <= 1e-6 * float(np.prod(norms))


def _nifti_data(img, path: Path) -> np.ndarray:
    try:
        data = np.asarray(img.dataobj, dtype=np.float32)
    except Exception as error:  # truncated gzip streams raise EOFError, zlib.error, OSError...
        raise ValueError(
            f"{path}: unreadable or truncated NIfTI data ({type(error).__name__}: {error})"
        ) from error
    if data.ndim == 2:
        data = data[..., None]
    if data.ndim == 5 and data.shape[3] == 1:
        data = data[:, :, :, 0, :]
    if data.ndim not in (3, 4):
        raise ValueError(f"{path}: volume must be 3-D (X, Y, Z) or 4-D (X, Y, Z, C), got shape {data.shape}")
    return data


def load_volume(path: str | Path) -> tuple[np.ndarray, VolumeMeta]:
    """Load a NIfTI volume as stored on disk (no reorientation) and check it is finite.

    Args:
        path: ``.nii`` or ``.nii.gz`` file.

    Returns:
        ``(array, meta)``: ``float32`` ``(X, Y, Z)`` or ``(X, Y, Z, C)`` in the file's voxel order, and
        :class:`VolumeMeta` with its affine and header.

    Raises:
        FileNotFoundError: missing file.
        ValueError: unreadable/truncated file, bad dimensionality, or NaN/inf voxels (with their count).
    """
    path = Path(path)
    img = _load_nifti(path)
    data = _nifti_data(img, path)
    bad = ~np.isfinite(data)
    if bad.any():
        raise ValueError(f"{path}: {int(bad.sum())} NaN/inf voxel(s)")
    return data, VolumeMeta(path, np.asarray(img.affine, dtype=np.float64), img.header)


def channel_files(source: str | Path | Sequence[str | Path]) -> tuple[Path, ...]:
    """The channel files of one input: ``(path,)`` for one file, the files in channel order for a sequence."""
    if isinstance(source, (str, os.PathLike)):
        return (Path(source),)
    files = tuple(Path(f) for f in source)
    if not files:
        raise ValueError("an input needs at least one channel file")
    return files


def read_image_channels(source: str | Path | Sequence[str | Path]) -> np.ndarray:
    """Read a 2-D image stored one file per channel (nnU-Net's ``<case>_0000.png``, ``_0001``...) as ``(H, W, C)``.

    Each file is read by :func:`read_image` (a grey file is one channel, an RGB file three, as stored) and the
    files are concatenated along the channel axis in order. One file is :func:`read_image` of it. Mixed
    ``uint8`` and ``float32`` files give ``float32`` in [0, 1].

    Raises:
        ValueError: a file is unreadable, or two files differ in size (naming both).
    """
    files = channel_files(source)
    arrays = [read_image(f) for f in files]
    if len(arrays) == 1:
        return arrays[0]
    for f, a in zip(files[1:], arrays[1:], strict=True):
        if a.shape[:2] != arrays[0].shape[:2]:
            raise ValueError(
                f"{f}: size {a.shape[1]}×{a.shape[0]} (W×H) differs from channel 0 {files[0]} "
                f"{arrays[0].shape[1]}×{arrays[0].shape[0]}; the channel files of a case must share one size"
            )
    if any(a.dtype != np.uint8 for a in arrays):
        arrays = [a.astype(np.float32) / 255.0 if a.dtype == np.uint8 else a for a in arrays]
    return np.concatenate(arrays, axis=2)


def load_volume_channels(source: str | Path | Sequence[str | Path]) -> tuple[np.ndarray, VolumeMeta]:
    """Load a volume stored one NIfTI file per channel as ``(X, Y, Z, C)`` with channel 0's :class:`VolumeMeta`.

    Each file must be a 3-D volume on the same grid as channel 0 (shape and affine). One file is
    :func:`load_volume` of it (3-D or 4-D as stored).

    Raises:
        ValueError: a file is unreadable or 4-D, or its shape or affine differs from channel 0's (naming both).
    """
    files = channel_files(source)
    first, meta = load_volume(files[0])
    if len(files) == 1:
        return first, meta
    volumes = [first]
    for f in files[1:]:
        data, other = load_volume(f)
        for v, name in ((first, files[0]), (data, f)):
            if v.ndim != 3:
                raise ValueError(f"{name}: {v.ndim}-D volume; each channel file must hold one 3-D volume")
        if data.shape != first.shape:
            raise ValueError(
                f"{f}: shape {data.shape} differs from channel 0 {files[0]} {first.shape}; the channel files "
                "of a case must share one grid"
            )
        if not np.allclose(other.affine, meta.affine, rtol=1e-5, atol=1e-4):
            raise ValueError(
                f"{f}: affine differs from channel 0 {files[0]}; the channel files of a case must share one "
                "grid (resample them onto channel 0's)"
            )
        volumes.append(data)
    return np.stack(volumes, axis=-1), meta


def read_label_data(path: str | Path) -> np.ndarray:
    """The data of a NIfTI label volume as stored (any dtype), after the header checks of every NIfTI read.

    Raises:
        FileNotFoundError, ValueError: as :func:`load_volume` (names the file).
    """
    path = Path(path)
    img = _load_nifti(path)
    try:
        return np.asarray(img.dataobj)
    except Exception as error:  # truncated gzip streams raise EOFError, zlib.error, OSError...
        raise ValueError(f"{path}: unreadable or truncated NIfTI data ({type(error).__name__})") from error


def load_label_volume(
    path: str | Path,
    image_meta: VolumeMeta,
    image_shape: tuple[int, ...],
    num_classes: int,
    label_values: tuple[int, ...] | None = None,
) -> np.ndarray:
    """Load a label volume, checking shape and affine against its image, as ``uint8`` classes ``(X, Y, Z)``.

    ``label_values`` maps stored values to classes (see :func:`labels_to_classes`).

    Raises:
        ValueError: shape or affine differs from the image, stray label values, NaN, naming both files.
    """
    path = Path(path)
    img = _load_nifti(path)
    data = _nifti_data(img, path)
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.shape != tuple(image_shape[:3]):
        raise ValueError(
            f"{path}: label shape {data.shape} differs from image {image_meta.path} shape {tuple(image_shape[:3])}"
        )
    affine = np.asarray(img.affine, dtype=np.float64)
    if not np.allclose(affine, image_meta.affine, atol=1e-3, rtol=1e-4):
        raise ValueError(
            f"{path}: label affine differs from image {image_meta.path} affine "
            f"(max difference {float(np.abs(affine - image_meta.affine).max()):.4g})"
        )
    return labels_to_classes(data, num_classes, None, path, label_values)
