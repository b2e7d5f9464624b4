"""Training throughput through the engine (``hlfnet.engine.training``, Lightning) vs a bare PyTorch loop.

Both sides train the same network from the same initial weights on the same batches (the engine's own data
module and sampler, so the order and augmentation are identical), with the same loss (MONAI Dice), optimiser
(Adam) and schedule (StepLR). The bare loop is the minimum any training needs: forward, loss, backward, step.

Timed: each epoch's training batches only (from the epoch's start to the end of its last batch; validation,
checkpoints and the run folder's files are the per-epoch "extras", reported separately). The two sides
alternate ``--rounds`` times in one process, and each side's **best** epoch counts: on a shared machine the
fastest epoch is the least disturbed measurement of what the code costs (as ``timeit`` reports the minimum).

Run::

    python benchmarks/engine_overhead.py                 # hlfnet, 64x64, batch 6, 3 rounds x 3 epochs
    python benchmarks/engine_overhead.py --size 96 128 --rounds 2 --json overhead.json
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import tempfile
import time
from pathlib import Path

import lightning as L
import torch

from hlfnet.engine.loss import dice_loss
from hlfnet.engine.module import SegmentationDataModule
from hlfnet.engine.training import train
from hlfnet.experiment.config import load_config
from hlfnet.models import create_model


class EpochTimer(L.Callback):
    """Seconds and images of each epoch's training batches, and of the extras after them."""

    def __init__(self) -> None:
        self.train_seconds: list[float] = []
        self.images: list[int] = []
        self.extra_seconds: list[float] = []
        self._start = 0.0
        self._last_batch_end = 0.0
        self._count = 0

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = time.perf_counter()
        self._count = 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        self._count += int(batch["image"].shape[0])
        self._last_batch_end = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.train_seconds.append(self._last_batch_end - self._start)
        self.images.append(self._count)
        self.extra_seconds.append(time.perf_counter() - self._last_batch_end)


def bare_loop(config, epochs: int) -> tuple[list[float], list[int]]:  # noqa: ANN001
    """The same training in plain PyTorch; returns per-epoch seconds and images."""
    L.seed_everything(config.seed, workers=True, verbose=False)
    model = create_model(config.model.name, **config.model_kwargs())
    data = SegmentationDataModule(config.data, config.train.batch_size, config.train.num_workers, config.seed)
    data.setup("fit")
    loader = data.train_dataloader()
    loss_fn = dice_loss(model.out_channels)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.train.lr)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, config.train.lr_step_epochs, config.train.lr_gamma)
    seconds, images = [], []
    model.train()
    for epoch in range(epochs):
        loader.sampler.set_epoch(epoch)
        start, count = time.perf_counter(), 0
        for batch in loader:
            optimizer.zero_grad(set_to_none=True)
            logits = model(batch["image"])
            loss = loss_fn(logits.float(), batch["mask"].float())
            loss.backward()
            optimizer.step()
            count += batch["image"].shape[0]
        scheduler.step()
        seconds.append(time.perf_counter() - start)
        images.append(count)
    return seconds, images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="hlfnet")
    parser.add_argument("--size", type=int, nargs=2, default=(64, 64), metavar=("H", "W"))
    parser.add_argument("--images", type=int, default=48, help="synthetic training images per epoch")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per round and side")
    parser.add_argument("--rounds", type=int, default=3, help="alternations engine / bare")
    parser.add_argument("--no-progress-bar", action="store_true", help="engine without its progress bar")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    with tempfile.TemporaryDirectory() as tmp:
        overrides = [
            f"model.name={args.model}",
            f"data.image_size=[{args.size[0]},{args.size[1]}]",
            f"data.synthetic_train={args.images}",
            "data.synthetic_val=6",
            f"data.cache_dir={tmp}/cache",
            f"train.max_epochs={args.epochs}",
            f"train.progress_bar={'false' if args.no_progress_bar else 'true'}",
        ]
        config = load_config("synthetic", overrides)
        engine, bare, extras = [], [], []
        for round_ in range(args.rounds):
            timer = EpochTimer()
            train(config, Path(tmp) / f"run{round_}", callbacks=[timer])
            engine += [n / s for n, s in zip(timer.images, timer.train_seconds, strict=True)]
            extras += timer.extra_seconds
            seconds, images = bare_loop(config, args.epochs)
            bare += [n / s for n, s in zip(images, seconds, strict=True)]

    result = {
        "model": args.model,
        "size": list(args.size),
        "batch_size": config.train.batch_size,
        "images_per_epoch": args.images,
        "epochs_per_side": args.epochs * args.rounds,
        "threads": torch.get_num_threads(),
        "progress_bar": not args.no_progress_bar,
        "engine_best_images_per_s": max(engine),
        "bare_best_images_per_s": max(bare),
        "engine_median_images_per_s": statistics.median(engine),
        "bare_median_images_per_s": statistics.median(bare),
        "overhead_best": 1 - max(engine) / max(bare),
        "overhead_median": 1 - statistics.median(engine) / statistics.median(bare),
        "engine_extras_median_s_per_epoch": statistics.median(extras),
    }
    print(
        f"\n{args.model} {args.size[0]}x{args.size[1]}, batch {config.train.batch_size}, {args.images} images/epoch, "
        f"{result['epochs_per_side']} epochs per side, {result['threads']} threads\n"
        "| | best epoch (images/s) | median epoch (images/s) |\n|---|---:|---:|\n"
        f"| bare PyTorch loop | {max(bare):.2f} | {statistics.median(bare):.2f} |\n"
        f"| hlfnet train (Lightning) | {max(engine):.2f} | {statistics.median(engine):.2f} |\n"
        f"| engine overhead | {100 * result['overhead_best']:+.1f} % | {100 * result['overhead_median']:+.1f} % |\n"
        f"\nper-epoch extras of the engine (validation of 6 images, checkpoints, metrics.csv, curves.png): "
        f"median {result['engine_extras_median_s_per_epoch']:.2f} s"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
