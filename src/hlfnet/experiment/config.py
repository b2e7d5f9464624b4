"""Typed experiment configuration: ``model``, ``data``, ``train`` sections plus a run name and a seed.

The dataclasses here (and :class:`hlfnet.data.DataConfig`) are the schema of hlfnet's one configuration system
(:mod:`hlfnet.schema`): each checks its fields in ``__post_init__``, so a config built in Python is checked like
one read from YAML. An unknown key, a value of the wrong type or a value outside its allowed set is a
:class:`ValueError` that names the key (``train.lr``) and, for a misspelt key, suggests the closest valid one.
:func:`load_config` reads a file with :func:`hlfnet.schema.read_yaml` (``extends:`` bases merged) and applies
``key.sub=value`` overrides (``hlfnet train --set train.max_epochs=3``) before validation.

The defaults of :class:`TrainConfig` are the paper's recipe (§3.1): Dice loss (for the paper's binary tasks;
Dice + cross-entropy for more classes), Adam at 1e-4, batch 6, learning rate × 0.1 every 15 epochs, validation
every epoch, the checkpoint best on validation Dice kept as the final model. The paper gives no number of
epochs; 45 = three learning-rate stages (1e-4, 1e-5, 1e-6), see
``docs/training.md``.

Example:
    >>> cfg = load_config("hlfnet_isic2017", overrides=["train.max_epochs=2"])  # doctest: +SKIP
    >>> cfg.train.max_epochs  # doctest: +SKIP
    2
"""

from __future__ import annotations

import datetime
import inspect
import math
import typing
from dataclasses import asdict, dataclass, field
from dataclasses import fields as dataclasses_fields
from pathlib import Path
from typing import Any, Literal

import yaml

from hlfnet.data import DataConfig
from hlfnet.errors import NonFiniteError
from hlfnet.schema import (
    apply_overrides,
    check_keys,
    coerce,
    did_you_mean,
    from_mapping,
    read_yaml,
    resolve_config_path,
    validate_fields,
)

__all__ = [
    "ExperimentConfig",
    "ModelConfig",
    "TrainConfig",
    "config_to_dict",
    "load_config",
    "plain_data",
    "save_config",
]

Accelerator = Literal["cpu", "gpu", "cuda", "auto"]
Strategy = Literal["auto", "ddp", "ddp_spawn", "ddp_find_unused_parameters_true", "fsdp"]
Precision = Literal["32", "32-true", "16-mixed", "bf16-mixed", "64"]
#: ``train.max_time`` must stay below this (about 1.9 million years; ``datetime.timedelta`` ends at 1.44e12).
_MAX_MINUTES = 1e12

#: Keys that may change when a run is resumed (more epochs, other hardware); anything else would make the
#: continued run a different experiment (``hlfnet train --resume --set``).
RESUME_OVERRIDABLE = (
    "train.max_epochs",
    "train.max_time",
    "train.accelerator",
    "train.devices",
    "train.num_nodes",
    "train.strategy",
    "train.num_workers",
    "train.channels_last",
    "train.progress_bar",
    "train.log_every_n_steps",
)


@dataclass
class ModelConfig:
    """Which network to train. In YAML the section is flat: ``model: {name: hlfnet, base_channels: 16}``.

    Args:
        name: a registered network (``hlfnet.list_models()``): ``hlfnet``, ``hlfnet_hfe``, ``hlfnet_lfe``,
            ``unet``, ``resunet``.
        kwargs: overrides of the network's preset (``base_channels``, ``depth``, ``norm_groups``,
            ``reduction``, ``encoder_block``, ``skip_fusion``). ``in_channels`` / ``out_channels`` /
            ``spatial_dims`` come from the data section; if given here they must agree with it.
    """

    name: str = "hlfnet"
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from hlfnet.models import MODELS, EncoderDecoderNet

        self.name = coerce(self.name, str, "model.name")
        if self.name not in MODELS:
            raise ValueError(
                f"config key 'model.name': unknown model {self.name!r}{did_you_mean(self.name, list(MODELS))}; "
                f"registered models: {', '.join(MODELS)}"
            )
        allowed = [p for p in inspect.signature(EncoderDecoderNet.__init__).parameters if p != "self"]
        check_keys(coerce(self.kwargs, dict, "model"), ["name", *allowed], "model.")
        hints = typing.get_type_hints(EncoderDecoderNet.__init__)
        self.kwargs = {
            key: coerce(value, hints.get(key, Any), f"model.{key}") for key, value in self.kwargs.items()
        }


@dataclass
class TrainConfig:
    """How to train: the paper's recipe by default, plus Lightning's hardware settings.

    Args:
        max_epochs: epochs to train (45: three learning-rate stages of 15 epochs).
        batch_size: images (or patches) per optimiser step **per process** (the paper: 6, one GPU); ``auto`` =
            the plan's fitted batch for ``data.preprocessing: patch``, 6 otherwise.
        loss: ``auto`` (default: ``dice`` for one output channel, ``dice_ce`` for ``K > 2`` classes; the
            resolved run config names the one used), ``dice`` (the paper's Dice loss), ``dice_ce`` (Dice +
            cross-entropy, nnU-Net's), ``ce`` (cross-entropy), ``focal`` (focal loss, γ = 2); see
            :mod:`hlfnet.engine.loss`.
        optimizer: ``adam`` (the paper's), ``adamw``, ``sgd`` (Nesterov momentum ``momentum``, as nnU-Net).
        momentum: SGD's momentum (nnU-Net: 0.99); 0 = plain SGD. Only ``sgd`` uses it.
        lr: initial learning rate (the paper: 1e-4 with Adam; nnU-Net's SGD: 1e-2).
        weight_decay: the optimiser's weight decay (the paper: none); decoupled for ``adamw``.
        schedule: ``step`` (the paper's: × ``lr_gamma`` every ``lr_step_epochs`` epochs), ``poly``
            (nnU-Net's: ``lr · (1 − epoch / max_epochs)^0.9``) or ``constant``; stepped once per epoch.
        lr_step_epochs: ``step``: multiply the learning rate by ``lr_gamma`` every this many epochs (the paper: 15).
        lr_gamma: ``step``: the factor (the paper: 0.1).
        max_time: stop at the end of the first epoch that ends after this much training time in this start of
            the run (``train`` or ``--resume``): minutes (``90``, ``0.5``) or ``"DD:HH:MM:SS"`` (Lightning's
            format, quoted in YAML). ``None``: no limit. The last checkpoint is written, so ``--resume``
            continues; an epoch is never cut short.
        num_workers: data-loading worker processes per training process.
        limit_train_batches: use only this many training batches per epoch (``None``: all).
        limit_val_batches: use only this many validation batches (``None``: all).
        accelerator: ``auto`` (default: a CUDA GPU when PyTorch sees one, else the CPU), ``cpu``, or
            ``gpu``/``cuda``. Apple's MPS is never chosen (the float64 metric sums rule it out).
        devices: devices per node (``>1`` with ``strategy: ddp`` for data parallel).
        num_nodes: machines.
        strategy: Lightning strategy: ``auto``, ``ddp``, ``ddp_spawn``, ``ddp_find_unused_parameters_true``,
            ``fsdp``.
        precision: ``32`` (default), ``bf16-mixed`` or ``16-mixed`` (GPU only), ``64``.
        channels_last: keep weights and batches in channels-last memory format; on CPU it speeds HLF-Net
            up by about 1.5× in inference and 1.1× in training (``docs/benchmarks.md``); same results up to
            float rounding.
        deterministic: ask PyTorch for deterministic kernels (needed for bit-identical GPU runs; some GPU
            kernels then raise). CPU runs are reproducible without it.
        progress_bar: show Lightning's progress bar.
        log_every_n_steps: step-level logging interval for the CSV and TensorBoard logs.
        runs_dir: parent folder of run folders when no ``--run-dir`` is given.
    """

    max_epochs: int = 45
    batch_size: int | Literal["auto"] = 6
    loss: Literal["auto", "dice", "dice_ce", "ce", "focal"] = "auto"
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    momentum: float = 0.99
    lr: float = 1e-4
    weight_decay: float = 0.0
    schedule: Literal["step", "poly", "constant"] = "step"
    lr_step_epochs: int = 15
    lr_gamma: float = 0.1
    max_time: float | str | None = None
    num_workers: int = 0
    limit_train_batches: int | None = None
    limit_val_batches: int | None = None
    accelerator: Accelerator = "auto"
    devices: int = 1
    num_nodes: int = 1
    strategy: Strategy = "auto"
    precision: Precision = "32"
    channels_last: bool = False
    deterministic: bool = False
    progress_bar: bool = True
    log_every_n_steps: int = 10
    runs_dir: str = "runs"

    def __post_init__(self) -> None:
        validate_fields(self, "train")
        for name in (
            "max_epochs",
            *(("batch_size",) if self.batch_size != "auto" else ()),
            "lr_step_epochs",
            "devices",
            "num_nodes",
            "log_every_n_steps",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"train.{name} must be at least 1, got {getattr(self, name)}")
        for name in ("limit_train_batches", "limit_val_batches"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"train.{name} must be at least 1 or null, got {value}")
        if self.num_workers < 0:
            raise ValueError(f"train.num_workers must be >= 0, got {self.num_workers}")
        for name in ("lr", "weight_decay", "lr_gamma", "momentum"):
            if not math.isfinite(getattr(self, name)):
                raise NonFiniteError(f"train.{name} must be a finite number, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"train.lr must be positive, got {self.lr}")
        if self.weight_decay < 0:
            raise ValueError(f"train.weight_decay must be >= 0, got {self.weight_decay}")
        if not 0 < self.lr_gamma <= 1:
            raise ValueError(f"train.lr_gamma must be in (0, 1], got {self.lr_gamma}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"train.momentum must be in [0, 1), got {self.momentum}")
        self.time_limit()  # refuses a malformed train.max_time now, not when the trainer starts
        if self.precision == "16-mixed" and self.accelerator == "cpu":  # "auto" is checked once resolved
            raise ValueError(
                "train.precision '16-mixed' needs a GPU (train.accelerator is 'cpu'); use 'bf16-mixed' on CPU"
            )

    def time_limit(self) -> datetime.timedelta | None:
        """``max_time`` as a duration (``None``: no limit).

        Raises:
            ValueError: not a positive number of minutes nor ``"DD:HH:MM:SS"``; names the key.
        """
        value = self.max_time
        if value is None:
            return None
        if isinstance(value, float):
            minutes = value
        else:
            parts = value.strip().split(":")
            if len(parts) != 4 or not all(p.isdigit() for p in parts):
                raise ValueError(
                    f"config key 'train.max_time' must be minutes (90) or 'DD:HH:MM:SS' ('00:02:00:00'), got {value!r}"
                )
            days, hours, mins, seconds = (int(p) for p in parts)
            minutes = days * 1440 + hours * 60 + mins + seconds / 60
        if not (math.isfinite(minutes) and 0 < minutes < _MAX_MINUTES):
            raise ValueError(
                f"config key 'train.max_time' must be a positive duration below {_MAX_MINUTES:.0f} minutes, "
                f"got {value!r}"
            )
        return datetime.timedelta(minutes=minutes)


@dataclass
class ExperimentConfig:
    """One experiment: a run name, a seed and the three sections.

    Args:
        name: the run's name; the run folder is ``<train.runs_dir>/<name>`` unless given explicitly.
        seed: seeds weights, data order and augmentation (``lightning.seed_everything``); the data section has
            its own seed for the split and the synthetic images.
        model: see :class:`ModelConfig`.
        data: see :class:`hlfnet.data.DataConfig`.
        train: see :class:`TrainConfig`.
    """

    name: str = "experiment"
    seed: int = 0
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        validate_fields(self, "")
        if not 0 <= self.seed < 2**32:
            raise ValueError(f"config key 'seed' must be in [0, 2**32), got {self.seed}")
        _check_model_kwargs(self)

    def model_kwargs(self) -> dict[str, Any]:
        """Everything :func:`hlfnet.create_model` needs besides the name, channels taken from the data."""
        derived = _derived_model_kwargs(self.data)
        return {**derived, **{k: v for k, v in self.model.kwargs.items() if k not in derived}}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ExperimentConfig:
        """Validate a nested dictionary (as read from YAML) into a config.

        Raises:
            ValueError: an unknown or mistyped key, or a bad value; the message names the key.
        """
        if not isinstance(raw, dict):
            raise ValueError(f"a config must be a mapping of sections, got {type(raw).__name__}")
        check_keys(raw, [f.name for f in dataclasses_fields(cls)], "")
        return cls(
            **{key: raw[key] for key in ("name", "seed") if key in raw},
            model=_model_config(raw.get("model")),
            data=from_mapping(DataConfig, raw.get("data"), "data"),
            train=from_mapping(TrainConfig, raw.get("train"), "train"),
        )


def _derived_model_kwargs(data: DataConfig) -> dict[str, int]:
    from hlfnet.data.channels import resolve_in_channels

    # The resize plan trains volumes as 2-D slices (the paper); a patch plan says 2 or 3.
    spatial_dims = data.spatial_dims if data.is_patch_plan else 2
    return {
        "in_channels": resolve_in_channels(data),
        "out_channels": _out_channels(data),
        "spatial_dims": spatial_dims,
    }


def _out_channels(data: DataConfig) -> int:
    # Binary tasks use one sigmoid output (the paper); K classes including background use K softmax outputs.
    return 1 if data.num_classes <= 2 else data.num_classes


def _model_config(raw: dict[str, Any] | None) -> ModelConfig:
    """``model: {name: hlfnet, base_channels: 16, ...}``: the name plus the network's arguments, flat."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ValueError(f"config section 'model' must be a mapping, got {type(raw).__name__}: {raw!r}")
    kwargs = dict(raw)
    return ModelConfig(name=kwargs.pop("name", ModelConfig.name), kwargs=kwargs)


def _check_model_kwargs(config: ExperimentConfig) -> None:
    expected = _derived_model_kwargs(config.data)
    for key, value in expected.items():
        if key in config.model.kwargs and config.model.kwargs[key] != value:
            raise ValueError(
                f"config key 'model.{key}' is {config.model.kwargs[key]!r} but the data section implies "
                f"{value!r} (data.in_channels={config.data.in_channels}, data.num_classes={config.data.num_classes}); "
                f"remove it or change the data section"
            )


# --------------------------------------------------------------------------------------------------------------
# files and overrides


def load_config(config: str | Path, overrides: list[str] | None = None) -> ExperimentConfig:
    """Read, override and validate a configuration.

    Args:
        config: a YAML file or the name of a shipped config (see :func:`list_configs`).
        overrides: ``key.sub=value`` strings applied before validation.

    Returns:
        The validated config. Without a ``name`` in the file, the file's stem is the run name.

    Raises:
        FileNotFoundError: no such file or shipped config.
        ValueError: an unknown or mistyped key or a bad value (names the key and the file).
    """
    path = resolve_config_path(config)
    raw = read_yaml(path)
    raw.setdefault("name", path.stem)
    raw = apply_overrides(raw, list(overrides or []))
    try:
        return ExperimentConfig.from_dict(raw)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None


def config_to_dict(config: ExperimentConfig) -> dict[str, Any]:
    """The resolved config as plain YAML-able data; the model section gains the data-derived channels."""
    data = plain_data(asdict(config.data))
    return {
        "name": config.name,
        "seed": config.seed,
        "model": {"name": config.model.name, **config.model_kwargs()},
        "data": data,
        "train": plain_data(asdict(config.train)),
    }


def plain_data(value: Any) -> Any:
    """``value`` with tuples as lists and keys as strings: what YAML and JSON write (for configs and records)."""
    if isinstance(value, dict):
        return {str(k): plain_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_data(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def save_config(config: ExperimentConfig, path: str | Path) -> None:
    """Write the resolved config as YAML, atomically."""
    from hlfnet.atomic import atomic_write_bytes

    text = yaml.safe_dump(config_to_dict(config), sort_keys=False)
    atomic_write_bytes(path, text.encode())
