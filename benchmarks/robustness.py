"""Accuracy of pretrained models on held-out ISIC images changed the way other cameras and clinics change them.

Not a speed benchmark: the ISIC per-image Jaccard (``hlfnet.evaluation.binary_scores``) of each shipped model on
the first ``--cases`` images of its held-out test split, as stored and after each perturbation below, in one
run. It shows how much a model relies on ISIC's exposure, white balance, resolution and compression.

Usage::

    python benchmarks/robustness.py --data ../shared/data/isic2017 --models hlfnet-isic2017 unet-isic2017
"""

from __future__ import annotations

import argparse
import io
from collections.abc import Callable

import numpy as np
import torch
from PIL import Image, ImageEnhance

from hlfnet.evaluation import Predictor, binary_scores
from hlfnet.experiment import load_pretrained


def _jpeg(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def _gain(image: Image.Image, gains: tuple[float, float, float]) -> Image.Image:
    array = np.asarray(image, dtype=np.float32) * np.array(gains, dtype=np.float32)
    return Image.fromarray(np.clip(array, 0, 255).astype(np.uint8))


PERTURBATIONS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "as stored (256×256 JPEG)": lambda im: im,
    "1024×768, JPEG q85": lambda im: _jpeg(im.resize((1024, 768), Image.BICUBIC), 85),
    "JPEG q30": lambda im: _jpeg(im, 30),
    "darker (×0.7)": lambda im: ImageEnhance.Brightness(im).enhance(0.7),
    "brighter (×1.3)": lambda im: ImageEnhance.Brightness(im).enhance(1.3),
    "low contrast (×0.6)": lambda im: ImageEnhance.Contrast(im).enhance(0.6),
    "warm cast (R×1.15, B×0.85)": lambda im: _gain(im, (1.15, 1.0, 0.85)),
    "cool cast (R×0.85, B×1.15)": lambda im: _gain(im, (0.85, 1.0, 1.15)),
    "desaturated (×0.5)": lambda im: ImageEnhance.Color(im).enhance(0.5),
    "grey": lambda im: im.convert("L"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="ISIC 2017 folder holding the held-out test images")
    parser.add_argument("--models", nargs="+", default=["hlfnet-isic2017", "unet-isic2017"])
    parser.add_argument("--cases", type=int, default=150)
    args = parser.parse_args()
    torch.set_num_threads(2)
    from pathlib import Path

    root = Path(args.data)
    results: dict[str, dict[str, float]] = {}
    for name in args.models:
        split = load_pretrained(name).split
        predictor = Predictor.from_path(name, device="cpu")
        cases = split["test"][: args.cases]
        images = [Image.open(root / "ISIC-2017_Training_Data" / f"{c}.jpg").convert("RGB") for c in cases]
        truths = [
            np.asarray(
                Image.open(next((root / "ISIC-2017_Training_Part1_GroundTruth").glob(f"{c}_[sS]eg*.png")))
            )
            > 127
            for c in cases
        ]
        for label, change in PERTURBATIONS.items():
            scores = []
            arrays = [np.asarray(change(im)) for im in images]
            for prediction, truth in zip(predictor.predict_images(arrays), truths, strict=True):
                pred = torch.from_numpy(prediction.mask > 0)
                if pred.shape != truth.shape:  # predicted at the changed size: compare at the truth's size
                    pred = torch.from_numpy(
                        np.asarray(
                            Image.fromarray(prediction.mask * 255).resize(truth.shape[::-1], Image.NEAREST)
                        )
                        > 127
                    )
                scores.append(float(binary_scores(pred[None], torch.from_numpy(truth)[None])["jaccard"][0]))
            results.setdefault(label, {})[name] = float(np.mean(scores))
            print(f"{name:18s} {label:28s} Jaccard {results[label][name]:.4f}", flush=True)
    print()
    print(f"Mean Jaccard over the first {args.cases} held-out test images of each model's split:")
    print()
    print("| input | " + " | ".join(args.models) + " |")
    print("|---|" + "---:|" * len(args.models))
    for label, row in results.items():
        print(f"| {label} | " + " | ".join(f"{row[m]:.3f}" for m in args.models) + " |")


if __name__ == "__main__":
    main()
