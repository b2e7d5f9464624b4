"""Thin structures scored on their own: the ISBI 2012 membranes (mask value 0) of runs that segment the cells (255).

``hlfnet evaluate`` scores the foreground class (cell interiors, 90 % of the pixels), where a blurred boundary costs
little; the membranes are the thin structure a whole-image resize can lose. This scores, for each run, every image
of its test split at full resolution: Dice of the membranes (``1 - mask`` against ``1 - truth``) and their
HD95 / ASSD / NSD (1-pixel tolerance), with the interior Dice beside them::

    python benchmarks/membranes.py runs/em_patch runs/em_resize --data ../shared/data/isbi2012-membrane

Prints a Markdown table (mean, and the worst image for Dice).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def score_run(run: Path, data: Path) -> dict[str, float]:
    from hlfnet.data.io import read_mask
    from hlfnet.evaluation import Predictor
    from hlfnet.evaluation.evaluate import score_labels
    from hlfnet.experiment import load_run

    predictor = Predictor.from_run(load_run(run), device="cpu")
    ids = json.loads((run / "split.json").read_text())["test"]
    images = [data / "images" / f"{i}.png" for i in ids]
    rows = []
    for case, prediction in zip(ids, predictor.predict_images(images, ids=ids), strict=True):
        truth = read_mask(data / "masks" / f"{case}.png", 2)
        interior = score_labels(prediction.mask, truth, 2)
        membranes = score_labels(1 - prediction.mask, 1 - truth, 2, surface=True, tolerance=1.0)
        rows.append(
            {
                "interior_dice": interior["dice"],
                "membrane_dice": membranes["dice"],
                "membrane_hd95": membranes["hd95"],
                "membrane_assd": membranes["assd"],
                "membrane_nsd": membranes["nsd"],
            }
        )
    out = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
    out["membrane_dice_min"] = float(min(r["membrane_dice"] for r in rows))
    out["images"] = len(rows)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/isbi2012-membrane"))
    args = parser.parse_args()
    print(
        "| run | test images | interior Dice | membrane Dice (min) | membrane HD95 px | membrane ASSD px | "
        "membrane NSD (1 px) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for run in args.runs:
        s = score_run(run, args.data)
        print(
            f"| {run.name} | {s['images']} | {s['interior_dice']:.3f} | {s['membrane_dice']:.3f} "
            f"({s['membrane_dice_min']:.3f}) | {s['membrane_hd95']:.2f} | {s['membrane_assd']:.3f} | "
            f"{s['membrane_nsd']:.3f} |"
        )


if __name__ == "__main__":
    main()
