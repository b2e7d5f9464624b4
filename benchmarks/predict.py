"""End-to-end speed of ``hlfnet predict`` against the bare forward pass of the same network, in one process.

Two timings over the same real images, at the same batch size and thread count:

* **forward** — the network alone on the already preprocessed batch tensors (``torch.inference_mode``): the
  floor any inference tool is bound by;
* **end to end** — ``hlfnet predict --model RUN --input DIR --output OUT`` (the CLI entry point, in process):
  listing the folder, decoding each JPEG, the training preprocessing, the forward pass, sigmoid, resizing the
  probabilities to the original size, thresholding and writing the PNGs.

Overhead = (end-to-end time − forward time) / forward time: the share that reading, preprocessing and writing
add to the network's own time. Each timing is the fastest of ``--repeats`` rounds, interleaved, which is the one
least disturbed by other load on a shared machine.

Usage::

    python benchmarks/predict.py                                  # 48 ISIC images, untrained full-size HLF-Net
    python benchmarks/predict.py --model runs/hlfnet-isic --count 200 --batch-size 8 --threads 2
    python benchmarks/predict.py --fast                           # with --channels-last --bf16
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from pathlib import Path

import torch

from hlfnet.cli import main as hlfnet_main
from hlfnet.evaluation.predictor import Predictor
from hlfnet.models import create_model, save_model

DEFAULT_IMAGES = (
    Path(__file__).resolve().parents[1].parent / "shared" / "data" / "isic2017" / "ISIC-2017_Training_Data"
)


def paper_run(folder: Path) -> Path:
    """A run folder holding an untrained full-size HLF-Net with the paper's ISIC preprocessing (4×192×256)."""
    model = create_model("hlfnet", in_channels=4, out_channels=1)
    data = {"format": "isic2017", "root": str(folder), "image_size": [192, 256], "in_channels": 4}
    save_model(model, folder / "model.safetensors", extra={"data": data})
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--images", type=Path, default=DEFAULT_IMAGES, help="folder of real images (ISIC JPEGs)"
    )
    parser.add_argument("--model", type=Path, help="run folder (default: an untrained full-size HLF-Net)")
    parser.add_argument("--count", type=int, default=48, help="images to predict")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved rounds; the fastest is reported")
    parser.add_argument(
        "--fast",
        action="store_true",
        help="channels-last + bf16 autocast (hlfnet predict --channels-last --bf16)",
    )
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
        run = args.model or paper_run(tmp_path / "run")
        predictor = Predictor.from_path(
            run, batch_size=args.batch_size, workers=0, channels_last=args.fast, bf16=args.fast
        )
        batches = [
            torch.stack([predictor.load_image(f, None).tensor for f in files[i : i + args.batch_size]])
            for i in range(0, len(files), args.batch_size)
        ]

        def forward() -> float:
            start = time.perf_counter()
            for x in batches:
                predictor.logits(x)  # the network in the predictor's memory format and precision
            return time.perf_counter() - start

        def end_to_end(round_: int) -> float:
            out = tmp_path / f"out{round_}"
            argv = ["predict", "--model", str(run), "--input", str(inputs), "--output", str(out)]
            argv += ["--batch-size", str(args.batch_size), "--no-progress"]
            argv += ["--channels-last", "--bf16"] if args.fast else []
            start = time.perf_counter()
            code = hlfnet_main(argv)
            elapsed = time.perf_counter() - start
            if code != 0 or len(list(out.glob("*.png"))) != len(files):
                raise SystemExit(f"hlfnet predict failed (exit {code})")
            return elapsed

        forward()  # warm-up: first-call allocations and kernel selection
        forward_times, e2e_times = [], []
        for round_ in range(args.repeats):
            forward_times.append(forward())
            e2e_times.append(end_to_end(round_))
    t_forward, t_e2e = min(forward_times), min(e2e_times)
    result = {
        "images": len(files),
        "image_size_on_disk": "256x256 JPEG (shared ISIC 2017 copy)",
        "network_input": list(predictor.cfg.image_size),
        "model": predictor.source.get("model"),
        "batch_size": args.batch_size,
        "threads": args.threads,
        "fast": args.fast,
        "forward_images_per_s": len(files) / t_forward,
        "end_to_end_images_per_s": len(files) / t_e2e,
        "overhead": (t_e2e - t_forward) / t_forward,
        "forward_s": forward_times,
        "end_to_end_s": e2e_times,
    }
    print(
        f"{len(files)} images, batch {args.batch_size}, {args.threads} threads, {result['model']} at "
        f"{'channels-last + bf16, ' if args.fast else ''}"
        f"{result['network_input'][0]}x{result['network_input'][1]}\n"
        f"forward only : {result['forward_images_per_s']:.2f} images/s\n"
        f"hlfnet predict: {result['end_to_end_images_per_s']:.2f} images/s\n"
        f"overhead (read + preprocess + write) : {100 * result['overhead']:.1f} % of the forward time"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
