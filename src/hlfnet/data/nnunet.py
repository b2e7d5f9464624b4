"""The ``dataset.json`` of an nnU-Net v2 raw dataset: channels, labels and file ending, validated.

nnU-Net v2 (``nnunetv2/dataset_conversion/generate_dataset_json.py``) writes::

    {"channel_names": {"0": "CT"}, "labels": {"background": 0, "spleen": 1},
     "numTraining": 41, "file_ending": ".nii.gz"}

with images ``imagesTr/<case>_<XXXX><file_ending>`` (one file per channel, ``XXXX`` = the channel's 4-digit
index; hlfnet stacks them in channel order), labels ``labelsTr/<case><file_ending>`` holding the class values of ``labels``, and unlabelled test
images in ``imagesTs/``. hlfnet reads 2-D datasets (``.png``, ``.bmp``, ``.tif``, ``.tiff``) and 3-D NIfTI
(``.nii.gz``, ``.nii``). Region-based labels (a list of values per entry, nnU-Net's BraTS-style regions) and the
``ignore`` label are refused with a one-line error: hlfnet trains one class per voxel.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

__all__ = ["NNUNET_2D_ENDINGS", "NnunetManifest", "is_nnunet_manifest", "nnunet_is_volume", "read_manifest"]

NNUNET_2D_ENDINGS = (".png", ".bmp", ".tif", ".tiff")
_NNUNET_3D_ENDINGS = (".nii.gz", ".nii")


@dataclass(frozen=True)
class NnunetManifest:
    """What hlfnet uses of an nnU-Net ``dataset.json``.

    Attributes:
        path: the ``dataset.json`` file.
        channels: channel names in channel order (``channel_names`` sorted by index).
        labels: ``{name: value}`` sorted by value; the list index of a value is its class.
        file_ending: ``".png"``, ``".nii.gz"``...
    """

    path: Path
    channels: tuple[str, ...]
    labels: tuple[tuple[str, int], ...]
    file_ending: str

    @property
    def is_volume(self) -> bool:
        """True for NIfTI datasets (3-D), False for 2-D image datasets."""
        return self.file_ending.lower() in _NNUNET_3D_ENDINGS

    @property
    def label_values(self) -> tuple[int, ...]:
        """The stored value of every class, class order."""
        return tuple(v for _, v in self.labels)


def is_nnunet_manifest(path: Path) -> bool:
    """True when ``path`` is a JSON object with nnU-Net v2's ``channel_names`` and ``file_ending`` keys."""
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(meta, dict) and "channel_names" in meta and "file_ending" in meta


def _parse(path: Path) -> NnunetManifest:
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: nnU-Net dataset.json not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{path}: dataset.json must be a JSON object")
    names = meta.get("channel_names", meta.get("modality"))
    if not isinstance(names, dict) or not names:
        raise ValueError(f'{path}: \'channel_names\' must map channel indices to names, e.g. {{"0": "CT"}}')
    try:
        order = sorted(names, key=int)
    except ValueError:
        raise ValueError(
            f"{path}: 'channel_names' keys must be channel indices 0, 1, ...: {list(names)}"
        ) from None
    if [int(k) for k in order] != list(range(len(order))):
        raise ValueError(f"{path}: 'channel_names' keys must be 0..{len(order) - 1}, got {order}")
    ending = meta.get("file_ending")
    if not isinstance(ending, str) or not ending.startswith("."):
        raise ValueError(
            f"{path}: 'file_ending' must be a file ending like '.nii.gz' or '.png', got {ending!r}"
        )
    if ending.lower() not in NNUNET_2D_ENDINGS + _NNUNET_3D_ENDINGS:
        raise ValueError(
            f"{path}: file_ending {ending!r} is not read by hlfnet (2-D: {', '.join(NNUNET_2D_ENDINGS)}; "
            f"3-D: {', '.join(_NNUNET_3D_ENDINGS)}); convert the images, e.g. with SimpleITK, to NIfTI"
        )
    labels = meta.get("labels")
    if not isinstance(labels, dict) or len(labels) < 2:
        raise ValueError(
            f"{path}: 'labels' must map at least two names to values, e.g. {{\"background\": 0, ...}}"
        )
    regions = [name for name, value in labels.items() if isinstance(value, (list, tuple))]
    if regions:
        raise ValueError(
            f"{path}: region-based labels {regions[:3]} (lists of values) are not supported; hlfnet trains one "
            "class per pixel: give each label one value"
        )
    if "ignore" in labels:
        raise ValueError(f"{path}: the 'ignore' label (sparse annotation) is not supported; remove it")
    bad = {n: v for n, v in labels.items() if isinstance(v, bool) or not isinstance(v, int) or v < 0}
    if bad:
        raise ValueError(f"{path}: label values must be integers ≥ 0, got {bad}")
    if len(set(labels.values())) != len(labels):
        raise ValueError(f"{path}: two labels share one value: {labels}")
    ordered = tuple(sorted(labels.items(), key=lambda item: item[1]))
    if ordered[0][1] != 0:
        raise ValueError(f"{path}: 'labels' needs the background value 0, got {labels}")
    return NnunetManifest(path, tuple(str(names[k]) for k in order), ordered, ending)


@lru_cache(maxsize=32)
def _cached(path: str, mtime_ns: int, size: int) -> NnunetManifest:
    return _parse(Path(path))


def read_manifest(root: str | Path) -> NnunetManifest:
    """Read and check ``<root>/dataset.json`` of an nnU-Net v2 raw dataset (cached until the file changes).

    Raises:
        FileNotFoundError: no ``dataset.json``.
        ValueError: one line naming the file and the bad key (region-based labels, unknown file ending...).
    """
    path = Path(root).expanduser() / "dataset.json"
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: nnU-Net dataset.json not found") from None
    return _cached(str(path.resolve()), stat.st_mtime_ns, stat.st_size)


def nnunet_is_volume(root: str | Path | None) -> bool:
    """True when the nnU-Net dataset at ``root`` holds NIfTI volumes; False for 2-D data or no readable manifest."""
    if not root:
        return False
    try:
        return read_manifest(root).is_volume
    except (FileNotFoundError, ValueError):
        return False
