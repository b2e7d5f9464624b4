"""``DataConfig``: every setting of the input pipeline, validated when it is built or loaded.

The defaults reproduce §3.1 of the paper for the skin-lesion task (256×192 width×height, RGB + grey = 4
channels, random crop and flip for training) on the built-in synthetic data set, so that
``build_dataset(DataConfig(), "train")`` works with no download. :func:`paper_config` gives the paper's
settings for ``isic2017`` and ``msd`` (spleen: 256×256, 1 channel).
"""

from __future__ import annotations

import dataclasses
import os
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from hlfnet.schema import from_mapping, read_yaml, validate_fields

__all__ = ["FORMATS", "SPLITS", "SYNTHETIC_SIZES", "DataConfig", "paper_config", "default_cache_root"]

Format = Literal["synthetic", "isic2017", "msd", "nnunet", "folder", "nifti"]
Preprocessing = Literal["resize", "patch"]
Normalization = Literal["auto", "ct", "zscore", "rgb"]
Split = Literal["train", "val", "test"]
FORMATS: tuple[str, ...] = typing.get_args(Format)
SPLITS: tuple[str, ...] = typing.get_args(Split)
VOLUME_FORMATS = ("msd", "nifti")

#: Images per split of the built-in synthetic data set (``DataConfig.synthetic_*`` defaults).
SYNTHETIC_SIZES = {"train": 240, "val": 48, "test": 48}

# Paper §3.1: ISIC 2017 has 2000/150/600 images; the spleen set 25/4/12 patients.
ISIC_FRACTIONS = (2000 / 2750, 150 / 2750, 600 / 2750)
MSD_FRACTIONS = (25 / 41, 4 / 41, 12 / 41)


def default_cache_root() -> Path:
    """``$HLFNET_CACHE_DIR`` or ``~/.cache/hlfnet``: where caches and split files go when not configured."""
    return Path(os.environ.get("HLFNET_CACHE_DIR", Path.home() / ".cache" / "hlfnet")).expanduser()


@dataclass
class DataConfig:
    """Settings of the data pipeline (sources, preprocessing, split, cache, augmentation).

    Args:
        format: ``"synthetic"`` (built in, default), ``"isic2017"`` (official folder layout), ``"msd"``
            (Medical Segmentation Decathlon task with ``dataset.json``), ``"nnunet"`` (an nnU-Net v2 raw
            dataset: ``dataset.json`` with ``channel_names`` and ``file_ending``, ``imagesTr/<case>_0000<ending>``
            + ``labelsTr/<case><ending>``; 2-D or 3-D by its file ending), ``"folder"`` (images + masks paired
            by stem or by ``image_pattern``/``mask_pattern``) or ``"nifti"`` (image volumes + label volumes
            paired by name).
        root: Data folder; required for every format except ``synthetic``.
        image_size: Network input ``(H, W)``; default ``(192, 256)`` = the paper's 256×192 (width×height).
            Use ``(256, 256)`` for the spleen task (see :func:`paper_config`).
        num_classes: Number of classes including background; ``2`` = binary foreground/background.
        in_channels: Channels of the network input; ``None`` derives it: 4 (RGB + grey) for ``isic2017``,
            ``synthetic`` and colour ``folder`` images, 1 for grey images and CT. 1 = grey, 3 = RGB,
            4 = RGB + grey; other counts need native multi-channel sources (``.npy`` images, 4-D NIfTI).
        seed: Seed of the split and of the augmentation.
        split_file: JSON file holding the split; created with a seeded split when missing, reused when
            present. ``None`` = ``<cache root>/splits/<format>-<root hash>-seed<seed>.json``.
        split_fractions: Train/val/test fractions for seeded splits; ``None`` = the paper's proportions
            (2000/150/600 for 2-D formats, 25/4/12 patients for volumes).
        num_folds: Folds of cross-validation (``fold``); default 5, as nnU-Net.
        fold: ``None`` (default): the split above. ``0 … num_folds-1``: cross-validation over the training
            cases — every case of the split that is not ``test`` (train + val, official folders included) is
            dealt into ``num_folds`` folds seeded by ``seed``; fold ``i`` validates on the ``i``-th and trains
            on the others; the test split stays held out. Cases are images for 2-D data and patients
            (volumes) for volume data, so a patient's slices never straddle folds. ``"all"``: trains on every
            training case and validates on the same cases (nnU-Net's fold ``all``: its validation scores are
            training scores). See :mod:`hlfnet.data.folds`.
        cache_dir: Root of the on-disk preprocessing cache and default split files; ``None`` =
            ``$HLFNET_CACHE_DIR`` or ``~/.cache/hlfnet``.
        use_cache: ``False`` keeps preprocessed arrays in memory only (decoded once per run).
        mask_suffix: Suffix of mask file stems (``ISIC_0000000_segmentation.png``). ``None`` = format
            default: ``_segmentation`` (any case) for ISIC, ``""`` for ``folder`` with an ``images/`` +
            ``masks/`` pair of folders, ``_mask`` for a flat folder, ``""`` for NIfTI labels.
        image_pattern: File-name pattern of images with one ``{case}`` placeholder (``"{case}_training.tif"``);
            with ``mask_pattern``, pairs images and masks by the ``{case}`` part (``folder`` and ``nifti``
            formats; ``mask_suffix`` is then unused). ``None`` = pair by stem.
        mask_pattern: File-name pattern of masks (``"{case}_manual1.gif"``); see ``image_pattern``.
        label_values: The value stored in the masks for each class, list index = class
            (``[0, 128, 255]``: 128 is class 1, 255 class 2). Values not listed count as background (so
            ``[0, 1, 5, 6]`` selects organs 1, 5 and 6 of a larger label map). Sets ``num_classes`` to its
            length (a different explicit ``num_classes`` other than 2 is an error). Predictions are written
            back in these values (``hlfnet predict --class-indices`` writes 0..K-1 instead).
            ``None`` = masks hold class indices ({0, 255} also accepted for binary).
        class_names: A name for each class, list index = class, background first (``["background",
            "nucleus", "cytoplasm"]``): the legend of ``hlfnet serve``'s page and of ``hlfnet report``.
            ``None`` = the names of an nnU-Net ``dataset.json``'s ``labels``, else ``class 1``, ``class 2``...
        mask_threshold: ``None`` (strict): masks must hold only the declared labels ({0, 1} or {0, 255} for
            binary, 0..K-1 otherwise) or loading fails naming the file. An integer ``t`` binarises
            masks as ``value > t`` (our choice, e.g. ``127``; the paper does not say; rescues JPEG-compressed
            masks).
        ct_window: ``(low, high)`` intensity window (e.g. ``(-57, 164)`` HU) clipped and scaled to [0, 1];
            ``None`` = per-volume min–max (our reading of the paper's "normalized all images to 0 to 1").
        drop_background_slices: Splits of volume formats whose background-only slices are dropped
            (the paper dropped them everywhere: 882/135/380 slices).
        skip_bad: ``False`` (default) stops at the first bad file; ``True`` skips bad samples with a warning
            giving their count and names.
        augment: Random crop + flip (the paper) on the train split by default.
        crop_scale: Range of the side length of the random crop, as a fraction of the image; the crop is
            resized back to ``image_size``. ``(1, 1)`` disables cropping.
        hflip: Probability of a horizontal flip.
        vflip: Probability of a vertical flip.
        rot90: Probability of a random multiple-of-90° rotation (square images only; optional, off).
        intensity_jitter: Amplitude of random brightness/contrast jitter (optional, off).
        synthetic_train: Number of synthetic training images.
        synthetic_val: Number of synthetic validation images.
        synthetic_test: Number of synthetic test images.
        preprocessing: ``"resize"`` (default, the paper's plan: every image resized to ``image_size``) or
            ``"patch"`` (native resolution: patches at a target spacing, sliding-window inference; the plan's
            values below are derived from the data by :func:`hlfnet.data.plan.make_plan` when left ``None`` /
            ``auto``, see docs/data.md).
        spatial_dims: ``patch`` only: 2 (2-D images, or axial slices of volumes resampled in-plane: nnU-Net's
            ``2d`` configuration) or 3 (3-D patches of volumes).
        patch_size: ``patch`` only: patch shape; ``None`` = fitted to ``memory_budget_mb``.
        target_spacing: ``patch`` only, volumes: voxel spacing (mm) to resample to, in canonical RAS axis order;
            ``None`` = the median spacing (nnU-Net's rule for anisotropic data). Two values (R-L, A-P) for
            2-D slices of volumes: the slice axis keeps each volume's own spacing.
        normalization: ``patch`` only: ``ct`` (foreground percentile clip + z-score), ``zscore`` (per image),
            ``rgb`` (/255); ``auto`` = ``ct`` when the data set's ``dataset.json`` says CT, ``zscore`` for
            other volumes, ``rgb`` for images.
        intensity_stats: ``ct`` only: per channel ``[p0.5, p99.5, mean, std]`` of the foreground; ``None`` =
            measured on the training cases.
        memory_budget_mb: ``patch`` only: activation memory a training batch may use (patch and batch fitting).
        patches_per_epoch: ``patch`` only: training patches drawn per epoch.
        foreground_oversample: ``patch`` only: fraction of patches centred on a foreground voxel (nnU-Net: 1/3).
        rotate_degrees: ``patch`` only: random rotation range (±degrees; in-plane for 3-D), 0 = off.
        scale_range: ``patch`` only: random zoom range, ``(1, 1)`` = off.
        elastic: ``patch`` only: random elastic deformation (off by default, as nnU-Net).
    """

    format: Format = "synthetic"
    root: str | None = None
    image_size: tuple[int, int] = (192, 256)
    num_classes: int = 2
    in_channels: int | None = None
    seed: int = 0
    split_file: str | None = None
    split_fractions: tuple[float, float, float] | None = None
    num_folds: int = 5
    fold: int | str | None = None
    cache_dir: str | None = None
    use_cache: bool = True
    mask_suffix: str | None = None
    image_pattern: str | None = None
    mask_pattern: str | None = None
    label_values: tuple[int, ...] | None = None
    class_names: tuple[str, ...] | None = None
    mask_threshold: int | None = None
    ct_window: tuple[float, float] | None = None
    drop_background_slices: tuple[Split, ...] = ("train", "val", "test")
    skip_bad: bool = False
    augment: bool = True
    crop_scale: tuple[float, float] = (0.8, 1.0)
    hflip: float = 0.5
    vflip: float = 0.5
    rot90: float = 0.0
    intensity_jitter: float = 0.0
    synthetic_train: int = SYNTHETIC_SIZES["train"]
    synthetic_val: int = SYNTHETIC_SIZES["val"]
    synthetic_test: int = SYNTHETIC_SIZES["test"]
    preprocessing: Preprocessing = "resize"
    spatial_dims: int = 2
    patch_size: tuple[int, ...] | None = None
    target_spacing: tuple[float, ...] | None = None
    normalization: Normalization = "auto"
    intensity_stats: tuple[tuple[float, float, float, float], ...] | None = None
    memory_budget_mb: int = 2048
    patches_per_epoch: int = 250
    foreground_oversample: float = 0.33
    rotate_degrees: float = 15.0
    scale_range: tuple[float, float] = (0.85, 1.25)
    elastic: bool = False

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check every field against its type (:func:`hlfnet.schema.validate_fields`), then its range.

        Raises:
            ValueError: naming the field (``data.image_size``) and the bad value.
        """
        if isinstance(self.drop_background_slices, str):
            self.drop_background_slices = (self.drop_background_slices,)
        validate_fields(self, "data")
        if self.format != "synthetic" and not self.root:
            raise ValueError(f"data.root is required for format {self.format!r}")
        if min(self.image_size) < 8:
            raise ValueError(f"data.image_size must be at least 8×8, got {list(self.image_size)}")
        from hlfnet.limits import check_image_pixels

        check_image_pixels(self.image_size, f"data.image_size {list(self.image_size)}")
        if self.format in ("nnunet", "msd") and self.root:
            self._adopt_declared_labels()
        self._check_labels_and_patterns()
        _at_least(self, "num_classes", 2)
        if self.in_channels is not None:
            _at_least(self, "in_channels", 1)
        if not 0 <= self.seed < 2**32:
            raise ValueError(f"data.seed must be an integer in [0, 2**32), got {self.seed!r}")
        if self.split_fractions is not None:
            fr = self.split_fractions
            if min(fr) < 0 or fr[0] <= 0 or abs(sum(fr) - 1.0) > 1e-6:
                raise ValueError(f"data.split_fractions must be ≥ 0, train > 0, summing to 1; got {list(fr)}")
        self._check_fold()
        if self.mask_threshold is not None:
            if not 0 <= self.mask_threshold < 65535:
                raise ValueError(
                    f"data.mask_threshold must be None or in [0, 65535), got {self.mask_threshold!r}"
                )
            if self.num_classes != 2:
                raise ValueError(
                    f"data.mask_threshold binarises masks and needs num_classes=2, got {self.num_classes}"
                )
        if self.ct_window is not None and not self.ct_window[0] < self.ct_window[1]:
            raise ValueError(
                f"data.ct_window must be [low, high] with low < high, got {list(self.ct_window)}"
            )
        if not 0.1 <= self.crop_scale[0] <= self.crop_scale[1] <= 1.0:
            raise ValueError(
                f"data.crop_scale must satisfy 0.1 ≤ low ≤ high ≤ 1, got {list(self.crop_scale)}"
            )
        for name in ("hflip", "vflip", "rot90"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"data.{name} must be a probability in [0, 1], got {getattr(self, name)!r}")
        if self.rot90 > 0 and self.image_size[0] != self.image_size[1]:
            raise ValueError(f"data.rot90 needs a square image_size, got {list(self.image_size)}")
        if not 0.0 <= self.intensity_jitter < 1.0:
            raise ValueError(f"data.intensity_jitter must be in [0, 1), got {self.intensity_jitter!r}")
        self._validate_patch_plan()
        for split in SPLITS:
            _at_least(self, f"synthetic_{split}", 0)
        if self.format == "synthetic":
            _at_least(self, "synthetic_train", 1)

    def _check_fold(self) -> None:
        _at_least(self, "num_folds", 2)
        if self.fold is None:
            return
        from hlfnet.data.folds import ALL_FOLDS

        if self.fold != ALL_FOLDS and not (isinstance(self.fold, int) and 0 <= self.fold < self.num_folds):
            raise ValueError(
                f"data.fold must be 0..{self.num_folds - 1} (data.num_folds={self.num_folds}) or "
                f"{ALL_FOLDS!r}, got {self.fold!r}"
            )
        if self.format == "synthetic":
            raise ValueError(
                "data.fold: the synthetic data set has fixed splits; write it as files with "
                "`hlfnet data synthetic --out DIR` and train on it with data.format=folder"
            )

    def _validate_patch_plan(self) -> None:
        if self.spatial_dims not in (2, 3):
            raise ValueError(f"data.spatial_dims must be 2 or 3, got {self.spatial_dims!r}")
        if self.preprocessing == "resize":
            if self.spatial_dims != 2:
                raise ValueError(
                    "data.spatial_dims=3 needs data.preprocessing: patch (the resize plan trains 2-D slices); "
                    "use --config patch_3d"
                )
            return
        if self.spatial_dims == 3 and not self.is_volume:
            raise ValueError(f"data.spatial_dims=3 needs a volume format (msd, nifti), got {self.format!r}")
        if self.patch_size is not None:
            if len(self.patch_size) != self.spatial_dims or min(self.patch_size) < 8:
                raise ValueError(
                    f"data.patch_size must have {self.spatial_dims} sizes of at least 8, got {list(self.patch_size)}"
                )
            from hlfnet.limits import check_image_pixels, check_volume_voxels

            check = check_volume_voxels if len(self.patch_size) == 3 else check_image_pixels
            check(self.patch_size, f"data.patch_size {list(self.patch_size)}")
        axes = 2 if self.is_slice_plan else 3
        if self.target_spacing is not None and (
            len(self.target_spacing) != axes or not all(0 < s < 1e3 for s in self.target_spacing)
        ):
            what = "two in-plane spacings (R-L, A-P)" if axes == 2 else "three spacings"
            raise ValueError(
                f"data.target_spacing must be {what} in mm (0, 1000), got {list(self.target_spacing)}"
            )
        if self.intensity_stats is not None and any(
            not (s[3] > 0 and s[0] <= s[1]) for s in self.intensity_stats
        ):
            raise ValueError("data.intensity_stats: each channel needs [low ≤ high, mean, std > 0]")
        _at_least(self, "memory_budget_mb", 16)
        _at_least(self, "patches_per_epoch", 1)
        if not 0.0 <= self.foreground_oversample <= 1.0:
            raise ValueError(
                f"data.foreground_oversample must be in [0, 1], got {self.foreground_oversample!r}"
            )
        if not 0.0 <= self.rotate_degrees <= 180.0:
            raise ValueError(f"data.rotate_degrees must be in [0, 180], got {self.rotate_degrees!r}")
        if not 0.25 <= self.scale_range[0] <= self.scale_range[1] <= 4.0:
            raise ValueError(
                f"data.scale_range must satisfy 0.25 ≤ low ≤ high ≤ 4, got {list(self.scale_range)}"
            )

    @property
    def is_patch_plan(self) -> bool:
        """True for native-resolution plans (``preprocessing: patch``)."""
        return self.preprocessing == "patch"

    @property
    def is_slice_plan(self) -> bool:
        """True for 2-D patches of volumes (nnU-Net's ``2d`` configuration): a 2-D network on axial slices
        resampled in-plane to the target spacing, the slice axis kept at each volume's own spacing."""
        return self.is_patch_plan and self.spatial_dims == 2 and self.is_volume

    @property
    def window_size(self) -> tuple[int, ...] | None:
        """The sliding window over a prepared case: ``patch_size``, with depth 1 for a slice plan (one axial
        slice of the canonical ``(R-L, A-P, S-I)`` grid per window); ``None`` before the plan is made."""
        if self.patch_size is None:
            return None
        patch = tuple(int(s) for s in self.patch_size)
        return (*patch, 1) if self.is_slice_plan else patch

    def _check_labels_and_patterns(self) -> None:
        if self.label_values is not None:
            values = list(self.label_values)
            if len(values) < 2 or len(set(values)) != len(values) or min(values) < 0:
                raise ValueError(
                    f"data.label_values must list at least 2 distinct values ≥ 0 (index = class), got {values}"
                )
            if self.num_classes not in (2, len(values)):
                raise ValueError(
                    f"data.label_values has {len(values)} entries but data.num_classes is {self.num_classes}; "
                    "drop num_classes (it follows label_values) or make them agree"
                )
            self.num_classes = len(values)
            if self.mask_threshold is not None:
                raise ValueError("data.label_values and data.mask_threshold exclude each other; use one")
        if self.class_names is not None:
            names = list(self.class_names)
            if len(names) != self.num_classes or not all(0 < len(n.strip()) <= 64 for n in names):
                raise ValueError(
                    f"data.class_names must give {self.num_classes} names of 1-64 characters (background "
                    f"first, one per class), got {names}"
                )
        if (self.image_pattern is None) != (self.mask_pattern is None):
            raise ValueError("data.image_pattern and data.mask_pattern go together; set both or neither")
        for name in ("image_pattern", "mask_pattern"):
            pattern = getattr(self, name)
            if pattern is None:
                continue
            parts = pattern.replace("\\", "/").split("/")
            if (
                pattern.count("{case}") != 1
                or "{case}" not in parts[-1]
                or pattern.startswith("/")
                or ".." in parts
                or "" in parts
            ):
                raise ValueError(
                    f"data.{name} must be a file name with exactly one {{case}} placeholder, optionally in a "
                    f"sub-folder of the data folder (e.g. '{{case}}_manual1.gif' or '1st_manual/{{case}}_manual1.gif'), "
                    f"got {pattern!r}"
                )

    def _adopt_declared_labels(self) -> None:
        """nnU-Net and MSD: ``num_classes`` (and ``label_values`` when not 0..K-1) follow ``dataset.json``'s
        labels, and so do ``class_names`` unless given."""
        from hlfnet.data.msd import read_msd_labels
        from hlfnet.data.nnunet import read_manifest

        try:
            manifest = read_manifest(self.root) if self.format == "nnunet" else read_msd_labels(self.root)
        except FileNotFoundError:
            return  # e.g. a run's config read on a machine without its data: nothing to adopt
        if manifest is None:
            return  # an MSD dataset.json without labels: num_classes as configured
        if self.label_values is None:
            self._adopt_declared_values(manifest)
        if self.class_names is None:  # the names dataset.json gives the (selected) values
            by_value = {value: name for name, value in manifest.labels}
            values = self.label_values or tuple(range(self.num_classes))
            self.class_names = tuple(by_value.get(v, f"class {k}") for k, v in enumerate(values))

    def _adopt_declared_values(self, manifest: Any) -> None:
        values = manifest.label_values
        if self.num_classes not in (2, len(values)):
            raise ValueError(
                f"data.num_classes is {self.num_classes} but {manifest.path} declares {len(values)} labels; "
                "drop num_classes (it follows dataset.json) or select classes with data.label_values"
            )
        self.num_classes = len(values)
        if list(values) != list(range(len(values))):
            self.label_values = values

    def names_of_classes(self, num_classes: int | None = None) -> tuple[str, ...]:
        """A name for each of ``num_classes`` classes (default ``self.num_classes``): ``class_names`` when it
        has that many, else ``background``, ``class 1``, ``class 2``..."""
        count = self.num_classes if num_classes is None else num_classes
        if self.class_names is not None and len(self.class_names) == count:
            return tuple(self.class_names)
        return ("background", *(f"class {k}" for k in range(1, count)))

    def synthetic_count(self, split: str) -> int:
        """How many synthetic images ``split`` has (``synthetic_train`` / ``synthetic_val`` / ``synthetic_test``)."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; splits: {', '.join(SPLITS)}")
        return int(getattr(self, f"synthetic_{split}"))

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> DataConfig:
        """Build a config from a mapping (e.g. YAML/JSON); lists are accepted for tuples.

        Raises:
            ValueError: naming an unknown key (with a did-you-mean) or the bad value.
        """
        return from_mapping(cls, data, "data")

    @classmethod
    def from_file(cls, path: str | Path, **overrides: Any) -> DataConfig:
        """Load a YAML or JSON config (its ``data:`` section when it has one; ``extends:`` resolved), then
        apply ``overrides``.

        Raises:
            FileNotFoundError: missing file.
            ValueError: unparsable file, unknown keys or bad values (naming the file).
        """
        path = Path(path)
        data = read_yaml(path)
        if isinstance(data.get("data"), dict):
            data = data["data"]
        try:
            return cls.from_dict({**data, **{k: v for k, v in overrides.items() if v is not None}})
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from error

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON/YAML-friendly mapping (tuples become lists); ``from_dict`` reads it back."""
        out = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}

    @property
    def is_volume(self) -> bool:
        """True for the volume formats (``msd``, ``nifti``, an ``nnunet`` dataset of NIfTI files): items
        are 2-D axial slices."""
        if self.format == "nnunet":
            from hlfnet.data.nnunet import nnunet_is_volume

            return nnunet_is_volume(self.root)
        return self.format in VOLUME_FORMATS

    @property
    def cache_root(self) -> Path:
        """Resolved cache root (``cache_dir`` or the default)."""
        return Path(self.cache_dir).expanduser() if self.cache_dir else default_cache_root()

    @property
    def fractions(self) -> tuple[float, float, float]:
        """Split fractions in use (configured or the paper's for this format)."""
        if self.split_fractions is not None:
            return self.split_fractions
        return MSD_FRACTIONS if self.is_volume else ISIC_FRACTIONS


def _at_least(cfg: DataConfig, name: str, low: int) -> None:
    if getattr(cfg, name) < low:
        raise ValueError(f"data.{name} must be an integer ≥ {low}, got {getattr(cfg, name)!r}")


def paper_config(format: str = "isic2017", root: str | None = None, **overrides: Any) -> DataConfig:
    """The paper's settings (§3.1) for ``isic2017`` (256×192, 4 channels) or ``msd`` spleen (256×256, 1 channel).

    Args:
        format: ``"isic2017"``, ``"msd"`` or ``"synthetic"``.
        root: Data folder.
        **overrides: Any other :class:`DataConfig` field.

    Raises:
        ValueError: for another format or a bad override.
    """
    presets: dict[str, dict[str, Any]] = {
        "isic2017": {"image_size": (192, 256), "in_channels": 4},
        "synthetic": {"image_size": (192, 256), "in_channels": 4},
        "msd": {"image_size": (256, 256), "in_channels": 1},
    }
    if format not in presets:
        raise ValueError(f"paper_config knows {sorted(presets)}, got {format!r}")
    return DataConfig.from_dict({"format": format, "root": root, **presets[format], **overrides})
