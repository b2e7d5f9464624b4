"""Finding image/label pairs on disk: ISIC 2017, MSD (``dataset.json``), folder pairs and NIfTI pairs.

Every finder returns :class:`Discovered`: the pairs per official split (``"train"``/``"val"``/``"test"``) when the
layout has split folders, else all pairs under ``None`` (a seeded split is made by
:func:`hlfnet.data.splits.resolve_split`). Hidden and AppleDouble files (``._*``) are skipped everywhere.
Unpaired images or masks are an error naming them (with ``skip_bad`` a warning with their count).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from hlfnet.data.config import DataConfig
from hlfnet.data.io import IMAGE_SUFFIXES, is_nifti, nifti_stem

__all__ = ["Pair", "Discovered", "discover", "detect_format", "ISIC_PARTS"]

logger = logging.getLogger(__name__)

ISIC_PARTS = {"train": ("Training",), "val": ("Validation",), "test": ("Test_v2", "Test")}
_ISIC_IMAGE = re.compile(r"^(ISIC_\d+)\.(jpe?g|png)$", re.IGNORECASE)
_SPLIT_DIRS = {"train": ("train", "training"), "val": ("val", "validation"), "test": ("test", "testing")}
_MASK_DIRS = ("masks", "labels", "mask", "label", "annotations", "gt")
_IMAGE_DIRS = ("images", "image", "imgs")


@dataclass(frozen=True)
class Pair:
    """One sample: its id, image file and label file."""

    id: str
    image: Path
    mask: Path


@dataclass
class Discovered:
    """Pairs found in a data folder, per official split (or under ``None`` when there is none)."""

    format: str
    root: Path
    splits: dict[str | None, list[Pair]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def official(self) -> bool:
        """True when the layout itself defines the train/val/test split."""
        return None not in self.splits

    def all_pairs(self) -> list[Pair]:
        """Every pair, in split order."""
        return [p for pairs in self.splits.values() for p in pairs]


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and _visible(p))


def _report(problems: list[str], cfg: DataConfig, what: str) -> None:
    """Raise on pairing problems, or warn with their count when ``skip_bad``."""
    if not problems:
        return
    if cfg.skip_bad:
        logger.warning("skipping %d unpaired file(s) in %s: %s", len(problems), what, "; ".join(problems[:5]))
        return
    more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
    raise ValueError(f"{what}: {len(problems)} unpaired file(s): " + "; ".join(problems[:5]) + more)


def _pair_by_stem(
    images: dict[str, Path], masks: dict[str, Path], what: str, cfg: DataConfig, problems: list[str]
) -> list[Pair]:
    local = [f"{images[k]}: image without mask" for k in sorted(set(images) - set(masks))]
    local += [f"{masks[k]}: mask without image" for k in sorted(set(masks) - set(images))]
    problems.extend(local)
    _report(local, cfg, what)
    return [Pair(k, images[k], masks[k]) for k in sorted(set(images) & set(masks))]


def _index(files: list[Path], key, what: str) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for path in files:
        k = key(path)
        if k is None:
            continue
        if k in out:
            raise ValueError(f"{what}: two files for id {k!r}: {out[k].name} and {path.name}")
        out[k] = path
    return out


def _isic(cfg: DataConfig, root: Path) -> Discovered:
    found = Discovered("isic2017", root)
    suffix = (cfg.mask_suffix if cfg.mask_suffix is not None else "_segmentation").lower()
    mask_re = re.compile(rf"^(ISIC_\d+){re.escape(suffix)}\.png$", re.IGNORECASE)
    for split, parts in ISIC_PARTS.items():
        for part in parts:
            data_dir, gt_dir = root / f"ISIC-2017_{part}_Data", root / f"ISIC-2017_{part}_Part1_GroundTruth"
            if not data_dir.is_dir() and not gt_dir.is_dir():
                continue
            for folder in (data_dir, gt_dir):
                if not folder.is_dir():
                    raise FileNotFoundError(f"{folder}: missing ISIC folder (its partner folder exists)")
            # Superpixels, CSV metadata and other files are ignored by the two patterns.
            images = _index(
                _files(data_dir), lambda p: (m := _ISIC_IMAGE.match(p.name)) and m.group(1), str(data_dir)
            )
            masks = _index(_files(gt_dir), lambda p: (m := mask_re.match(p.name)) and m.group(1), str(gt_dir))
            found.splits[split] = _pair_by_stem(
                images, masks, f"{data_dir.name} + {gt_dir.name}", cfg, found.problems
            )
            break
    if not found.splits:
        raise FileNotFoundError(
            f"{root}: no ISIC 2017 folders (expected ISIC-2017_Training_Data/ and ISIC-2017_Training_Part1_GroundTruth/)"
        )
    if "train" not in found.splits:
        raise FileNotFoundError(
            f"{root}: ISIC-2017_Training_Data/ + ISIC-2017_Training_Part1_GroundTruth/ missing"
        )
    if set(found.splits) != {"train", "val", "test"}:
        # Only some official folders: pool the training folder for a seeded split, keep none of the others.
        logger.info(
            "ISIC: official folders %s only; making a seeded split of the training folder",
            sorted(found.splits),
        )
        found.splits = {None: found.splits["train"]}
    return found


def _strip_suffix(stem: str, suffix: str) -> str | None:
    if not suffix:
        return stem
    return stem[: -len(suffix)] if stem.lower().endswith(suffix.lower()) else None


def _folder_split(cfg: DataConfig, folder: Path, found: Discovered) -> list[Pair] | None:
    """Pairs of one folder holding images/ + masks/ (or a flat mix with a mask suffix); None if neither."""
    image_dir = next((folder / d for d in _IMAGE_DIRS if (folder / d).is_dir()), None)
    mask_dir = next((folder / d for d in _MASK_DIRS if (folder / d).is_dir()), None)
    is_image = lambda p: p.suffix.lower() in IMAGE_SUFFIXES  # noqa: E731
    if image_dir is not None and mask_dir is not None:
        suffix = cfg.mask_suffix or ""
        images = _index([p for p in _files(image_dir) if is_image(p)], lambda p: p.stem, str(image_dir))
        masks = _index(
            [p for p in _files(mask_dir) if is_image(p)],
            lambda p: _strip_suffix(p.stem, suffix),
            str(mask_dir),
        )
        return _pair_by_stem(images, masks, f"{image_dir} + {mask_dir}", cfg, found.problems)
    files = [p for p in _files(folder) if is_image(p)]
    if not files:
        return None
    suffix = cfg.mask_suffix if cfg.mask_suffix else "_mask"
    masks = _index(
        [p for p in files if _strip_suffix(p.stem, suffix) is not None],
        lambda p: _strip_suffix(p.stem, suffix),
        str(folder),
    )
    images = _index(
        [p for p in files if _strip_suffix(p.stem, suffix) is None], lambda p: p.stem, str(folder)
    )
    return _pair_by_stem(images, masks, str(folder), cfg, found.problems)


def _folder(cfg: DataConfig, root: Path) -> Discovered:
    found = Discovered("folder", root)
    for split, names in _SPLIT_DIRS.items():
        sub = next((root / n for n in names if (root / n).is_dir()), None)
        if sub is not None:
            pairs = _folder_split(cfg, sub, found)
            if pairs is not None:
                found.splits[split] = pairs
    if found.splits and "train" not in found.splits:
        raise FileNotFoundError(f"{root}: split folders {sorted(found.splits)} but no train/ folder")
    if not found.splits:
        pairs = _folder_split(cfg, root, found)
        if not pairs:
            raise FileNotFoundError(
                f"{root}: no image/mask pairs (expected images/ + masks/ folders, or <stem>.png with "
                f"<stem>{cfg.mask_suffix or '_mask'}.png; image types {', '.join(IMAGE_SUFFIXES)})"
            )
        found.splits[None] = pairs
    elif not any(found.splits.values()):
        raise FileNotFoundError(f"{root}: split folders hold no image/mask pairs")
    return found


def _nifti_split(cfg: DataConfig, folder: Path, found: Discovered) -> list[Pair] | None:
    for image_name, label_name in (("imagesTr", "labelsTr"), ("images", "labels"), ("images", "masks")):
        image_dir, label_dir = folder / image_name, folder / label_name
        if image_dir.is_dir() and label_dir.is_dir():
            suffix = cfg.mask_suffix or ""
            images = _index([p for p in _files(image_dir) if is_nifti(p)], nifti_stem, str(image_dir))
            labels = _index(
                [p for p in _files(label_dir) if is_nifti(p)],
                lambda p, s=suffix: _strip_suffix(nifti_stem(p), s),
                str(label_dir),
            )
            return _pair_by_stem(images, labels, f"{image_dir} + {label_dir}", cfg, found.problems)
    return None


def _nifti(cfg: DataConfig, root: Path) -> Discovered:
    found = Discovered("nifti", root)
    for split, names in _SPLIT_DIRS.items():
        sub = next((root / n for n in names if (root / n).is_dir()), None)
        if sub is not None and (pairs := _nifti_split(cfg, sub, found)) is not None:
            found.splits[split] = pairs
    if not found.splits:
        pairs = _nifti_split(cfg, root, found)
        if not pairs:
            raise FileNotFoundError(
                f"{root}: no NIfTI image/label pairs (expected imagesTr/ + labelsTr/ or images/ + labels/ "
                "holding .nii/.nii.gz files paired by name)"
            )
        found.splits[None] = pairs
    elif "train" not in found.splits:
        raise FileNotFoundError(f"{root}: split folders {sorted(found.splits)} but no train/ folder")
    return found


def _msd(cfg: DataConfig, root: Path) -> Discovered:
    found = Discovered("msd", root)
    manifest = root / "dataset.json"
    if not manifest.is_file():
        raise FileNotFoundError(f"{manifest}: MSD dataset.json not found")
    from hlfnet.limits import read_json

    meta = read_json(manifest, "MSD dataset.json")
    entries = meta.get("training") if isinstance(meta, dict) else None
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"{manifest}: no 'training' list of {{'image', 'label'}} entries")
    pairs, missing = [], []
    for n, entry in enumerate(entries):
        if not isinstance(entry, dict) or "image" not in entry or "label" not in entry:
            raise ValueError(
                f"{manifest}: training entry {n} is not {{'image': ..., 'label': ...}}: {entry!r}"
            )
        if not all(isinstance(entry[k], str) and entry[k].strip() for k in ("image", "label")):
            raise ValueError(
                f"{manifest}: training entry {n} needs file paths for 'image' and 'label': {entry!r}"
            )
        image, label = root / entry["image"], root / entry["label"]
        inside = root.resolve()
        for path in (image, label):
            if inside not in path.resolve().parents:
                raise ValueError(
                    f"{manifest}: training entry {n} points outside the dataset folder ({path}); entries must be "
                    "paths relative to the folder holding dataset.json"
                )
        if image.name.startswith("._") or label.name.startswith("._"):
            logger.warning("%s: skipping AppleDouble entry %s", manifest, entry)
            continue
        for path in (image, label):
            if not path.is_file():
                missing.append(f"{path} (listed in dataset.json training entry {n})")
        pairs.append(Pair(nifti_stem(image), image.resolve(), label.resolve()))
    if missing:
        found.problems.extend(f"{m}: missing" for m in missing)
        if not cfg.skip_bad:
            more = f" (and {len(missing) - 3} more)" if len(missing) > 3 else ""
            raise FileNotFoundError(
                f"{manifest} lists {len(missing)} missing file(s): " + "; ".join(missing[:3]) + more
            )
        logger.warning("%s lists %d missing file(s); skipping those entries", manifest, len(missing))
        bad = {m.split(" (listed")[0] for m in missing}
        pairs = [p for p in pairs if str(p.image) not in bad and str(p.mask) not in bad]
    ids = [p.id for p in pairs]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{manifest}: duplicate image names in the training list")
    found.splits[None] = pairs
    return found


def detect_format(path: str | Path) -> str:
    """Guess the layout of a data folder: ``msd``, ``isic2017``, ``nifti`` or ``folder``.

    Raises:
        FileNotFoundError: the folder does not exist or holds nothing recognisable.
    """
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a folder")
    if (root / "dataset.json").is_file():
        return "msd"
    if any(root.glob("ISIC-2017_*_Data")):
        return "isic2017"
    for sub in (root, *[root / n for names in _SPLIT_DIRS.values() for n in names]):
        if (sub / "imagesTr").is_dir() or any(is_nifti(p) for p in sub.glob("images/*")):
            return "nifti"
    return "folder"


_FINDERS = {"isic2017": _isic, "folder": _folder, "nifti": _nifti, "msd": _msd}


def discover(cfg: DataConfig) -> Discovered:
    """Find the image/label pairs of ``cfg.root`` in the layout of ``cfg.format``.

    Raises:
        FileNotFoundError: missing root, empty folder, missing files listed in ``dataset.json``.
        ValueError: unpaired files (unless ``skip_bad``), duplicate ids, broken ``dataset.json``.
    """
    if cfg.format not in _FINDERS:
        raise ValueError(f"discover() needs a file-based format {tuple(_FINDERS)}, got {cfg.format!r}")
    root = Path(cfg.root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: data folder not found")
    found = _FINDERS[cfg.format](cfg, root)
    total = sum(len(p) for p in found.splits.values())
    if total == 0:
        raise FileNotFoundError(f"{root}: no {cfg.format} image/label pairs found")
    logger.info(
        "%s: %d %s pairs (%s)",
        root,
        total,
        cfg.format,
        ", ".join(f"{k or 'pool'} {len(v)}" for k, v in found.splits.items()),
    )
    return found
