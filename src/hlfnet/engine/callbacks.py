"""What Lightning does not do for us: the run folder's per-epoch files, the random state, atomic checkpoints.

* :class:`RunRecorder` appends each epoch's row to ``metrics.csv``, redraws ``curves.png`` and exports the
  best-on-validation-Dice weights as ``model.safetensors`` + ``model.json``. Its history lives in the checkpoint,
  so a resumed run rewrites ``metrics.csv`` from the checkpoint (rows a killed run wrote after its last
  checkpoint are dropped, then recomputed).
* :class:`RandomStateCallback` keeps the Python, NumPy and torch random states in the checkpoint, which
  Lightning does not, so that augmentation after a resume draws what it would have drawn.
* :class:`EpochSummary` logs one line per epoch (loss, scores, rate, time) for runs without a progress bar.
* :class:`TimeLimit` stops training at the end of the first epoch past ``train.max_time`` in this start.
* :class:`AtomicCheckpointIO` writes checkpoints to a temporary file, fsyncs it and renames it over the target.
  Lightning's own writer goes through an fsspec transaction (temporary file + move), which survives a killed
  process but is not fsynced; ours also survives a power cut.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
import random
import time
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Timer
from lightning.pytorch.plugins.io import TorchCheckpointIO

from hlfnet.atomic import atomic_write_bytes
from hlfnet.data import DataConfig
from hlfnet.engine.module import EPOCH_COLUMNS, SegmentationModule
from hlfnet.models.io import save_model

__all__ = [
    "AtomicCheckpointIO",
    "EpochSummary",
    "RandomStateCallback",
    "RunRecorder",
    "TimeLimit",
    "plot_curves",
    "write_metrics_csv",
]

log = logging.getLogger(__name__)


class AtomicCheckpointIO(TorchCheckpointIO):
    """``torch.save`` into memory, then :func:`hlfnet.atomic.atomic_write_bytes` (temp file, fsync, rename).

    Args:
        root: the run folder every checkpoint must stay inside, never below a link (``None``: no check).
    """

    def __init__(self, root: str | Path | None = None) -> None:
        super().__init__()
        self.root = root

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO.save_checkpoint does not take storage_options")
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        atomic_write_bytes(path, buffer.getvalue(), self.root)


class RandomStateCallback(L.Callback):
    """Save and restore the Python, NumPy and torch (CPU and CUDA) random states with each checkpoint.

    The states are stored as tensors and plain Python values so that the checkpoint loads with
    ``torch.load(weights_only=True)``. Restored states are those of the saving process (rank 0); exact resume
    is guaranteed for single-process runs.
    """

    def state_dict(self) -> dict[str, Any]:
        kind, keys, pos, has_gauss, gauss = np.random.get_state()
        state: dict[str, Any] = {
            "python": random.getstate(),
            "numpy": {
                "kind": kind,
                "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
                "pos": int(pos),
                "has_gauss": int(has_gauss),
                "gauss": float(gauss),
            },
            "torch": torch.get_rng_state(),
        }
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        version, internal, gauss_next = state_dict["python"]
        random.setstate((version, tuple(internal), gauss_next))
        n = state_dict["numpy"]
        np.random.set_state(
            (n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"])
        )
        torch.set_rng_state(state_dict["torch"])
        if "cuda" in state_dict and torch.cuda.is_available():
            states = state_dict["cuda"]
            if len(states) == torch.cuda.device_count():
                torch.cuda.set_rng_state_all(states)


def write_metrics_csv(path: str | Path, rows: list[dict[str, float]], root: str | Path | None = None) -> None:
    """Write ``rows`` (keys :data:`~hlfnet.engine.module.EPOCH_COLUMNS`) as CSV, atomically."""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(EPOCH_COLUMNS), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (int(row[k]) if k == "epoch" else repr(float(row[k]))) for k in EPOCH_COLUMNS})
    atomic_write_bytes(path, text.getvalue().encode(), root)


def plot_curves(
    rows: list[dict[str, float]], path: str | Path, title: str = "", root: str | Path | None = None
) -> None:
    """Draw losses and validation metrics per epoch into a PNG (atomically).

    Args:
        rows: the epochs' rows (see :data:`~hlfnet.engine.module.EPOCH_COLUMNS`).
        path: where to write the PNG.
        title: figure title (the run name).
    """
    from matplotlib.figure import Figure

    epochs = [int(r["epoch"]) for r in rows]
    figure = Figure(figsize=(10, 4), dpi=100)
    losses, scores = figure.subplots(1, 2)
    for key, label in (("train_loss", "training loss (train.loss)"), ("val_loss", "validation Dice loss")):
        losses.plot(epochs, [r[key] for r in rows], marker="o", markersize=3, label=label)
    losses.set_xlabel("epoch")
    losses.set_ylabel("loss")
    losses.legend()
    losses.grid(alpha=0.3)
    for key in ("val_dice", "val_jaccard", "val_accuracy"):
        scores.plot(epochs, [r[key] for r in rows], marker="o", markersize=3, label=key.removeprefix("val_"))
    best = max(rows, key=lambda r: r["val_dice"]) if rows else None
    if best is not None and not math.isnan(best["val_dice"]):
        scores.axvline(best["epoch"], color="grey", linestyle=":", label=f"best (epoch {int(best['epoch'])})")
    scores.set_xlabel("epoch")
    scores.set_ylabel("validation score")
    scores.set_ylim(0, 1)
    scores.legend(loc="lower right")
    scores.grid(alpha=0.3)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    atomic_write_bytes(path, buffer.getvalue(), root)


class RunRecorder(L.Callback):
    """Keep the run folder's ``metrics.csv``, ``curves.png`` and best ``model.safetensors`` up to date.

    Runs after each validation epoch and before :class:`~lightning.pytorch.callbacks.ModelCheckpoint` (which
    Lightning always calls last), so that ``last.ckpt`` carries the history including the epoch it ends.
    The best epoch is the first one with the highest validation Dice, as ``ModelCheckpoint(mode="max")``
    picks it. Only the global rank 0 writes files.

    Args:
        run_dir: the run folder.
        data: the data section, stored in ``model.json`` so that inference can prepare images the same way.
        title: title of ``curves.png``.
    """

    def __init__(self, run_dir: str | Path, data: DataConfig, title: str = "") -> None:
        self.run_dir = Path(run_dir)
        self.data = data
        self.title = title
        self.history: list[dict[str, float]] = []
        self.best_epoch: int | None = None
        self.best_val_dice: float = -math.inf

    @property
    def state_key(self) -> str:
        return "RunRecorder"

    def state_dict(self) -> dict[str, Any]:
        return {
            "history": [dict(r) for r in self.history],
            "best_epoch": self.best_epoch,
            "best_val_dice": self.best_val_dice,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = [dict(r) for r in state_dict["history"]]
        self.best_epoch = state_dict["best_epoch"]
        self.best_val_dice = state_dict["best_val_dice"]

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # After a resume: make the files agree with the checkpoint we continue from.
        if trainer.is_global_zero and self.history:
            self._write_files()

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not isinstance(pl_module, SegmentationModule):
            return
        row = pl_module.epoch_row
        if row is None:
            return
        self.history.append(dict(row))
        # ModelCheckpoint compares the logged (float32) values with ">": decide exactly as it does, so that
        # best.ckpt and model.safetensors always hold the same epoch.
        improved = bool(np.float32(row["val_dice"]) > np.float32(self.best_val_dice))
        if improved:
            self.best_epoch = int(row["epoch"])
            self.best_val_dice = row["val_dice"]
        if improved and not all(bool(torch.isfinite(p).all()) for p in pl_module.model.parameters()):
            from hlfnet.errors import NonFiniteError

            raise NonFiniteError(
                f"the network's weights hold NaN/inf after epoch {int(row['epoch'])}: training diverged; lower "
                f"train.lr. {self.run_dir / 'model.safetensors'} keeps the last finite best weights"
            )
        if trainer.is_global_zero:
            if improved:
                save_model(
                    pl_module.model,
                    self.run_dir / "model.safetensors",
                    extra={
                        "data": _plain_data(self.data),
                        "best_epoch": self.best_epoch,
                        "best_val_dice": self.best_val_dice,
                        "best_val_jaccard": row["val_jaccard"],
                        "best_val_accuracy": row["val_accuracy"],
                    },
                    root=self.run_dir,
                )
            self._write_files()

    def _write_files(self) -> None:
        write_metrics_csv(self.run_dir / "metrics.csv", self.history, self.run_dir)
        try:
            plot_curves(self.history, self.run_dir / "curves.png", self.title, self.run_dir)
        except Exception as error:  # a plot must never stop a training
            log.warning("could not draw %s: %s", self.run_dir / "curves.png", error)


class EpochSummary(L.Callback):
    """Log one line per epoch, for runs without a progress bar (``train.progress_bar: false``)::

        epoch 3 (4/45): train_loss=0.4123 val_loss=0.3800 val_dice=0.7012 lr=1.000e-04 time=12.3s

    ``epoch`` counts from 0 as in ``metrics.csv``, ``(n/N)`` is epochs done of ``train.max_epochs``;
    ``train_loss`` is the training loss (``train.loss``), ``val_loss`` the Dice loss on the validation set;
    ``time`` is the epoch's wall time, validation included. Logged by the global rank 0 at INFO.
    """

    def __init__(self) -> None:
        self._start = time.perf_counter()

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        row = getattr(pl_module, "epoch_row", None)
        if not trainer.is_global_zero or row is None or int(row["epoch"]) != trainer.current_epoch:
            return
        log.info("%s", format_epoch_line(row, trainer.max_epochs, time.perf_counter() - self._start))


def format_epoch_line(row: dict[str, float], max_epochs: int | None, seconds: float) -> str:
    """The :class:`EpochSummary` line of one ``metrics.csv`` row."""
    epoch = int(row["epoch"])
    of = f"{epoch + 1}/{max_epochs}" if max_epochs and max_epochs > 0 else f"{epoch + 1}"
    return (
        f"epoch {epoch} ({of}): train_loss={row['train_loss']:.4f} val_loss={row['val_loss']:.4f} "
        f"val_dice={row['val_dice']:.4f} lr={row['lr']:.3e} time={seconds:.1f}s"
    )


class TimeLimit(Timer):
    """Lightning's :class:`~lightning.pytorch.callbacks.Timer` checked at the end of each epoch, counting the
    training time of this start only.

    An epoch is never cut short, so ``last.ckpt`` always ends an epoch and a resumed run equals an
    uninterrupted one; a run may overrun ``duration`` by up to one epoch. Lightning's Timer keeps the elapsed
    time in the checkpoint, so a resumed run would stop again at once; this one keeps nothing, and each
    ``hlfnet train --resume`` gets the whole ``duration`` again (a job's time limit on a cluster).

    Args:
        duration: the time limit.
    """

    def __init__(self, duration: timedelta) -> None:
        super().__init__(duration=duration, interval="epoch", verbose=False)
        self.duration = duration

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        pass

    def on_train_epoch_end(self, trainer: L.Trainer, *args: Any, **kwargs: Any) -> None:
        super().on_train_epoch_end(trainer, *args, **kwargs)
        remaining = self.time_remaining()
        more = trainer.current_epoch + 1 < (trainer.max_epochs or 0)
        if (
            trainer.is_global_zero
            and trainer.should_stop
            and more
            and remaining is not None
            and remaining <= 0
        ):
            log.info(
                "train.max_time (%s) reached: stopping after epoch %d (%d of %d epochs done); "
                "hlfnet train --resume continues",
                self.duration,
                trainer.current_epoch,
                trainer.current_epoch + 1,
                trainer.max_epochs,
            )


def _plain_data(data: DataConfig) -> dict[str, Any]:
    from hlfnet.experiment.config import plain_data

    return plain_data(asdict(data))


def global_rank_from_env() -> int:
    """The global rank of this process as launchers announce it, before Lightning has started (0 if alone).

    Lightning's DDP launcher re-runs the command in child processes with ``LOCAL_RANK`` set; other nodes get
    ``NODE_RANK``; SLURM and torchrun set their own variables.
    """
    for name in ("RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK"):
        if name in os.environ:
            return int(os.environ[name])
    local = int(os.environ.get("LOCAL_RANK", 0))
    node = int(os.environ.get("NODE_RANK", os.environ.get("GROUP_RANK", 0)))
    return node * 1_000_000 + local  # only "is it zero?" matters
