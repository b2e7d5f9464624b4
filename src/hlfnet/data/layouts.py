"""Finding image/label pairs on disk: ISIC 2017, nnU-Net v2, MSD (``dataset.json``), folder and NIfTI pairs.

Every finder returns :class:`Discovered`: the pairs per official split (``"train"``/``"val"``/``"test"``) when the
layout has split folders, else all pairs under ``None`` (a seeded split is made by
:func:`hlfnet.data.splits.resolve_split`). Hidden and AppleDouble files (``._*``) are skipped everywhere.
Unpaired images or masks are an error naming them (with ``skip_bad`` a warning with their count), with the
``mask_suffix`` or ``image_pattern``/``mask_pattern`` that would pair them when one explains the names
(:func:`suggest_pairing`).
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from hlfnet.data.config import DataConfig
from hlfnet.data.io import IMAGE_SUFFIXES, is_nifti, nifti_stem
from hlfnet.data.nnunet import is_nnunet_manifest, read_manifest

__all__ = [
    "Pair",
    "Discovered",
    "discover",
    "detect_format",
    "group_channel_files",
    "suggest_pairing",
    "ISIC_PARTS",
]

logger = logging.getLogger(__name__)

ISIC_PARTS = {"train": ("Training",), "val": ("Validation",), "test": ("Test_v2", "Test")}
_ISIC_IMAGE = re.compile(r"^(ISIC_\d+)\.(jpe?g|png)$", re.IGNORECASE)
_SPLIT_DIRS = {"train": ("train", "training"), "val": ("val", "validation"), "test": ("test", "testing")}
_MASK_DIRS = ("masks", "labels", "mask", "label", "annotations", "gt")
_IMAGE_DIRS = ("images", "image", "imgs")


@dataclass(frozen=True)
class Pair:
    """One sample: its id, image file and label file.

    ``image`` is the first (or only) image file; a case stored one file per channel (nnU-Net's
    ``<case>_0000``, ``<case>_0001``...) lists them all, in channel order, in ``channels``. Readers take
    :attr:`files` (through :func:`hlfnet.data.io.read_image_channels` / ``load_volume_channels``).
    """

    id: str
    image: Path
    mask: Path
    channels: tuple[Path, ...] = ()

    @property
    def files(self) -> tuple[Path, ...]:
        """The image files of this case in channel order (``(image,)`` for a one-file image)."""
        return self.channels or (self.image,)


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


def _common_suffix(names: list[str]) -> str:
    """The ending all ``names`` share, from its first separator on (``21_training``, ``31_training`` → ``_training``)."""
    shared = os.path.commonprefix([n[::-1] for n in names])[::-1]
    cut = next((i for i, c in enumerate(shared) if not c.isalnum()), None)
    return "" if cut is None else shared[cut:]


def suggest_pairing(images: list[Path], masks: list[Path]) -> str | None:
    """The setting that pairs unpaired ``images`` with unpaired ``masks``, or ``None`` when none explains them.

    Tried in order: a mask suffix (``ISIC_1_lesion.bmp`` ↔ ``ISIC_1.jpg``: ``mask_suffix: "_lesion"``), then
    patterns from the names' common endings (``21_training.tif`` ↔ ``21_manual1.gif``:
    ``image_pattern: "{case}_training.tif"``, ``mask_pattern: "{case}_manual1.gif"``). A suggestion is made when
    it pairs at least half of the smaller group.
    """
    if not images or not masks:
        return None
    image_stems = {p.stem for p in images}
    need = max(1, min(len(images), len(masks)) // 2 + min(len(images), len(masks)) % 2)
    tails: dict[str, int] = {}
    for mask in masks:
        for stem in image_stems:
            if mask.stem.startswith(stem) and len(mask.stem) > len(stem):
                tails[mask.stem[len(stem) :]] = tails.get(mask.stem[len(stem) :], 0) + 1
    if tails:
        tail, count = max(tails.items(), key=lambda kv: (kv[1], -len(kv[0])))
        if count >= need:
            return f'data.mask_suffix: "{tail}" (--mask-suffix {tail}) pairs {count} of them'

    def ending(paths: list[Path]) -> str | None:
        suffixes = {p.suffix.lower() for p in paths}
        return paths[0].suffix if len(suffixes) == 1 else None

    image_end, mask_end = ending(images), ending(masks)
    if image_end is None or mask_end is None:
        return None
    image_tail = _common_suffix([p.stem for p in images])
    mask_tail = _common_suffix([p.stem for p in masks])
    image_cases = {p.stem[: len(p.stem) - len(image_tail)] for p in images}
    mask_cases = {p.stem[: len(p.stem) - len(mask_tail)] for p in masks}
    paired = len(image_cases & mask_cases)
    if paired >= need and "" not in image_cases:
        return (
            f'data.image_pattern: "{{case}}{image_tail}{image_end}" and data.mask_pattern: '
            f'"{{case}}{mask_tail}{mask_end}" pair {paired} of them'
        )
    return None


def _report(problems: list[str], cfg: DataConfig, what: str, hint: str | None = None) -> None:
    """Raise on pairing problems, or warn with their count when ``skip_bad``."""
    if not problems:
        return
    hint_text = f"; {hint}" if hint else ""
    if cfg.skip_bad:
        logger.warning(
            "skipping %d unpaired file(s) in %s: %s%s",
            len(problems),
            what,
            "; ".join(problems[:5]),
            hint_text,
        )
        return
    more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
    raise ValueError(
        f"{what}: {len(problems)} unpaired file(s): " + "; ".join(problems[:5]) + more + hint_text
    )


def _pair_by_stem(
    images: dict[str, Path], masks: dict[str, Path], what: str, cfg: DataConfig, problems: list[str]
) -> list[Pair]:
    lonely_images = [images[k] for k in sorted(set(images) - set(masks))]
    lonely_masks = [masks[k] for k in sorted(set(masks) - set(images))]
    local = [f"{p}: image without mask" for p in lonely_images]
    local += [f"{p}: mask without image" for p in lonely_masks]
    hint = suggest_pairing(lonely_images, lonely_masks)
    problems.extend(local)
    if hint:
        problems.append(f"{what}: unpaired names: try {hint}")
    _report(local, cfg, what, f"try {hint}" if hint else None)
    return [Pair(k, images[k], masks[k]) for k in sorted(set(images) & set(masks))]


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    name = pattern.replace("\\", "/").split("/")[-1]
    head, tail = name.split("{case}")
    return re.compile(f"^{re.escape(head)}(?P<case>.+?){re.escape(tail)}$", re.IGNORECASE)


def _pattern_folder(folder: Path, pattern: str) -> Path:
    parts = pattern.replace("\\", "/").split("/")[:-1]
    return folder.joinpath(*parts) if parts else folder


def _pair_by_pattern(cfg: DataConfig, folder: Path, found: Discovered) -> list[Pair] | None:
    """Pairs of ``folder`` by ``cfg.image_pattern`` / ``cfg.mask_pattern``; None when the image folder is absent."""
    image_dir = _pattern_folder(folder, cfg.image_pattern)
    mask_dir = _pattern_folder(folder, cfg.mask_pattern)
    if not image_dir.is_dir():
        return None
    if not mask_dir.is_dir():
        raise FileNotFoundError(
            f"{mask_dir}: mask folder of data.mask_pattern {cfg.mask_pattern!r} not found"
        )
    image_re, mask_re = _pattern_regex(cfg.image_pattern), _pattern_regex(cfg.mask_pattern)
    mask_files = [p for p in _files(mask_dir) if mask_re.match(p.name)]
    # In a flat folder the mask pattern wins: a mask file is never taken for an image.
    taken = {p.resolve() for p in mask_files}
    image_files = [p for p in _files(image_dir) if image_re.match(p.name) and p.resolve() not in taken]
    images = _index(image_files, lambda p: image_re.match(p.name).group("case"), str(image_dir))
    masks = _index(mask_files, lambda p: mask_re.match(p.name).group("case"), str(mask_dir))
    if not images and not masks:
        return None
    what = f"{image_dir / cfg.image_pattern.split('/')[-1]} + {mask_dir / cfg.mask_pattern.split('/')[-1]}"
    return _pair_by_stem(images, masks, what, cfg, found.problems)


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
    if set(found.splits) != {"train", "val", "test"}:
        # Only some official folders: pool the training folder for a seeded split (the others are left out:
        # a held-out test set must not leak into training); without one, pool the folders there are (a
        # validation- or test-only download, for `hlfnet evaluate --data`).
        pooled = ["train"] if "train" in found.splits else sorted(found.splits)
        logger.info("ISIC: official folders %s only; pooling %s", sorted(found.splits), pooled)
        found.splits = {None: [p for name in pooled for p in found.splits[name]]}
    return found


def _strip_suffix(stem: str, suffix: str) -> str | None:
    if not suffix:
        return stem
    return stem[: -len(suffix)] if stem.lower().endswith(suffix.lower()) else None


def _folder_split(cfg: DataConfig, folder: Path, found: Discovered) -> list[Pair] | None:
    """Pairs of one folder holding images/ + masks/ (or a flat mix with a mask suffix); None if neither."""
    if cfg.image_pattern is not None:
        return _pair_by_pattern(cfg, folder, found)
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
        hints = [p.split(": unpaired names: ", 1)[1] for p in found.problems if ": unpaired names: " in p]
        if not pairs and hints:
            raise FileNotFoundError(f"{root}: no image/mask pairs; {hints[0]}")
        if not pairs:
            raise FileNotFoundError(
                f"{root}: no image/mask pairs (expected images/ + masks/ folders, or <stem>.png with "
                f"<stem>{cfg.mask_suffix or '_mask'}.png; image types {', '.join(IMAGE_SUFFIXES)}; other names "
                "or folders: data.image_pattern + data.mask_pattern, e.g. 'images/{case}.tif' + "
                "'1st_manual/{case}_manual1.gif')"
            )
        found.splits[None] = pairs
    elif not any(found.splits.values()):
        raise FileNotFoundError(f"{root}: split folders hold no image/mask pairs")
    return found


def _nifti_split(cfg: DataConfig, folder: Path, found: Discovered) -> list[Pair] | None:
    if cfg.image_pattern is not None:
        return _pair_by_pattern(cfg, folder, found)
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


def _nnunet_cases(
    cfg: DataConfig, root: Path, folder: str, channels: int, ending: str, found: Discovered
) -> dict[str, tuple[Path, ...]]:
    """``{case: channel files in order}`` of ``imagesTr``/``imagesTs``, checking that every channel file is there."""
    image_dir = root / folder
    if not image_dir.is_dir():
        return {}
    by_case, stray = group_channel_files(_files(image_dir), ending)
    if stray:
        found.problems.append(
            f"{image_dir}: {len(stray)} file(s) not named <case>_<XXXX>{ending}, ignored (e.g. {stray[0].name})"
        )
        logger.warning("%s", found.problems[-1])
    problems = []
    for case, files in sorted(by_case.items()):
        if sorted(files) != list(range(channels)):
            missing = [f"{case}_{c:04d}{ending}" for c in range(channels) if c not in files]
            extra = [files[c].name for c in sorted(files) if c >= channels]
            what = f"missing {', '.join(missing)}" if missing else f"unexpected {', '.join(extra)}"
            problems.append(
                f"{image_dir / case}: channel files {sorted(files)} ({what}), dataset.json declares {channels} "
                f"(_0000..._{channels - 1:04d})"
            )
    found.problems.extend(problems)
    _report(problems, cfg, str(image_dir))
    bad = {p.split(": channel files")[0] for p in problems}
    return {
        case: tuple(files[c] for c in range(channels))
        for case, files in by_case.items()
        if str(image_dir / case) not in bad
    }


def group_channel_files(files: list[Path], ending: str) -> tuple[dict[str, dict[int, Path]], list[Path]]:
    """nnU-Net's ``<case>_<XXXX><ending>`` files grouped ``{case: {channel: file}}``, and the files not so named."""
    channel_re = re.compile(rf"^(?P<case>.+)_(?P<channel>\d{{4}}){re.escape(ending)}$", re.IGNORECASE)
    by_case: dict[str, dict[int, Path]] = {}
    stray = []
    for path in files:
        match = channel_re.match(path.name)
        if match is None:
            stray.append(path)
            continue
        by_case.setdefault(match.group("case"), {})[int(match.group("channel"))] = path
    return by_case, stray


def _nnunet(cfg: DataConfig, root: Path) -> Discovered:
    found = Discovered("nnunet", root)
    manifest = read_manifest(root)
    channels, ending = len(manifest.channels), manifest.file_ending
    for folder in ("imagesTr", "labelsTr"):
        if not (root / folder).is_dir():
            raise FileNotFoundError(f"{root / folder}: missing (nnU-Net dataset {manifest.path})")
    cases = _nnunet_cases(cfg, root, "imagesTr", channels, ending, found)
    label_re = re.compile(rf"^(?P<case>.+){re.escape(ending)}$", re.IGNORECASE)
    labels = _index(
        [p for p in _files(root / "labelsTr") if label_re.match(p.name)],
        lambda p: label_re.match(p.name).group("case"),
        str(root / "labelsTr"),
    )
    pairs = _pair_by_stem(
        {case: files[0] for case, files in cases.items()},
        labels,
        f"{root / 'imagesTr'} + {root / 'labelsTr'}",
        cfg,
        found.problems,
    )
    # one file per case keeps Pair.channels empty (the single-file readers, as before)
    found.splits[None] = [Pair(p.id, p.image, p.mask, cases[p.id] if channels > 1 else ()) for p in pairs]
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
    """Guess the layout of a data folder: ``nnunet``, ``msd``, ``isic2017``, ``nifti`` or ``folder``.

    A ``dataset.json`` with ``channel_names`` and ``file_ending`` is nnU-Net v2's; any other is MSD's.

    Raises:
        FileNotFoundError: the folder does not exist or holds nothing recognisable.
    """
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a folder")
    if (root / "dataset.json").is_file():
        return "nnunet" if is_nnunet_manifest(root / "dataset.json") else "msd"
    if any(root.glob("ISIC-2017_*_Data")):
        return "isic2017"
    for sub in (root, *[root / n for names in _SPLIT_DIRS.values() for n in names]):
        if (sub / "imagesTr").is_dir() or any(is_nifti(p) for p in sub.glob("images/*")):
            return "nifti"
    return "folder"


_FINDERS = {"isic2017": _isic, "folder": _folder, "nifti": _nifti, "msd": _msd, "nnunet": _nnunet}


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
