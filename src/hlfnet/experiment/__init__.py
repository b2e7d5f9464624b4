"""Experiments on disk: the configuration a run is made from and the run folder it leaves behind.

The layer that training (:mod:`hlfnet.engine`), evaluation, serving, export and the pretrained publisher all
read, below every one of them (docs/architecture.md draws the layers)::

    from hlfnet.experiment import load_config, load_run, load_pretrained

    config = load_config("hlfnet_isic2017", ["data.root=/data/isic"])   # ExperimentConfig, checked
    loaded = load_run("runs/hlfnet")              # LoadedRun: .model, .data (its preprocessing), .config, .split
    loaded = load_pretrained("hlfnet-isic2017")   # the same, for a network shipped in the package

:mod:`hlfnet.experiment.config` is the typed configuration (``model``, ``data``, ``train``);
:mod:`hlfnet.experiment.run_folder` reads a run folder, bare weights or a pretrained name.
"""

from __future__ import annotations

from hlfnet.experiment.config import (
    RESUME_OVERRIDABLE,
    ExperimentConfig,
    ModelConfig,
    TrainConfig,
    config_to_dict,
    load_config,
    plain_data,
    save_config,
)
from hlfnet.experiment.run_folder import (
    CHECKPOINTS,
    WEIGHTS_NAME,
    LoadedRun,
    load_pretrained,
    load_run,
    read_config,
    read_metrics_csv,
)

__all__ = [
    "CHECKPOINTS",
    "RESUME_OVERRIDABLE",
    "WEIGHTS_NAME",
    "ExperimentConfig",
    "LoadedRun",
    "ModelConfig",
    "TrainConfig",
    "config_to_dict",
    "load_config",
    "load_pretrained",
    "load_run",
    "plain_data",
    "read_config",
    "read_metrics_csv",
    "save_config",
]
