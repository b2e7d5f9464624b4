"""Typed experiment configuration: ``model``, ``data``, ``train`` sections plus a run name and a seed.

A configuration is a YAML file validated when it is loaded: an unknown key, a value of the wrong type or a value
outside its allowed set is a :class:`ValueError` that names the key (``train.lr``) and, for a misspelt key,
suggests the closest valid one. ``key.sub=value`` overrides (``hlfnet train --set train.max_epochs=3``) go
through the same validation.

The defaults of :class:`TrainConfig` are the paper's recipe (§3.1): Dice loss, Adam at 1e-4, batch 6, learning
rate × 0.1 every 15 epochs, validation every epoch, the checkpoint best on validation Dice kept as the final
model. The paper gives no number of epochs; 45 = three learning-rate stages (1e-4, 1e-5, 1e-6), see
``docs/training.md``.

Example:
    >>> cfg = load_config("hlfnet_isic2017", overrides=["train.max_epochs=2"])  # doctest: +SKIP
    >>> cfg.train.max_epochs  # doctest: +SKIP
    2
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import math
import types
import typing
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import yaml

from hlfnet.data import DataConfig
from hlfnet.errors import NonFiniteError
from hlfnet.limits import safe_yaml_load

__all__ = [
    "ExperimentConfig",
    "ModelConfig",
    "TrainConfig",
    "apply_overrides",
    "config_to_dict",
    "list_configs",
    "load_config",
    "resolve_config_path",
    "save_config",
]

Accelerator = Literal["cpu", "gpu", "cuda", "auto"]
Strategy = Literal["auto", "ddp", "ddp_spawn", "ddp_find_unused_parameters_true", "fsdp"]
Precision = Literal["32", "32-true", "16-mixed", "bf16-mixed", "64"]

#: Model arguments that come from the data section and are filled in by :meth:`ExperimentConfig.model_kwargs`.
DATA_DERIVED_MODEL_KWARGS = ("in_channels", "out_channels", "spatial_dims")


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


@dataclass
class TrainConfig:
    """How to train: the paper's recipe by default, plus Lightning's hardware settings.

    Args:
        max_epochs: epochs to train (45: three learning-rate stages of 15 epochs).
        batch_size: images per optimiser step **per process** (the paper: 6, one GPU).
        lr: Adam learning rate (the paper: 1e-4).
        weight_decay: Adam weight decay (the paper: none).
        lr_step_epochs: multiply the learning rate by ``lr_gamma`` every this many epochs (the paper: 15).
        lr_gamma: the factor (the paper: 0.1).
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
    batch_size: int = 6
    lr: float = 1e-4
    weight_decay: float = 0.0
    lr_step_epochs: int = 15
    lr_gamma: float = 0.1
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
        for name in (
            "max_epochs",
            "batch_size",
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
        for name in ("lr", "weight_decay", "lr_gamma"):
            if not math.isfinite(getattr(self, name)):
                raise NonFiniteError(f"train.{name} must be a finite number, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"train.lr must be positive, got {self.lr}")
        if self.weight_decay < 0:
            raise ValueError(f"train.weight_decay must be >= 0, got {self.weight_decay}")
        if not 0 < self.lr_gamma <= 1:
            raise ValueError(f"train.lr_gamma must be in (0, 1], got {self.lr_gamma}")
        if self.precision == "16-mixed" and self.accelerator == "cpu":  # "auto" is checked once resolved
            raise ValueError(
                "train.precision '16-mixed' needs a GPU (train.accelerator is 'cpu'); use 'bf16-mixed' on CPU"
            )


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
        _check_keys(raw, [f.name for f in dataclasses.fields(cls)], "")
        values: dict[str, Any] = {}
        if "name" in raw:
            values["name"] = _coerce(raw["name"], str, "name")
        if "seed" in raw:
            values["seed"] = _coerce(raw["seed"], int, "seed")
            if not 0 <= values["seed"] < 2**32:
                raise ValueError(f"config key 'seed' must be in [0, 2**32), got {values['seed']}")
        values["model"] = _model_config(_section(raw, "model"))
        values["data"] = _data_config(_section(raw, "data"))
        values["train"] = _dataclass_from_dict(TrainConfig, _section(raw, "train"), "train")
        config = cls(**values)
        _check_model_kwargs(config)
        return config


def _derived_model_kwargs(data: DataConfig) -> dict[str, int]:
    from hlfnet.data.preprocess import resolve_in_channels

    # Volumes are trained as 2-D slices (the paper), so the network is always 2-D.
    return {"in_channels": resolve_in_channels(data), "out_channels": _out_channels(data), "spatial_dims": 2}


def _out_channels(data: DataConfig) -> int:
    # Binary tasks use one sigmoid output (the paper); K classes including background use K softmax outputs.
    return 1 if data.num_classes <= 2 else data.num_classes


# --------------------------------------------------------------------------------------------------------------
# validation helpers


def _did_you_mean(key: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _check_keys(raw: dict[str, Any], valid: list[str], prefix: str) -> None:
    for key in raw:
        if key not in valid:
            raise ValueError(
                f"unknown config key {prefix + str(key)!r}{_did_you_mean(str(key), valid)}; "
                f"valid keys{' of ' + prefix.rstrip('.') if prefix else ''}: {', '.join(valid)}"
            )


def _section(raw: dict[str, Any], name: str) -> dict[str, Any]:
    value = raw.get(name) or {}
    if not isinstance(value, dict):
        raise ValueError(f"config section {name!r} must be a mapping, got {type(value).__name__}: {value!r}")
    return value


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    """Check ``value`` against a type annotation; converts only int -> float and numeric strings -> float."""
    origin = get_origin(annotation)
    if origin is Literal:
        choices = get_args(annotation)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and str(value) in choices:
            value = str(value)  # YAML reads `precision: 32` as an int
        if value not in choices:
            raise ValueError(f"config key {key!r} must be one of {list(choices)}, got {value!r}")
        return value
    if origin in (typing.Union, types.UnionType):
        options = get_args(annotation)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(value, option, key)
            except ValueError as error:
                errors.append(str(error))
        raise ValueError(
            errors[0] if len(errors) == 1 else f"config key {key!r}: {value!r} fits none of {options}"
        )
    if origin is dict or annotation is dict:
        if not isinstance(value, dict):
            raise ValueError(f"config key {key!r} must be a mapping, got {type(value).__name__}: {value!r}")
        return dict(value)
    if origin in (list, tuple) or annotation in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"config key {key!r} must be a list, got {type(value).__name__}: {value!r}")
        items = get_args(annotation)
        if items and items[-1] is not Ellipsis and origin is tuple and len(items) != len(value):
            raise ValueError(f"config key {key!r} must have {len(items)} items, got {value!r}")
        item_type = items[0] if items else Any
        converted = [_coerce(v, item_type, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(converted) if (origin is tuple or annotation is tuple) else converted
    if annotation is Any:
        return value
    if annotation is bool:
        if not isinstance(value, bool):
            raise ValueError(f"config key {key!r} must be true or false, got {value!r}")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"config key {key!r} must be an integer, got {value!r}")
        return value
    if annotation is float:
        if isinstance(value, str):
            try:
                return float(value)  # PyYAML reads "1e-4" (no dot) as a string
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"config key {key!r} must be a number, got {value!r}")
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise ValueError(f"config key {key!r} must be a string, got {value!r}")
        return value
    if isinstance(annotation, type) and not isinstance(value, annotation):
        raise ValueError(f"config key {key!r} must be {annotation.__name__}, got {value!r}")
    return value


def _dataclass_from_dict(cls: type, raw: dict[str, Any], prefix: str) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    _check_keys(raw, list(fields), f"{prefix}.")
    hints = typing.get_type_hints(cls)
    values = {key: _coerce(value, hints[key], f"{prefix}.{key}") for key, value in raw.items()}
    try:
        return cls(**values)
    except TypeError as error:
        raise ValueError(f"config section {prefix!r}: {error}") from None


def _model_config(raw: dict[str, Any]) -> ModelConfig:
    """``model: {name: hlfnet, base_channels: 16, ...}``: the name plus the network's arguments, flat."""
    from hlfnet.models import MODELS, EncoderDecoderNet

    raw = dict(raw)
    name = _coerce(raw.pop("name", ModelConfig.name), str, "model.name")
    if name not in MODELS:
        raise ValueError(
            f"config key 'model.name': unknown model {name!r}{_did_you_mean(name, list(MODELS))}; "
            f"registered models: {', '.join(MODELS)}"
        )
    allowed = [p for p in inspect.signature(EncoderDecoderNet.__init__).parameters if p != "self"]
    _check_keys(raw, ["name", *allowed], "model.")
    hints = typing.get_type_hints(EncoderDecoderNet.__init__)
    kwargs = {key: _coerce(value, hints.get(key, Any), f"model.{key}") for key, value in raw.items()}
    return ModelConfig(name=name, kwargs=kwargs)


def _data_config(raw: dict[str, Any]) -> DataConfig:
    valid = [f.name for f in dataclasses.fields(DataConfig) if f.init]
    _check_keys(raw, valid, "data.")
    try:
        return DataConfig.from_dict(raw)
    except (TypeError, ValueError, KeyError) as error:
        message = error.args[0] if error.args else error
        raise ValueError(f"config section 'data': {message}") from None


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


def list_configs() -> list[str]:
    """Names of the configurations shipped with the package (``hlfnet train --config NAME``)."""
    folder = resources.files("hlfnet") / "configs"
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def resolve_config_path(config: str | Path) -> Path:
    """A path to a YAML file, or the name of a shipped configuration (``hlfnet_isic2017``).

    Raises:
        FileNotFoundError: neither a file nor a shipped name; lists the shipped names.
    """
    path = Path(config)
    if path.is_file():
        return path
    shipped = resources.files("hlfnet") / "configs" / f"{path.name.removesuffix('.yaml')}.yaml"
    if path.parent == Path(".") and shipped.is_file():
        return Path(str(shipped))
    raise FileNotFoundError(
        f"config {str(config)!r}: no such file, and not a shipped config (shipped: {', '.join(list_configs())})"
    )


def _parse_override(item: str) -> tuple[list[str], Any]:
    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"override {item!r} must look like key.sub=value (e.g. train.max_epochs=3)")
    try:
        value = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError:
        value = text
    return key.strip().split("."), value


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key.sub=value`` strings to a nested dictionary (values are read as YAML: ``3``, ``true``, ``[1,2]``).

    Keys are not checked here; :meth:`ExperimentConfig.from_dict` checks the result.

    Raises:
        ValueError: an override without ``=``, or one that descends into a non-mapping value.
    """
    result = _deep_copy(raw)
    for item in overrides:
        path, value = _parse_override(item)
        node = result
        for depth, part in enumerate(path[:-1]):
            child = node.setdefault(part, {})
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ValueError(f"override {item!r}: {'.'.join(path[: depth + 1])} is not a section")
            node = child
        node[path[-1]] = value
    return result


def _deep_copy(raw: Any) -> Any:
    if isinstance(raw, dict):
        return {k: _deep_copy(v) for k, v in raw.items()}
    if isinstance(raw, list):
        return [_deep_copy(v) for v in raw]
    return raw


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; errors name the file."""
    path = Path(path)
    raw = safe_yaml_load(path)  # size and alias limits (hlfnet.limits)
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: a config must be a mapping of sections, got {type(raw).__name__}")
    return raw


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
