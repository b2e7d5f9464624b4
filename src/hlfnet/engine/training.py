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

Starting into an existing folder is refused unless ``overwrite`` or ``resume`` (continue from
``checkpoints/last.ckpt``). ``overwrite`` deletes only what hlfnet wrote there (the entries listed in the
folder's ``.hlfnet-output.json``; for older run folders the names above) and refuses a folder holding anything
else, naming it (:mod:`hlfnet.atomic`). The marker also records the resolved config (its fingerprint): a
resume refuses a ``config.yaml`` edited in ways the checkpoint cannot honour, listing the changed keys.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import json
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger

from hlfnet.atomic import (
    LOCK,
    atomic_write_bytes,
    check_tree,
    clean_temporaries,
    clear_owned,
    folder_lock,
    foreign_entries,
    read_marker,
    record_outputs,
)
from hlfnet.data import read_split, resolve_split, write_split
from hlfnet.engine.callbacks import (
    AtomicCheckpointIO,
    EpochSummary,
    RandomStateCallback,
    RunRecorder,
    TimeLimit,
    global_rank_from_env,
)
from hlfnet.engine.loss import default_loss
from hlfnet.engine.module import SegmentationDataModule, SegmentationModule
from hlfnet.errors import OutputRefused, Terminated, UserError
from hlfnet.experiment.config import (
    RESUME_OVERRIDABLE,
    ExperimentConfig,
    TrainConfig,
    config_to_dict,
    load_config,
    save_config,
)
from hlfnet.experiment.run_folder import read_metrics_csv
from hlfnet.models import create_model

__all__ = [
    "RunResult",
    "best_row",
    "default_run_dir",
    "load_run_config",
    "prepare_run_dir",
    "run_files",
    "split_facts",
    "train",
]

log = logging.getLogger(__name__)

CONFIG_FILE = "config.yaml"
SPLIT_FILE = "split.json"
LAST_CHECKPOINT = Path("checkpoints") / "last.ckpt"
BEST_CHECKPOINT = Path("checkpoints") / "best.ckpt"
#: What hlfnet writes into a run folder (``--overwrite`` deletes these, and nothing else).
PLAN_FILE = "plan.json"
RUN_ENTRIES = (
    CONFIG_FILE,
    SPLIT_FILE,
    PLAN_FILE,
    "checkpoints",
    "logs",
    "model.safetensors",
    "model.json",
    "metrics.csv",
    "curves.png",
    "evaluation",
    "export",
    "report.html",
)
_NESTED = {"checkpoints": ("best.ckpt", "last.ckpt")}
#: Entries of a run folder that other commands write (each replaces only its own kind; ``hlfnet.atomic``).
_OTHER_KINDS = {"evaluation": "evaluation", "export": "export", "report.html": "report"}
#: Sub-folders that Lightning writes into (its checkpoints and loggers): checked for links before training.
_LIGHTNING_FOLDERS = ("checkpoints", "logs")


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
    if not Path(run_dir).is_dir():
        raise FileNotFoundError(f"{run_dir}: run folder not found")
    # The resolved config spells out the data-derived model arguments; they are checked, not passed twice.
    return load_config(Path(run_dir) / CONFIG_FILE, overrides)


def prepare_run_dir(
    run_dir: Path, *, overwrite: bool = False, resume: bool = False, create: bool = True
) -> None:
    """Make sure ``run_dir`` may be written: refuse an existing folder unless told to overwrite or resume.

    With ``create=False`` only the checks run (nothing is deleted or created). ``overwrite`` deletes only the
    entries hlfnet wrote (see the module docstring), keeping the folder itself.

    Raises:
        FileExistsError: the folder exists (and neither flag is set), or is a file.
        OutputRefused: ``overwrite`` of a folder holding files hlfnet did not write (named; nothing is
            deleted), or of a symbolic link.
        UserError: a parent of ``run_dir`` is a file (``train.runs_dir=/etc/passwd``).
        FileNotFoundError: ``resume`` without ``checkpoints/last.ckpt``.
        ValueError: both flags.
    """
    if overwrite and resume:
        raise ValueError("choose one of resume and overwrite, not both")
    for parent in run_dir.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise UserError(
                    f"{parent}: is a file, not a folder; choose another train.runs_dir or --run-dir"
                )
            break
    if resume:
        last = run_dir / LAST_CHECKPOINT
        if not last.is_file():
            raise FileNotFoundError(f"{last}: no checkpoint to resume from")
        return
    if os.path.lexists(run_dir) and not _new_folder(run_dir):
        if not overwrite:
            raise FileExistsError(
                f"{run_dir}: run folder exists; pass --resume {run_dir} to continue it or --overwrite to replace it"
            )
        if run_dir.is_symlink():
            raise OutputRefused(
                f"{run_dir}: is a symbolic link; --overwrite never follows links (give the real folder)"
            )
        if not run_dir.is_dir():
            raise FileExistsError(f"{run_dir}: exists and is not a folder; not overwriting it")
        legacy = RUN_ENTRIES if (run_dir / CONFIG_FILE).is_file() else ()
        foreign = foreign_entries(run_dir, legacy, _NESTED)
        if foreign:
            names = ", ".join(str(p.relative_to(run_dir)) for p in foreign[:5])
            more = f" and {len(foreign) - 5} more" if len(foreign) > 5 else ""
            raise OutputRefused(
                f"{run_dir}: holds {names}{more}, not written by hlfnet; --overwrite replaces only hlfnet's run "
                "files, so the folder is left as it is (move those away or choose another --run-dir)"
            )
        if not create:
            return
        log.info("overwriting %s", run_dir)
        clear_owned(run_dir, legacy, _NESTED)
    if create:
        run_dir.mkdir(parents=True, exist_ok=True)
        record_outputs(run_dir, RUN_ENTRIES, "run", kinds=_OTHER_KINDS)


def _new_folder(run_dir: Path) -> bool:
    """A folder that this command has just made to lock it: empty but for the lock file."""
    return run_dir.is_dir() and not run_dir.is_symlink() and [p.name for p in run_dir.iterdir()] == [LOCK]


def default_run_dir(config: ExperimentConfig) -> Path:
    """``<train.runs_dir>/<name>``; a cross-validation fold goes to ``<train.runs_dir>/<name>/fold_<fold>``
    (nnU-Net's layout), so that ``<name>/`` holds the folds that ``predict`` ensembles and ``evaluate``
    cross-validates."""
    run_dir = Path(config.train.runs_dir) / config.name
    return run_dir if config.data.fold is None else run_dir / f"fold_{config.data.fold}"


def split_facts(data: Any) -> dict[str, Any]:
    """What ``split.json`` records before the ids: the fold, the number of folds and the seed they came from."""
    if data.fold is None:
        return {}
    return {"fold": data.fold, "num_folds": data.num_folds, "seed": data.seed}


def check_run_name(name: str) -> None:
    """A run name is one folder name: no separators, not ``.``/``..``, not absolute (it goes under runs_dir).

    Raises:
        UserError: naming the key ``name``.
    """
    if not name or name in (".", "..") or "/" in name or "\\" in name or name.startswith("~") or "\0" in name:
        raise UserError(
            f"config key 'name' must be a plain folder name (it becomes <train.runs_dir>/<name>), got {name!r}; "
            "use --run-dir to choose another place"
        )


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): list(value) if isinstance(value, tuple) else value}


def config_fingerprint(config: ExperimentConfig) -> str:
    """sha256 of the resolved config (``config.yaml`` as written), recorded in the run folder's marker."""
    import hashlib

    text = json.dumps(config_to_dict(config), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _check_resume_config(config: ExperimentConfig, run_dir: Path) -> None:
    """Refuse a resume whose config differs from the one the run started with, except in keys a resume can
    honour (:data:`hlfnet.experiment.config.RESUME_OVERRIDABLE`)."""

    marker = read_marker(run_dir)
    recorded = None if marker is None else marker.get("config")
    if not isinstance(recorded, dict):
        log.warning(
            "%s: no recorded config (a run from an older hlfnet); resuming without checking edits", run_dir
        )
        return
    before, now = _flatten(recorded), _flatten(json.loads(json.dumps(config_to_dict(config), default=str)))
    # A train key added after the run started (train.optimizer, train.schedule, ...) reads as its default,
    # which is what the older hlfnet trained with.
    for f in dataclasses.fields(TrainConfig):
        before.setdefault(f"train.{f.name}", f.default)
    missing = object()
    changed = [
        key
        for key in sorted(set(before) | set(now))
        if key not in RESUME_OVERRIDABLE and before.get(key, missing) != now.get(key, missing)
    ]
    if changed:
        details = ", ".join(f"{k} ({before.get(k)!r} -> {now.get(k)!r})" for k in changed[:6])
        raise UserError(
            f"{run_dir / CONFIG_FILE}: differs from the config the run started with in {details}"
            f"{' ...' if len(changed) > 6 else ''}; --resume cannot honour that (the checkpoint holds the old "
            f"settings): restore config.yaml, or start a new run. Keys a resume may change: "
            f"{', '.join(RESUME_OVERRIDABLE)}"
        )


def _checkpoint_epochs(path: Path) -> int:
    """Epochs a Lightning checkpoint has completed; a one-line error for an empty, truncated or foreign file."""
    import torch

    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises EOFError, RuntimeError, UnpicklingError... for bad files
        raise UserError(
            f"{path}: empty, truncated or not a checkpoint ({type(error).__name__}); cannot resume from it: restore "
            "it, or start the run again with --overwrite"
        ) from None
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("epoch"), int):
        raise UserError(f"{path}: not a Lightning checkpoint of hlfnet (no epoch); cannot resume from it")
    # saved when an epoch's validation ends, before Lightning counts that epoch as completed
    return int(checkpoint["epoch"]) + 1


def preflight(config: ExperimentConfig) -> None:
    """Checks that need no data and must pass before any folder is made: the run name, the network size
    and the training activations against the memory available (:mod:`hlfnet.limits`)."""
    from hlfnet.limits import check_network_size, check_training_memory
    from hlfnet.models.registry import get_model_spec

    check_run_name(config.name)
    arguments = {**get_model_spec(config.model.name).preset, **config.model.kwargs}
    check_network_size(arguments)
    if config.data.is_patch_plan:
        return  # the plan fits patch and batch to data.memory_budget_mb (hlfnet.data.plan.fit_patch_size)
    if config.train.accelerator == "cpu" or not _cuda_available():
        check_training_memory(config.train.batch_size, tuple(config.data.image_size), arguments)


def plan_experiment(config: ExperimentConfig) -> tuple[ExperimentConfig, Any]:
    """Derive the data's plan (:func:`hlfnet.data.plan.make_plan`) and write its values into the config.

    Returns:
        ``(config with the resolved data section and batch size, the Plan)``.
    """
    from hlfnet.data.plan import apply_plan, make_plan
    from hlfnet.models.registry import get_model_spec

    arguments = {**get_model_spec(config.model.name).preset, **config.model.kwargs}
    plan = make_plan(config.data, int(arguments.get("base_channels", 16)), int(arguments.get("depth", 4)))
    data = apply_plan(config.data, plan)
    batch = plan.batch_size if config.train.batch_size == "auto" else config.train.batch_size
    return dataclasses.replace(
        config, data=data, train=dataclasses.replace(config.train, batch_size=batch)
    ), plan


def _cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def _resolve_data(config: ExperimentConfig, datamodule: SegmentationDataModule) -> ExperimentConfig:
    """Fill in what only the data knows (``in_channels: null``) and refuse data that cannot be trained on."""
    train_set, val_set = datamodule.train_set, datamodule.val_set
    where = f"{config.data.format} data{' at ' + config.data.root if config.data.root else ''}"
    if train_set is None or len(train_set) == 0:
        raise ValueError(f"the training split of the {where} is empty")
    if val_set is None or len(val_set) == 0:
        raise ValueError(
            f"the validation split of the {where} is empty: the best model is chosen on it "
            f"(carve a validation fold out of the training cases with --fold 0 (data.fold), or set "
            f"data.split_fractions or data.split_file for a folder without split folders)"
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
    before = read_split(saved)
    now = resolve_split(config.data)
    changed = [s for s in ("train", "val") if sorted(before[s]) != sorted(now[s])]
    if changed:
        raise ValueError(
            f"{saved}: the data's {' and '.join(changed)} split differs from the one this run started with "
            f"(data.split_file or the data folder changed); resuming would train on other images"
        )


def _loggers(run_dir: Path) -> list[Logger]:
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


def resolve_accelerator(accelerator: str) -> str:
    """``auto`` -> ``gpu`` when CUDA is available, else ``cpu`` (never MPS: the float64 metric sums need
    float64, which MPS lacks); ``cuda`` -> ``gpu``.

    Raises:
        ValueError: ``gpu``/``cuda`` asked for where PyTorch sees no CUDA device.
    """
    import torch

    if accelerator == "auto":
        return "gpu" if torch.cuda.is_available() else "cpu"
    if accelerator in ("gpu", "cuda"):
        if not torch.cuda.is_available():
            raise ValueError(
                f"train.accelerator={accelerator!r} but PyTorch sees no CUDA GPU "
                f"(torch {torch.__version__}); use train.accelerator=auto or cpu"
            )
        return "gpu"
    return accelerator


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
    own: list[L.Callback] = [recorder, RandomStateCallback()]
    if not t.progress_bar:
        own.append(EpochSummary())
    limit = t.time_limit()
    if limit is not None:
        own.append(TimeLimit(limit))
    checkpoint = ModelCheckpoint(
        dirpath=run_dir / "checkpoints",
        filename="best",
        monitor="val_dice",
        mode="max",
        save_top_k=1,
        auto_insert_metric_name=False,
        enable_version_counter=False,
    )
    # The last epoch in its own callback: Lightning's save_last writes last.ckpt only when the monitored
    # checkpoint is saved, so an epoch that does not improve val_dice would leave a stale last.ckpt and a
    # resume would redo it.
    last = ModelCheckpoint(
        dirpath=run_dir / "checkpoints",
        filename="last",
        monitor=None,
        save_top_k=1,
        every_n_epochs=1,
        auto_insert_metric_name=False,
        enable_version_counter=False,
    )
    trainer = L.Trainer(
        default_root_dir=run_dir,
        max_epochs=t.max_epochs,
        accelerator=resolve_accelerator(t.accelerator),
        devices=t.devices,
        num_nodes=t.num_nodes,
        strategy=t.strategy,
        precision=t.precision,
        deterministic=t.deterministic,
        logger=_loggers(run_dir) if logger else False,
        callbacks=[*own, checkpoint, last, *(callbacks or [])],
        plugins=[AtomicCheckpointIO(run_dir)],
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
        config: the validated experiment (see :func:`hlfnet.experiment.load_config`).
        run_dir: the run folder; default :func:`default_run_dir` (``<config.train.runs_dir>/<config.name>``,
            ``.../<name>/fold_<N>`` for a cross-validation fold).
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
    plan = None
    if config.data.is_patch_plan and not resume:
        config, plan = plan_experiment(config)
    elif config.train.batch_size == "auto":
        config = dataclasses.replace(config, train=dataclasses.replace(config.train, batch_size=6))
    if config.train.loss == "auto":  # the run's config.yaml names the loss it trains with
        loss = default_loss(config.model_kwargs()["out_channels"])
        config = dataclasses.replace(config, train=dataclasses.replace(config.train, loss=loss))
    preflight(config)
    run_dir = Path(run_dir) if run_dir is not None else default_run_dir(config)
    accelerator = resolve_accelerator(
        config.train.accelerator
    )  # a missing GPU fails before any folder exists
    if config.train.precision == "16-mixed" and accelerator == "cpu":
        raise ValueError("train.precision '16-mixed' needs a GPU and none was found; use 'bf16-mixed' on CPU")
    is_launcher = global_rank_from_env() == 0
    # DDP re-runs this function in child processes after rank 0 has created the folder: only rank 0 prepares.
    # Check first, create only once the data has loaded, so that a bad data path leaves no folder behind.
    if is_launcher:
        prepare_run_dir(run_dir, overwrite=overwrite, resume=resume, create=False)
    if resume:
        _check_resume_config(config, run_dir)
        done = _checkpoint_epochs(run_dir / LAST_CHECKPOINT)
        if config.train.max_epochs < done:
            raise UserError(
                f"train.max_epochs={config.train.max_epochs} but {run_dir / LAST_CHECKPOINT} has already trained "
                f"{done} epoch(s); resume with --set train.max_epochs={done + 1} or more"
            )
    _quiet_lightning()

    datamodule = SegmentationDataModule(
        config.data,
        batch_size=config.train.batch_size,
        num_workers=config.train.num_workers,
        seed=config.seed,
        pin_memory=resolve_accelerator(config.train.accelerator) == "gpu",
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
        window=config.data.window_size if config.data.is_patch_plan else None,
        loss=config.train.loss,
        optimizer=config.train.optimizer,
        momentum=config.train.momentum,
        schedule=config.train.schedule,
        max_epochs=config.train.max_epochs,
    )
    # One command per run folder: a second train, resume or overwrite of it is refused before changing it.
    with folder_lock(run_dir) if is_launcher else contextlib.nullcontext():
        if is_launcher:
            prepare_run_dir(run_dir, overwrite=overwrite, resume=resume)
            for sub in _LIGHTNING_FOLDERS:  # Lightning's writers follow links: none may be there
                check_tree(run_dir / sub, run_dir)
        if is_launcher and resume:
            _check_split_unchanged(config, run_dir / SPLIT_FILE)
            clean_temporaries(run_dir, recursive=True)  # what a killed run left (checkpoints/.last.ckpt...)
        if is_launcher and not resume:
            save_config(config, run_dir / CONFIG_FILE)
            record_outputs(
                run_dir,
                RUN_ENTRIES,
                "run",
                kinds=_OTHER_KINDS,
                config=json.loads(json.dumps(config_to_dict(config), default=str)),
                config_sha256=config_fingerprint(config),
            )
            split = resolve_split(config.data)
            write_split(run_dir / SPLIT_FILE, split, split_facts(config.data), root=run_dir)
            if plan is not None:
                atomic_write_bytes(run_dir / PLAN_FILE, plan.to_json().encode(), root=run_dir)
                log.info("%s", plan.describe())
            log.info(
                "run %s: %s on %s (%s), %d train / %d val images",
                run_dir,
                config.model.name,
                config.data.format,
                config.data.root or "built in",
                len(split["train"]),
                len(split["val"]),
            )

        trainer, recorder = build_trainer(config, run_dir, callbacks)
        ckpt_path = run_dir / LAST_CHECKPOINT if resume else None
        if resume:
            log.info("resuming %s from %s", run_dir, ckpt_path)
        fit(trainer, module, datamodule, ckpt_path)

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


def fit(
    trainer: L.Trainer,
    module: SegmentationModule,
    datamodule: SegmentationDataModule,
    ckpt_path: Path | None,
) -> None:
    """``trainer.fit``, with Lightning's ways of ending on a signal turned into hlfnet's (``docs/safety.md``).

    Lightning answers Ctrl-C with ``sys.exit(1)`` and SIGTERM with a quiet ``SystemExit`` (status 0); both
    become what the CLI reports as such: :class:`KeyboardInterrupt` (130, ``interrupted``) and
    :class:`~hlfnet.errors.Terminated` (143). The last checkpoint stays, so ``train --resume`` continues.
    """
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    except SystemExit:
        if trainer.received_sigterm:
            raise Terminated("SIGTERM") from None
        if trainer.interrupted:
            raise KeyboardInterrupt from None
        raise


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
