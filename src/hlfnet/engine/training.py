"""``train(config)``: one experiment on Lightning, recorded in a run folder.

The run folder (``runs/<name>/`` by default)::

    config.yaml                 the resolved config (model / data / train sections, name, seed)
    split.json                  the split used ({"train": [...ids], "val": [...], "test": [...]})
    checkpoints/best.ckpt       Lightning checkpoint best on validation Dice
    checkpoints/last.ckpt       Lightning checkpoint of the last epoch (what --resume continues from)
    model.safetensors           the best weights; model.json beside them names the network and its arguments
    metrics.csv                 one row per epoch: epoch, lr, train_loss, val_loss, val_dice, val_jaccard, val_accuracy
    curves.png                  losses and validation scores per epoch
    logs/csv/version_N/         Lightning's CSVLogger (one version per start or resume)
    logs/tensorboard/version_N/ TensorBoard events (when tensorboard is installed)

Starting into an existing folder is refused unless ``overwrite`` (the folder is deleted first; only a folder
that looks like a run folder or is empty) or ``resume`` (continue from ``checkpoints/last.ckpt``).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import logging
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger

from hlfnet.atomic import atomic_write_bytes
from hlfnet.data import resolve_split
from hlfnet.engine.callbacks import (
    AtomicCheckpointIO,
    RandomStateCallback,
    RunRecorder,
    global_rank_from_env,
    read_metrics_csv,
)
from hlfnet.engine.config import ExperimentConfig, read_yaml, save_config
from hlfnet.engine.module import SegmentationDataModule, SegmentationModule
from hlfnet.models import create_model

__all__ = ["RunResult", "best_row", "train", "run_files", "prepare_run_dir", "load_run_config"]

log = logging.getLogger(__name__)

CONFIG_FILE = "config.yaml"
SPLIT_FILE = "split.json"
LAST_CHECKPOINT = Path("checkpoints") / "last.ckpt"
BEST_CHECKPOINT = Path("checkpoints") / "best.ckpt"


@dataclass(frozen=True)
class RunResult:
    """What :func:`train` leaves behind.

    Attributes:
        run_dir: the run folder.
        best_epoch: epoch (from 0) with the highest validation Dice.
        best_val_dice: that Dice.
        metrics: ``metrics.csv`` as a list of rows.
        files: the run folder's main files by role (``config``, ``split``, ``best_checkpoint``,
            ``last_checkpoint``, ``weights``, ``weights_json``, ``metrics``, ``curves``, ``logs``).
    """

    run_dir: Path
    best_epoch: int | None
    best_val_dice: float | None
    metrics: list[dict[str, float]]
    files: dict[str, Path]


def run_files(run_dir: str | Path) -> dict[str, Path]:
    """The paths of a run folder's files by role (whether or not they exist yet)."""
    run_dir = Path(run_dir)
    return {
        "config": run_dir / CONFIG_FILE,
        "split": run_dir / SPLIT_FILE,
        "best_checkpoint": run_dir / BEST_CHECKPOINT,
        "last_checkpoint": run_dir / LAST_CHECKPOINT,
        "weights": run_dir / "model.safetensors",
        "weights_json": run_dir / "model.json",
        "metrics": run_dir / "metrics.csv",
        "curves": run_dir / "curves.png",
        "logs": run_dir / "logs",
    }


def load_run_config(run_dir: str | Path, overrides: list[str] | None = None) -> ExperimentConfig:
    """The resolved config of an existing run, with optional ``key=value`` overrides.

    Raises:
        FileNotFoundError: the run folder or its ``config.yaml`` is missing.
        ValueError: the config does not validate.
    """
    from hlfnet.engine.config import apply_overrides

    path = Path(run_dir) / CONFIG_FILE
    if not Path(run_dir).is_dir():
        raise FileNotFoundError(f"{run_dir}: run folder not found")
    raw = apply_overrides(read_yaml(path), list(overrides or []))
    # The resolved config spells out the data-derived model arguments; they are checked, not passed twice.
    try:
        return ExperimentConfig.from_dict(raw)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None


def prepare_run_dir(
    run_dir: Path, *, overwrite: bool = False, resume: bool = False, create: bool = True
) -> None:
    """Make sure ``run_dir`` may be written: refuse an existing folder unless told to overwrite or resume.

    With ``create=False`` only the checks run (nothing is deleted or created).

    Raises:
        FileExistsError: the folder exists (and neither flag is set), or ``overwrite`` is asked of a folder that
            is neither empty nor a run folder (it is never deleted).
        FileNotFoundError: ``resume`` without ``checkpoints/last.ckpt``.
        ValueError: both flags.
    """
    if overwrite and resume:
        raise ValueError("choose one of resume and overwrite, not both")
    if resume:
        last = run_dir / LAST_CHECKPOINT
        if not last.is_file():
            raise FileNotFoundError(f"{last}: no checkpoint to resume from")
        return
    if run_dir.exists():
        if not overwrite:
            raise FileExistsError(
                f"{run_dir}: run folder exists; pass --resume {run_dir} to continue it or --overwrite to replace it"
            )
        if not run_dir.is_dir():
            raise FileExistsError(f"{run_dir}: exists and is not a folder; not overwriting it")
        looks_like_run = (run_dir / CONFIG_FILE).is_file() or (run_dir / "checkpoints").is_dir()
        if any(run_dir.iterdir()) and not looks_like_run:
            raise FileExistsError(
                f"{run_dir}: not empty and not a run folder (no {CONFIG_FILE}); not deleting it"
            )
        if not create:
            return
        log.info("overwriting %s", run_dir)
        shutil.rmtree(run_dir)
    if create:
        run_dir.mkdir(parents=True)


def _resolve_data(config: ExperimentConfig, datamodule: SegmentationDataModule) -> ExperimentConfig:
    """Fill in what only the data knows (``in_channels: null``) and refuse data that cannot be trained on."""
    train_set, val_set = datamodule.train_set, datamodule.val_set
    where = f"{config.data.format} data{' at ' + config.data.root if config.data.root else ''}"
    if train_set is None or len(train_set) == 0:
        raise ValueError(f"the training split of the {where} is empty")
    if val_set is None or len(val_set) == 0:
        raise ValueError(
            f"the validation split of the {where} is empty: the best model is chosen on it "
            f"(set data.split_fractions or data.split_file)"
        )
    if config.data.in_channels is None:
        channels = int(getattr(train_set, "in_channels", 0) or train_set[0]["image"].shape[0])
        data = dataclasses.replace(config.data, in_channels=channels)
        config = dataclasses.replace(config, data=data)
        datamodule.data = data
    return config


def _check_split_unchanged(config: ExperimentConfig, saved: Path) -> None:
    """A resumed run must see the images it started with (the split file may live outside the run folder)."""
    if not saved.is_file():
        raise FileNotFoundError(
            f"{saved}: the run's split is missing; cannot check that a resume sees the same data"
        )
    before = json.loads(saved.read_text())
    now = resolve_split(config.data)
    changed = [s for s in ("train", "val") if sorted(before.get(s, [])) != sorted(now.get(s, []))]
    if changed:
        raise ValueError(
            f"{saved}: the data's {' and '.join(changed)} split differs from the one this run started with "
            f"(data.split_file or the data folder changed); resuming would train on other images"
        )


def _loggers(run_dir: Path, name: str) -> list[Logger]:
    loggers: list[Logger] = [CSVLogger(save_dir=run_dir / "logs", name="csv")]
    if importlib.util.find_spec("tensorboard") or importlib.util.find_spec("tensorboardX"):
        loggers.append(
            TensorBoardLogger(save_dir=run_dir / "logs", name="tensorboard", default_hp_metric=False)
        )
    else:
        log.warning("tensorboard is not installed: no TensorBoard logs (pip install 'hlfnet[tensorboard]')")
    return loggers


class _NoAdvertising(logging.Filter):
    """Drop Lightning's "💡 Tip: try installing <cloud product>" lines; keep everything else it says."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡 Tip")


_NO_ADVERTISING = _NoAdvertising()


def _quiet_lightning() -> None:
    # Advice that does not apply to us: single-process CPU loaders are a choice (train.num_workers), and the
    # checkpoint folder of a resumed run is meant to hold the previous checkpoints.
    for message in (
        r".*does not have many workers.*",
        r".*Checkpoint directory .* exists and is not empty.*",
        r".*The number of training batches .* is smaller than the logging interval.*",
        r".*isinstance\(treespec, LeafSpec\)` is deprecated.*",
    ):
        warnings.filterwarnings("ignore", message=message)
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_NO_ADVERTISING)


def build_trainer(
    config: ExperimentConfig,
    run_dir: Path,
    callbacks: list[L.Callback] | None = None,
    logger: bool = True,
) -> tuple[L.Trainer, RunRecorder]:
    """The Lightning ``Trainer`` of an experiment, with the run folder's callbacks and loggers.

    Args:
        config: the experiment.
        run_dir: the run folder.
        callbacks: more callbacks (e.g. timing in the overhead benchmark).
        logger: attach the CSV and TensorBoard loggers.

    Returns:
        ``(trainer, recorder)``; the recorder holds the history and the best epoch after ``fit``.
    """
    t = config.train
    recorder = RunRecorder(run_dir, config.data, title=config.name)
    checkpoint = ModelCheckpoint(
        dirpath=run_dir / "checkpoints",
        filename="best",
        monitor="val_dice",
        mode="max",
        save_top_k=1,
        save_last=True,
        auto_insert_metric_name=False,
        enable_version_counter=False,
    )
    trainer = L.Trainer(
        default_root_dir=run_dir,
        max_epochs=t.max_epochs,
        accelerator=t.accelerator,
        devices=t.devices,
        num_nodes=t.num_nodes,
        strategy=t.strategy,
        precision=t.precision,
        deterministic=t.deterministic,
        logger=_loggers(run_dir, config.name) if logger else False,
        callbacks=[recorder, RandomStateCallback(), checkpoint, *(callbacks or [])],
        plugins=[AtomicCheckpointIO()],
        check_val_every_n_epoch=1,
        num_sanity_val_steps=0,
        limit_train_batches=t.limit_train_batches,
        limit_val_batches=t.limit_val_batches,
        enable_progress_bar=t.progress_bar,
        enable_model_summary=t.progress_bar,
        log_every_n_steps=t.log_every_n_steps,
        # Our data module shards the data itself (order a function of seed and epoch, exact validation).
        use_distributed_sampler=False,
    )
    return trainer, recorder


def train(
    config: ExperimentConfig,
    run_dir: str | Path | None = None,
    *,
    resume: bool = False,
    overwrite: bool = False,
    callbacks: list[L.Callback] | None = None,
) -> RunResult:
    """Train one experiment and record it in a run folder.

    Args:
        config: the validated experiment (see :func:`hlfnet.engine.load_config`).
        run_dir: the run folder; default ``<config.train.runs_dir>/<config.name>``.
        resume: continue the run in ``run_dir`` from ``checkpoints/last.ckpt`` (optimiser, scheduler, epoch,
            random state, history); ``config`` should be the run's own (:func:`load_run_config`).
        overwrite: delete an existing run folder first.
        callbacks: extra Lightning callbacks.

    Returns:
        The :class:`RunResult`.

    Raises:
        FileExistsError: ``run_dir`` exists and neither ``resume`` nor ``overwrite`` is set.
        FileNotFoundError: ``resume`` without a last checkpoint, or missing data files.
        ValueError: bad config values found while building the model or the data.
    """
    run_dir = Path(run_dir) if run_dir is not None else Path(config.train.runs_dir) / config.name
    is_launcher = global_rank_from_env() == 0
    # DDP re-runs this function in child processes after rank 0 has created the folder: only rank 0 prepares.
    # Check first, create only once the data has loaded, so that a bad data path leaves no folder behind.
    if is_launcher:
        prepare_run_dir(run_dir, overwrite=overwrite, resume=resume, create=False)
    _quiet_lightning()

    datamodule = SegmentationDataModule(
        config.data,
        batch_size=config.train.batch_size,
        num_workers=config.train.num_workers,
        seed=config.seed,
        pin_memory=config.train.accelerator in ("gpu", "cuda"),
    )
    datamodule.setup("fit")
    config = _resolve_data(config, datamodule)
    # Seeded right before the network is built: its initial weights depend on the seed alone.
    L.seed_everything(config.seed, workers=True, verbose=False)
    model = create_model(config.model.name, **config.model_kwargs())
    module = SegmentationModule(
        model,
        lr=config.train.lr,
        weight_decay=config.train.weight_decay,
        lr_step_epochs=config.train.lr_step_epochs,
        lr_gamma=config.train.lr_gamma,
        channels_last=config.train.channels_last,
    )
    if is_launcher:
        prepare_run_dir(run_dir, overwrite=overwrite, resume=resume)
    if is_launcher and resume:
        _check_split_unchanged(config, run_dir / SPLIT_FILE)
    if is_launcher and not resume:
        save_config(config, run_dir / CONFIG_FILE)
        split = resolve_split(config.data)
        atomic_write_bytes(run_dir / SPLIT_FILE, json.dumps(split, indent=1).encode())
        log.info(
            "run %s: %s on %s (%s), %d train / %d val images",
            run_dir,
            config.model.name,
            config.data.format,
            config.data.root or "built in",
            len(split.get("train", [])),
            len(split.get("val", [])),
        )

    trainer, recorder = build_trainer(config, run_dir, callbacks)
    ckpt_path = run_dir / LAST_CHECKPOINT if resume else None
    if resume:
        log.info("resuming %s from %s", run_dir, ckpt_path)
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)

    files = run_files(run_dir)
    # From the file, not the recorder: under ddp_spawn the training happened in other processes.
    metrics = read_metrics_csv(files["metrics"]) if files["metrics"].is_file() else list(recorder.history)
    best = best_row(metrics)
    return RunResult(
        run_dir=run_dir,
        best_epoch=None if best is None else int(best["epoch"]),
        best_val_dice=None if best is None else best["val_dice"],
        metrics=metrics,
        files=files,
    )


def best_row(metrics: list[dict[str, float]]) -> dict[str, float] | None:
    """The epoch kept as the final model: the first with the highest validation Dice (compared in float32,
    as ``ModelCheckpoint`` compares the logged values)."""
    best: dict[str, float] | None = None
    for row in metrics:
        if best is None or np.float32(row["val_dice"]) > np.float32(best["val_dice"]):
            best = row
    return best


def describe_run(result: RunResult) -> dict[str, Any]:
    """A JSON-able summary of a run (for the CLI)."""
    return {
        "run_dir": str(result.run_dir),
        "best_epoch": result.best_epoch,
        "best_val_dice": result.best_val_dice,
        "epochs": len(result.metrics),
        "files": {k: str(v) for k, v in result.files.items()},
    }
