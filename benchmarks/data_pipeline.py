"""Input pipeline vs. training step: can the data keep HLF-Net fed?

Measures, in one run on this machine:

1. first-epoch cost: building the preprocessing cache of the ISIC 2017 training images (decode JPEG + PNG,
   check labels, resize to 256×192, RGB + grey) — all 2000 real images when ``../shared/data`` is present;
2. loader throughput from the cache: batches/s of a ``DataLoader`` (batch 6, 4×192×256, shuffled, with the
   paper's crop + flip augmentation), in the main process and with worker processes;
3. the training step it feeds: ``hlfnet.create_model("hlfnet")`` forward + backward + Adam step, batch 6,
   4×192×256, ``torch.set_num_threads(2)``, soft Dice loss (the paper's).

Usage::

    python benchmarks/data_pipeline.py                      # real ISIC if found, else synthetic
    python benchmarks/data_pipeline.py --isic-root PATH --json results.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from hlfnet import create_model
from hlfnet.data import DataConfig, build_dataset
from hlfnet.data.cache import load_or_build
from hlfnet.data.splits import split_pairs

REPO = Path(__file__).resolve().parents[1]
BATCH = 6


def _default_isic() -> Path:
    return Path(os.environ.get("HLFNET_SHARED_DATA", REPO.parent / "shared" / "data")) / "isic2017"


def cache_build(cfg: DataConfig) -> dict:
    """Time building the cache of every image (first epoch), then re-opening it (later epochs/runs)."""
    pairs = split_pairs(cfg, "train")
    start = time.perf_counter()
    store = load_or_build(cfg, "train", pairs)
    build_s = time.perf_counter() - start
    start = time.perf_counter()
    load_or_build(cfg, "train", pairs)
    reopen_s = time.perf_counter() - start
    size = (store.path / "images.npy").stat().st_size + (store.path / "masks.npy").stat().st_size
    return {
        "images": len(pairs),
        "build_s": build_s,
        "ms_per_image": 1000 * build_s / len(pairs),
        "reopen_s": reopen_s,
        "cache_mib": size / 2**20,
    }


def loader_rate(cfg: DataConfig, workers: int, batches: int) -> float:
    """Batches/s of a shuffled, augmented DataLoader reading the cache."""
    ds = build_dataset(cfg, "train")
    loader = DataLoader(
        ds, batch_size=BATCH, shuffle=True, num_workers=workers, drop_last=True, persistent_workers=False
    )
    ds.set_epoch(0)
    it = iter(loader)
    next(it)  # worker start-up is not steady-state throughput
    start, n = time.perf_counter(), 0
    while n < batches:
        try:
            batch = next(it)
        except StopIteration:
            it = iter(loader)
            continue
        assert batch["image"].shape == (BATCH, cfg.in_channels or 4, *cfg.image_size)
        n += 1
    return n / (time.perf_counter() - start)


def train_step_rate(steps: int, image_size: tuple[int, int]) -> tuple[float, list[float]]:
    """Steps/s of HLF-Net training (forward + backward + Adam), batch 6, 2 threads."""
    torch.manual_seed(0)
    model = create_model("hlfnet", in_channels=4, out_channels=1)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    x = torch.rand(BATCH, 4, *image_size)
    y = (torch.rand(BATCH, 1, *image_size) > 0.7).float()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        prob = torch.sigmoid(model(x))
        inter = (prob * y).sum()
        loss = 1 - (2 * inter + 1) / (prob.sum() + y.sum() + 1)
        loss.backward()
        optimizer.step()

    step()  # warm-up (allocations)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return 1.0 / statistics.median(times), times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--isic-root", type=Path, default=_default_isic())
    parser.add_argument(
        "--cache-dir", type=Path, help="cache root (default: a temporary folder, removed after)"
    )
    parser.add_argument("--batches", type=int, default=150, help="batches timed per loader setting")
    parser.add_argument("--steps", type=int, default=3, help="training steps timed")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers for the second loader run")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(2)

    cache_dir = args.cache_dir or Path(tempfile.mkdtemp(prefix="hlfnet-bench-"))
    real = (args.isic_root / "ISIC-2017_Training_Data").is_dir()
    if real:
        # All images in one "train" split: the first-epoch cost of the full 2000-image training folder.
        cfg = DataConfig(
            format="isic2017",
            root=str(args.isic_root),
            cache_dir=str(cache_dir),
            split_fractions=(1.0, 0.0, 0.0),
            split_file=str(cache_dir / "all.json"),
        )
    else:
        print(f"no ISIC data at {args.isic_root}; benchmarking the synthetic set instead", file=sys.stderr)
        cfg = DataConfig(synthetic_train=300, cache_dir=str(cache_dir))
    results: dict = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "torch_threads": torch.get_num_threads(),
        "data": "ISIC 2017 (real)" if real else "synthetic",
    }
    try:
        if real:
            results["cache_build"] = cache_build(cfg)
        results["loader_batches_per_s"] = {
            "main_process": loader_rate(cfg, 0, args.batches),
            f"{args.workers}_workers": loader_rate(cfg, args.workers, args.batches),
        }
        rate, times = train_step_rate(args.steps, cfg.image_size)
        results["train_steps_per_s"] = rate
        results["train_step_s"] = times
        best_loader = max(results["loader_batches_per_s"].values())
        results["loader_over_training"] = {k: v / rate for k, v in results["loader_batches_per_s"].items()}
        results["ok_10x"] = results["loader_over_training"]["main_process"] >= 10
    finally:
        if args.cache_dir is None:
            shutil.rmtree(cache_dir, ignore_errors=True)

    if "cache_build" in results:
        cb = results["cache_build"]
        print(
            f"first epoch (cache build): {cb['images']} ISIC images in {cb['build_s']:.1f} s "
            f"({cb['ms_per_image']:.1f} ms/image, {cb['cache_mib']:.0f} MiB); reopening: {cb['reopen_s'] * 1000:.0f} ms"
        )
    for name, value in results["loader_batches_per_s"].items():
        print(f"loader from cache ({name}): {value:.1f} batches/s of {BATCH}×4×192×256 (crop + flip)")
    print(
        f"training step (hlfnet, fwd+bwd+Adam, batch {BATCH}, 2 threads): {rate:.3f} steps/s "
        f"({statistics.median(times):.2f} s/step)"
    )
    print(
        f"loader / training: {results['loader_over_training']['main_process']:.0f}× (main process), "
        f"{best_loader / rate:.0f}× (best) -> {'OK' if results['ok_10x'] else 'TOO SLOW'} (need ≥ 10×)"
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0 if results["ok_10x"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
