"""Preprocessing shared by training (cache building) and inference (``hlfnet predict``).

2-D images (§3.1, skin lesions): resize to ``image_size`` with Pillow's bilinear filter (antialiased when
shrinking), then assemble the model's channels: 1 = grey, 3 = RGB, 4 = RGB + grey, where grey is Pillow's
``L`` conversion (ITU-R 601-2 luma, rounded to 8 bits) of the resized RGB image and a grey source is
replicated to RGB. 8-bit sources stay ``uint8`` until the last step divides by 255, so the cached arrays and
:func:`preprocess_image` agree bit for bit. Masks are resized nearest-neighbour.

Volumes (§3.1, spleen): reoriented with nibabel so that every axial slice is shown the radiological way
(rows anterior → posterior, columns patient right → left, slices inferior → superior; axis codes ``PLS``),
scaled to [0, 1] by per-volume min–max (or a CT window), and each slice resized to ``image_size``
(bilinear, antialiased; labels nearest). :func:`slices_to_volume` undoes resize and reorientation.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from hlfnet.data.channels import resolve_in_channels
from hlfnet.data.config import DataConfig
from hlfnet.data.io import load_volume, read_image

__all__ = [
    "SLICE_AXCODES",
    "resize_image",
    "resize_mask",
    "to_model_channels",
    "image_to_array",
    "preprocess_image",
    "reorient_to_slices",
    "normalize_volume",
    "volume_to_slices",
    "slices_to_volume",
    "labels_to_slices",
]

logger = logging.getLogger(__name__)

SLICE_AXCODES = ("P", "L", "S")


def resize_image(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize ``(H, W, C)`` (``uint8`` or ``float32``) to ``size`` = (H, W) with Pillow bilinear, per channel."""
    from PIL import Image

    height, width = size
    if array.shape[:2] == (height, width):
        return array
    if array.dtype == np.uint8 and array.shape[2] in (1, 3):
        img = Image.fromarray(array[..., 0] if array.shape[2] == 1 else array)
        out = np.asarray(img.resize((width, height), Image.BILINEAR))
        return out[..., None] if out.ndim == 2 else out
    channels = []
    for c in range(array.shape[2]):
        plane = array[..., c]
        img = (
            Image.fromarray(plane)
            if plane.dtype == np.uint8
            else Image.fromarray(plane.astype(np.float32), "F")
        )
        channels.append(np.asarray(img.resize((width, height), Image.BILINEAR)))
    out = np.stack(channels, axis=-1)
    if array.dtype != np.uint8:
        out = np.clip(out, 0.0, 1.0).astype(np.float32)
    return out


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a ``uint8`` ``(H, W)`` label mask nearest-neighbour to ``size`` = (H, W)."""
    from PIL import Image

    if mask.shape == tuple(size):
        return mask
    return np.asarray(Image.fromarray(mask).resize((size[1], size[0]), Image.NEAREST))


def _luma(rgb: np.ndarray) -> np.ndarray:
    if rgb.dtype == np.uint8:
        # Exactly Pillow's convert("L"): L = (R*19595 + G*38470 + B*7471 + 0x8000) >> 16.
        r, g, b = (rgb[..., i].astype(np.uint32) for i in range(3))
        return ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16).astype(np.uint8)
    return (0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]).astype(np.float32)


def to_model_channels(array: np.ndarray, in_channels: int, source: str | Path = "<array>") -> np.ndarray:
    """``(H, W, C)`` → ``(in_channels, H, W)`` by the documented rule (dtype kept).

    1 = grey (colour → luma), 3 = RGB (grey replicated), 4 = RGB + grey; any other count must equal C.

    Raises:
        ValueError: the source's channels cannot make ``in_channels``, naming ``source``.
    """
    channels = array.shape[2]
    if channels in (1, 3) and in_channels in (1, 3, 4):
        if channels == 1:
            grey = array[..., 0]
            rgb = np.repeat(array, 3, axis=2)
        else:
            rgb = array
            grey = _luma(array)
        if in_channels == 1:
            out = grey[..., None]
        elif in_channels == 3:
            out = rgb
        else:
            out = np.concatenate([rgb, grey[..., None]], axis=2)
    elif channels == in_channels:
        out = array
    else:
        raise ValueError(
            f"{source}: image has {channels} channel(s), cannot make in_channels={in_channels} "
            "(1 = grey, 3 = RGB, 4 = RGB + grey work for grey and colour images; other counts must match)"
        )
    return np.ascontiguousarray(np.moveaxis(out, 2, 0))


def image_to_array(image: str | Path | np.ndarray) -> tuple[np.ndarray, str]:
    """Decode a path (by :func:`~hlfnet.data.io.read_image`) or take an array ``(H, W)``/``(H, W, C)``.

    Arrays follow the file rule: ``uint8`` kept, ``bool`` → 0/255, anything else per-image min–max to [0, 1].
    """
    if isinstance(image, np.ndarray):
        array = image[..., None] if image.ndim == 2 else image
        if array.ndim != 3:
            raise ValueError(f"image array must be (H, W) or (H, W, C), got shape {image.shape}")
        if array.dtype == bool:
            array = array.astype(np.uint8) * 255
        elif array.dtype != np.uint8:
            array = array.astype(np.float32)
            if not np.isfinite(array).all():
                raise ValueError("image array holds NaN/inf values")
            low, high = float(array.min()), float(array.max())
            array = (array - low) / (high - low) if high > low else np.zeros_like(array)
        return array, "<array>"
    return read_image(image), str(image)


def preprocess_image(image: str | Path | np.ndarray, cfg: DataConfig) -> tuple[torch.Tensor, tuple[int, int]]:
    """The training preprocessing of one 2-D image, for inference.

    Args:
        image: Image file or array ``(H, W)`` / ``(H, W, C)`` (see :func:`image_to_array`).
        cfg: The training run's data config (``image_size``, ``in_channels``, ``format``).

    Returns:
        ``(tensor, (H0, W0))``: ``float32`` ``(C, H, W)`` in [0, 1] and the original size (to resize the
        prediction back, nearest-neighbour).

    Raises:
        FileNotFoundError, ValueError: unreadable image or impossible channel conversion, naming the file.
    """
    array, source = image_to_array(image)
    original = (int(array.shape[0]), int(array.shape[1]))
    in_channels = resolve_in_channels(cfg, array.shape[2])
    chw = to_model_channels(resize_image(array, cfg.image_size), in_channels, source)
    return _to_float_tensor(chw), original


def _to_float_tensor(chw: np.ndarray) -> torch.Tensor:
    if chw.dtype == np.uint8:
        return torch.from_numpy(np.divide(chw, np.float32(255.0), dtype=np.float32))
    return torch.from_numpy(np.array(chw, np.float32))


def slice_orientation(affine: np.ndarray) -> np.ndarray:
    import nibabel as nib

    return nib.orientations.ornt_transform(
        nib.orientations.io_orientation(affine), nib.orientations.axcodes2ornt(SLICE_AXCODES)
    )


def reorient_to_slices(data: np.ndarray, affine: np.ndarray | None) -> np.ndarray:
    """Reorder/flip voxel axes so that ``data[..., k]`` (or ``data[:, :, k, c]``) is axial slice ``k``.

    Args:
        data: ``(X, Y, Z)`` or ``(X, Y, Z, C)`` in the file's voxel order.
        affine: The file's affine; ``None`` = data already in the slice layout.

    Returns:
        ``(rows, cols, slices[, C])`` in the ``PLS`` layout (see module docstring).
    """
    import nibabel as nib

    if affine is None:
        return data
    return nib.orientations.apply_orientation(data, slice_orientation(affine))


def normalize_volume(data: np.ndarray, ct_window: tuple[float, float] | None) -> np.ndarray:
    """Scale to [0, 1]: per-volume (per-channel) min–max, or clip to ``ct_window`` and scale."""
    data = data.astype(np.float32, copy=False)
    if ct_window is not None:
        low, high = ct_window
        return ((np.clip(data, low, high) - low) / (high - low)).astype(np.float32)
    axes = (0, 1, 2)
    low = data.min(axis=axes, keepdims=True)
    high = data.max(axis=axes, keepdims=True)
    scale = np.where(high > low, high - low, 1.0)
    return ((data - low) / scale).astype(np.float32)


def _resize_slices(slices: torch.Tensor, size: tuple[int, int], labels: bool) -> torch.Tensor:
    """``(N, C, h, w)`` → ``(N, C, H, W)``: bilinear antialiased for images, nearest for labels."""
    if tuple(slices.shape[-2:]) == tuple(size):
        return slices
    if labels:
        return F.interpolate(slices.float(), size=size, mode="nearest-exact").to(slices.dtype)
    return F.interpolate(slices, size=size, mode="bilinear", align_corners=False, antialias=True).clamp_(0, 1)


def volume_to_slices(
    volume: str | Path | np.ndarray, cfg: DataConfig, affine: np.ndarray | None = None
) -> torch.Tensor:
    """Every axial slice of a volume, preprocessed as in training.

    Args:
        volume: NIfTI path, or an array ``(X, Y, Z[, C])`` as returned by :func:`~hlfnet.data.io.load_volume`.
        cfg: Data config (``image_size``, ``ct_window``, ``in_channels``).
        affine: Affine of an array ``volume`` (from its :class:`~hlfnet.data.io.VolumeMeta`); ``None`` for an
            array already in the slice layout. Ignored for a path.

    Returns:
        ``float32`` ``(N, C, H, W)`` in [0, 1], N = number of axial slices, in ``PLS`` order.

    Raises:
        FileNotFoundError, ValueError: unreadable file, NaN/inf voxels, channel mismatch.
    """
    if isinstance(volume, (str, Path)):
        volume, meta = load_volume(volume)
        affine = meta.affine
    elif not np.isfinite(volume).all():
        raise ValueError(f"volume array holds {int((~np.isfinite(volume)).sum())} NaN/inf voxel(s)")
    data = normalize_volume(reorient_to_slices(volume, affine), cfg.ct_window)
    if data.ndim == 3:
        data = data[..., None]
    channels = data.shape[3]
    in_channels = resolve_in_channels(cfg, channels)
    if in_channels != channels:
        raise ValueError(f"volume has {channels} channel(s) but in_channels={in_channels}")
    slices = torch.from_numpy(np.ascontiguousarray(np.transpose(data, (2, 3, 0, 1))))
    return _resize_slices(slices, cfg.image_size, labels=False)


def labels_to_slices(labels: np.ndarray, affine: np.ndarray | None, size: tuple[int, int]) -> torch.Tensor:
    """Label volume ``(X, Y, Z)`` → ``uint8`` ``(N, H, W)`` slices, same orientation as :func:`volume_to_slices`."""
    data = reorient_to_slices(labels, affine)
    slices = torch.from_numpy(np.ascontiguousarray(np.transpose(data, (2, 0, 1))))[:, None]
    return _resize_slices(slices, size, labels=True)[:, 0]


def slices_to_volume(
    pred: np.ndarray | torch.Tensor,
    reference_nifti_path: str | Path,
    out_path: str | Path,
    slice_indices: list[int] | np.ndarray | None = None,
    root: str | Path | None = None,
) -> Path:
    """Stack per-slice predictions back into a NIfTI with the reference's shape, affine and header.

    Args:
        pred: ``(N, H, W)`` class indices (``uint8``), slices in the order of :func:`volume_to_slices`.
        reference_nifti_path: The image volume the slices came from.
        out_path: Output ``.nii.gz``/``.nii`` path (parent folders are created).
        slice_indices: Slice index of each prediction when ``pred`` covers only some slices (others → 0);
            ``None`` = all slices in order.
        root: the output folder ``out_path`` must stay inside (written atomically, never through a symlink;
            :mod:`hlfnet.atomic`).

    Returns:
        ``out_path``.

    Raises:
        ValueError: wrong number of slices, out-of-range indices, or non-integer predictions.
    """
    import nibabel as nib

    from hlfnet.atomic import atomic_path

    reference_nifti_path = Path(reference_nifti_path)
    if not reference_nifti_path.is_file():
        raise FileNotFoundError(f"{reference_nifti_path}: reference NIfTI not found")
    ref = nib.load(str(reference_nifti_path))
    pred = torch.as_tensor(np.asarray(pred) if not isinstance(pred, torch.Tensor) else pred)
    if pred.ndim != 3 or pred.is_floating_point():
        raise ValueError(
            f"pred must be integer class indices (N, H, W), got {tuple(pred.shape)} {pred.dtype}"
        )
    spatial = tuple(int(s) for s in ref.shape[:3])
    ornt = slice_orientation(ref.affine)
    # Shape of the reference in the slice layout: permute the spatial shape like apply_orientation does.
    layout_shape = [0, 0, 0]
    for in_axis, (out_axis, _flip) in enumerate(ornt):
        layout_shape[int(out_axis)] = spatial[in_axis]
    rows, cols, n_slices = layout_shape
    if slice_indices is None:
        if pred.shape[0] != n_slices:
            raise ValueError(
                f"pred has {pred.shape[0]} slices but {reference_nifti_path} has {n_slices} axial slices; "
                "pass slice_indices for a subset"
            )
        slice_indices = list(range(n_slices))
    slice_indices = [int(i) for i in slice_indices]
    if len(slice_indices) != pred.shape[0] or any(not 0 <= i < n_slices for i in slice_indices):
        raise ValueError(f"slice_indices must give one index in 0..{n_slices - 1} per predicted slice")
    resized = _resize_slices(pred.to(torch.uint8)[:, None], (rows, cols), labels=True)[:, 0].numpy()
    stacked = np.zeros((rows, cols, n_slices), dtype=np.uint8)
    stacked[:, :, slice_indices] = np.transpose(resized, (1, 2, 0))
    inverse = nib.orientations.ornt_transform(
        nib.orientations.axcodes2ornt(SLICE_AXCODES), nib.orientations.io_orientation(ref.affine)
    )
    data = np.ascontiguousarray(nib.orientations.apply_orientation(stacked, inverse))
    header = ref.header.copy()
    header.set_data_dtype(np.uint8)
    out = (
        nib.Nifti1Image(data, ref.affine, header)
        if isinstance(ref, nib.Nifti1Image)
        else nib.Nifti2Image(data, ref.affine, header)
    )
    out.set_qform(ref.get_qform(), code=int(ref.header["qform_code"]))
    out.set_sform(ref.get_sform(), code=int(ref.header["sform_code"]))
    out.header.set_slope_inter(1.0, 0.0)
    out_path = Path(out_path)
    suffix = ".nii.gz" if out_path.name.lower().endswith(".gz") else ".nii"
    with atomic_path(out_path, root, suffix=suffix) as tmp:
        nib.save(out, str(tmp))
    logger.info("wrote %s %s", out_path, data.shape)
    return out_path
