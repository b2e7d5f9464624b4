"""``hlfnet data check``: scan a data folder, describe it and list every problem.

Every pair is decoded with the same readers as training, so a folder that passes the check also loads. A
problem that repeats across files (the same message but for the file name) is printed once with its count and
an example file; ``--json`` keeps every problem.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hlfnet.data.config import DataConfig
from hlfnet.data.io import (
    labels_to_classes,
    load_label_volume,
    load_volume,
    load_volume_channels,
    raw_mask,
    read_image_channels,
    unmapped_values,
)
from hlfnet.data.layouts import detect_format, discover

__all__ = ["CheckReport", "check_dataset"]

logger = logging.getLogger(__name__)


@dataclass
class CheckReport:
    """What :func:`check_dataset` found."""

    root: str
    format: str
    splits: dict[str, int] = field(default_factory=dict)
    pairs: int = 0
    checked: int = 0
    sizes: dict[str, int] = field(default_factory=dict)
    channels: dict[str, int] = field(default_factory=dict)
    label_values: list[int] = field(default_factory=list)
    class_fractions: dict[str, float] = field(default_factory=dict)
    label_map: list[int] | None = None
    unmapped_values: list[int] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.problems and self.pairs > 0

    def lines(self) -> list[str]:
        """Human-readable summary."""
        out = [
            f"root:     {self.root}",
            f"format:   {self.format}",
            f"pairs:    {self.pairs} ({', '.join(f'{k} {v}' for k, v in self.splits.items())}); decoded {self.checked}",
            "sizes:    "
            + ", ".join(f"{k} ×{v}" for k, v in list(self.sizes.items())[:6])
            + (f" (+{len(self.sizes) - 6} more)" if len(self.sizes) > 6 else ""),
            "channels: " + ", ".join(f"{k} ×{v}" for k, v in self.channels.items()),
            f"labels:   raw values {self.label_values[:12]}{' ...' if len(self.label_values) > 12 else ''}",
            "classes:  " + ", ".join(f"{k}: {v:.2%}" for k, v in self.class_fractions.items()),
        ]
        if self.label_map is not None:
            out.append(
                "mapping:  "
                + ", ".join(f"{v} → class {k}" for k, v in enumerate(self.label_map))
                + (
                    f"; other values {self.unmapped_values[:12]}{' ...' if len(self.unmapped_values) > 12 else ''} "
                    "→ background"
                    if self.unmapped_values
                    else ""
                )
            )
        if self.problems:
            out.append(f"PROBLEMS: {len(self.problems)}")
            out += [f"  - {p}" for p in group_problems(self.problems)]
        else:
            out.append("no problems found" if self.pairs else "PROBLEMS: no pairs")
        return out


def group_problems(problems: list[str]) -> list[str]:
    """One line per distinct problem: messages equal but for their leading file name are merged with a count.

    ``["a.png: mask values [7] ...", "b.png: mask values [7] ..."]`` → ``["mask values [7] ... (×2, e.g. a.png)"]``.
    """
    groups: dict[str, list[str]] = {}
    for problem in problems:
        head, sep, rest = problem.partition(": ")
        key = rest if sep and ("/" in head or "." in head) else problem
        groups.setdefault(key, []).append(head if key == rest else "")
    lines = []
    for key, heads in groups.items():
        if len(heads) == 1:
            lines.append(f"{heads[0]}: {key}" if heads[0] else key)
        else:
            lines.append(f"{key} (×{len(heads)}, e.g. {heads[0]})" if heads[0] else f"{key} (×{len(heads)})")
    return lines


def check_dataset(
    path: str | Path,
    format: str | None = None,
    num_classes: int = 2,
    mask_suffix: str | None = None,
    mask_threshold: int | None = None,
    limit: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    image_pattern: str | None = None,
    mask_pattern: str | None = None,
    label_values: tuple[int, ...] | list[int] | None = None,
) -> CheckReport:
    """Scan a data folder: pairs, sizes, label values, class balance and every problem (not stopping at one).

    Args:
        path: Data folder.
        format: Force a layout (``isic2017``, ``msd``, ``folder``, ``nifti``); ``None`` detects it.
        num_classes: Declared number of classes (labels outside 0..K-1, or {0, 255} when binary, are problems).
        mask_suffix: Mask suffix (see :class:`~hlfnet.data.config.DataConfig`).
        mask_threshold: Binarisation threshold, if the masks are to be binarised.
        limit: Decode at most this many pairs (``None``: all).
        progress: Called as ``progress(done, total)``.
        image_pattern: Image file pattern with ``{case}`` (with ``mask_pattern``; see ``DataConfig``).
        mask_pattern: Mask file pattern with ``{case}``.
        label_values: Stored value of each class (index = class; other values count as background).

    Raises:
        FileNotFoundError: ``path`` is not a folder.
    """
    root = Path(path)
    format = format or detect_format(root)
    report = CheckReport(str(root), format)
    try:
        cfg = DataConfig(
            format=format,
            root=str(root),
            num_classes=num_classes,
            mask_suffix=mask_suffix,
            mask_threshold=mask_threshold,
            image_pattern=image_pattern,
            mask_pattern=mask_pattern,
            label_values=tuple(label_values) if label_values is not None else None,
            skip_bad=True,
        )
        num_classes = cfg.num_classes  # label_values or an nnU-Net dataset.json set it
        report.label_map = list(cfg.label_values) if cfg.label_values is not None else None
        found = discover(cfg)
    except (FileNotFoundError, ValueError) as error:
        report.problems.append(str(error))
        return report
    report.problems.extend(found.problems)
    report.splits = {k or "unsplit": len(v) for k, v in found.splits.items()}
    pairs = found.all_pairs()
    report.pairs = len(pairs)
    todo = pairs if limit is None else pairs[:limit]
    if limit is not None and limit < 1:
        raise ValueError(f"--limit must be at least 1 (pairs to decode), got {limit}")
    sizes, channels, raw_values, counts = Counter(), Counter(), set(), np.zeros(num_classes, np.int64)
    examples: dict[int, Path] = {}
    for n, pair in enumerate(todo):
        try:
            if cfg.is_volume:
                data, meta = load_volume_channels(pair.files)
                if cfg.label_values is not None:
                    raw_values.update(np.unique(load_volume(pair.mask)[0]).astype(np.int64).tolist())
                labels = load_label_volume(pair.mask, meta, data.shape, num_classes, cfg.label_values)
                sizes["×".join(str(s) for s in data.shape[:3])] += 1
                channels[str(data.shape[3] if data.ndim == 4 else 1)] += 1
                if cfg.label_values is None:
                    raw_values.update(np.unique(labels).tolist())
            else:
                image = read_image_channels(pair.files)
                raw = raw_mask(pair.mask)
                raw_values.update(np.unique(raw).tolist())
                labels = labels_to_classes(raw, num_classes, mask_threshold, pair.mask, cfg.label_values)
                if raw.shape != image.shape[:2]:
                    raise ValueError(
                        f"{pair.mask}: mask size {raw.shape[1]}×{raw.shape[0]} (W×H) differs from image "
                        f"{pair.image} size {image.shape[1]}×{image.shape[0]}"
                    )
                sizes[f"{image.shape[1]}×{image.shape[0]}"] += 1
                channels[f"{image.shape[2]} ({image.dtype})"] += 1
                examples.setdefault(image.shape[2], pair.image)
            counts += np.bincount(labels.ravel(), minlength=num_classes)[:num_classes]
        except (FileNotFoundError, ValueError, OSError) as error:
            report.problems.append(str(error))
        report.checked = n + 1
        if progress is not None:
            progress(n + 1, len(todo))
    if len(examples) > 1:
        report.problems.append(
            "images with different channel counts: "
            + ", ".join(f"{c} (e.g. {p})" for c, p in sorted(examples.items()))
            + "; training refuses them unless data.in_channels is set (4 = RGB + grey takes grey and colour)"
        )
    report.sizes = dict(sizes.most_common())
    report.channels = dict(channels.most_common())
    report.label_values = sorted(int(v) for v in raw_values)
    report.unmapped_values = unmapped_values(raw_values, cfg.label_values)
    total = counts.sum()
    report.class_fractions = {str(k): float(c / total) if total else 0.0 for k, c in enumerate(counts)}
    logger.info(
        "checked %d of %d pairs in %s: %d problem(s)",
        report.checked,
        report.pairs,
        root,
        len(report.problems),
    )
    return report
