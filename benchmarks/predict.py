"""Speed of ``hlfnet predict``: end to end against the bare forward pass, default against fast, in one process.

For each mode — ``default`` (float32, contiguous) and ``fast`` (``--channels-last --bf16``) — two timings over
the same real images, at the same batch size and thread count:

* **forward** — the network alone on the already preprocessed batch tensors, in the mode's memory format and
  precision (``Predictor.logits``): the floor any inference tool is bound by;
* **end to end** — ``hlfnet predict --model RUN --input DIR --output OUT`` (the CLI entry point, in process):
  loading the weights, listing the folder, decoding each image, the training preprocessing, the forward pass,
  sigmoid, resizing the probabilities to the original size, thresholding and writing the PNGs.

Overhead = (end-to-end time − forward time) / forward time. Speed-up = default time / fast time, for the
forward pass and end to end. Agreement = the share of mask pixels the fast mode writes equal to the default
mode's. Rounds are interleaved (every mode and timing once per round) and the fastest of each is reported: the
one least disturbed by other load on a shared machine. All figures come from this one process.

Usage::

    python benchmarks/predict.py                                   # 48 ISIC images, untrained full-size HLF-Net
    python benchmarks/predict.py --model hlfnet-isic2017           # the shipped pretrained model (96×128)
    python benchmarks/predict.py --model runs/NAME --count 200 --batch-size 8 --threads 2 --repeats 3
    python benchmarks/predict.py --modes default                   # one mode only (no speed-up)
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from hlfnet.cli import main as hlfnet_main
from hlfnet.evaluation.predictor import Predictor
from hlfnet.models import create_model, save_model

DEFAULT_IMAGES = (
    Path(__file__).resolve().parents[1].parent / "shared" / "data" / "isic2017" / "ISIC-2017_Training_Data"
)
#: mode -> (Predictor options, hlfnet predict flags)
MODES: dict[str, tuple[dict[str, bool], list[str]]] = {
    "default": ({}, []),
    "fast": ({"channels_last": True, "bf16": True}, ["--channels-last", "--bf16"]),
}


def paper_run(folder: Path) -> Path:
    """A run folder holding an untrained full-size HLF-Net with the paper's ISIC preprocessing (4×192×256)."""
    torch.manual_seed(0)
    model = create_model("hlfnet", in_channels=4, out_channels=1)
    data = {"format": "isic2017", "root": str(folder), "image_size": [192, 256], "in_channels": 4}
    save_model(model, folder / "model.safetensors", extra={"data": data})
    return folder


def agreement(a: Path, b: Path) -> float:
    """Share of mask pixels equal between two folders of PNG masks with the same names."""
    equal = total = 0
    for mask in sorted(a.glob("*.png")):
        x, y = np.asarray(Image.open(mask)), np.asarray(Image.open(b / mask.name))
        equal += int((x == y).sum())
        total += x.size
    return equal / total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--images", type=Path, default=DEFAULT_IMAGES, help="folder of real images (ISIC JPEGs)"
    )
    parser.add_argument(
        "--model", help="run folder or pretrained name (default: an untrained full-size HLF-Net, 4×192×256)"
    )
    parser.add_argument("--count", type=int, default=48, help="images to predict")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds; the fastest is reported")
    parser.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES))
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)

    files = sorted(p for p in args.images.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[
        : args.count
    ]
    if len(files) < args.count:
        raise SystemExit(f"{args.images}: only {len(files)} images, asked for {args.count}")
    with tempfile.TemporaryDirectory(prefix="hlfnet-bench-") as tmp:
        tmp_path = Path(tmp)
        inputs = tmp_path / "images"
        inputs.mkdir()
        for f in files:
            os.symlink(f.resolve(), inputs / f.name)
        run = args.model or str(paper_run(tmp_path / "run"))
        predictors = {
            mode: Predictor.from_path(
                run, batch_size=args.batch_size, workers=0, device="cpu", **MODES[mode][0]
            )
            for mode in args.modes
        }
        reference = predictors[args.modes[0]]
        batches = [
            torch.stack([reference.load_image(f, None).tensor for f in files[i : i + args.batch_size]])
            for i in range(0, len(files), args.batch_size)
        ]

        def forward(mode: str) -> float:
            start = time.perf_counter()
            for x in batches:
                predictors[mode].logits(x)  # the network in the mode's memory format and precision
            return time.perf_counter() - start

        def end_to_end(mode: str, round_: int) -> float:
            out = tmp_path / mode / str(round_)  # a new folder, as a user's run
            argv = ["predict", "--model", run, "--input", str(inputs), "--output", str(out)]
            argv += [
                "--batch-size",
                str(args.batch_size),
                "--no-progress",
                "--device",
                "cpu",
                *MODES[mode][1],
            ]
            start = time.perf_counter()
            code = hlfnet_main(argv)
            elapsed = time.perf_counter() - start
            if code != 0 or len(list(out.glob("*.png"))) != len(files):
                raise SystemExit(f"hlfnet predict failed (exit {code})")
            return elapsed

        for mode in args.modes:  # warm-up: first-call allocations and kernel selection
            forward(mode)
        times: dict[str, dict[str, list[float]]] = {m: {"forward": [], "end_to_end": []} for m in args.modes}
        for round_ in range(args.repeats):
            for mode in args.modes:
                times[mode]["forward"].append(forward(mode))
                times[mode]["end_to_end"].append(end_to_end(mode, round_))
        agree = (
            agreement(tmp_path / "default" / "0", tmp_path / "fast" / "0") if len(args.modes) == 2 else None
        )

    n = len(files)
    best = {m: {k: min(v) for k, v in t.items()} for m, t in times.items()}
    result = {
        "images": n,
        "network_input": list(reference.cfg.image_size),
        "model": reference.source.get("model"),
        "weights": args.model or "untrained",
        "batch_size": args.batch_size,
        "threads": args.threads,
        "torch": torch.__version__,
        "modes": {
            m: {
                "forward_images_per_s": n / b["forward"],
                "end_to_end_images_per_s": n / b["end_to_end"],
                "overhead": (b["end_to_end"] - b["forward"]) / b["forward"],
                "forward_s": times[m]["forward"],
                "end_to_end_s": times[m]["end_to_end"],
            }
            for m, b in best.items()
        },
    }
    h, w = result["network_input"]
    print(
        f"{n} images, {result['model']} ({result['weights']}) at {h}x{w}, batch {args.batch_size}, "
        f"{args.threads} threads, torch {torch.__version__}, fastest of {args.repeats} interleaved rounds\n"
    )
    print("| mode | forward only | `hlfnet predict` end to end | overhead (read + preprocess + write) |")
    print("|---|---:|---:|---:|")
    for m, r in result["modes"].items():
        print(
            f"| {m} | {r['forward_images_per_s']:.2f} images/s | {r['end_to_end_images_per_s']:.2f} images/s "
            f"| {100 * r['overhead']:.1f} % |"
        )
    if agree is not None:
        result["fast_speedup_forward"] = best["default"]["forward"] / best["fast"]["forward"]
        result["fast_speedup_end_to_end"] = best["default"]["end_to_end"] / best["fast"]["end_to_end"]
        result["fast_mask_agreement"] = agree
        print(
            f"\nfast over default: {result['fast_speedup_end_to_end']:.2f}× end to end, "
            f"{result['fast_speedup_forward']:.2f}× forward; masks equal on {100 * agree:.2f} % of pixels"
        )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
