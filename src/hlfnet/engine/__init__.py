"""Training on Lightning: typed configs, the paper's recipe, run folders, exact resume (docs/training.md).

Public API::

    from hlfnet.engine import load_config, train, load_run_config

    config = load_config("hlfnet_isic2017", ["data.root=/data/isic", "train.max_epochs=10"])
    result = train(config)                       # RunResult(run_dir, best_epoch, best_val_dice, metrics, files)
    train(load_run_config(result.run_dir, ["train.max_epochs=20"]), result.run_dir, resume=True)

The configuration names are imported eagerly; the ones that need Lightning are imported on first use, because
``hlfnet.cli`` imports this package for every command and ``hlfnet --help`` must stay fast.
"""

from __future__ import annotations

import importlib
from typing import Any

from hlfnet.experiment import (
    ExperimentConfig,
    ModelConfig,
    TrainConfig,
    config_to_dict,
    load_config,
    read_metrics_csv,
    save_config,
)
from hlfnet.schema import apply_overrides, list_configs

_LAZY = {
    "RunResult": "hlfnet.engine.training",
    "train": "hlfnet.engine.training",
    "load_run_config": "hlfnet.engine.training",
    "run_files": "hlfnet.engine.training",
    "SegmentationModule": "hlfnet.engine.module",
    "SegmentationDataModule": "hlfnet.engine.module",
    "dice_loss": "hlfnet.engine.loss",
    "run_demo": "hlfnet.engine.demo",
}

__all__ = [
    "ExperimentConfig",
    "ModelConfig",
    "TrainConfig",
    "apply_overrides",
    "config_to_dict",
    "list_configs",
    "load_config",
    "read_metrics_csv",
    "save_config",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'hlfnet.engine' has no attribute {name!r}")
