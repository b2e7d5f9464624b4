"""Another grid for the same CT: resample an image + label pair to other voxel sizes and store it in another
orientation (default 0.98 × 0.98 × 2 mm, LAS), to check that ``hlfnet predict`` brings a 3-mm model's labels back
onto a grid it never saw (docs/data.md, "Measured on the shared CT")::

    python benchmarks/regrid_ct.py ../shared/data/totalseg-ct-abdomen/imagesTr/abdomen_1.nii.gz \\
        ../shared/data/totalseg-ct-abdomen/labelsTr/abdomen_1.nii.gz /tmp/ct_las
    hlfnet predict --model RUN --input /tmp/ct_las/images --output /tmp/ct_las/pred
    python benchmarks/regrid_ct.py --score /tmp/ct_las/pred/abdomen_1.nii.gz /tmp/ct_las/gt/abdomen_1.nii.gz

Writes ``OUT/images/<name>`` (trilinear, int16 HU) and ``OUT/gt/<name>`` (nearest); ``--score`` prints the Dice
of every label value present in either volume (the prediction must be on the same grid: shape and affine).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.processing import resample_from_to


def target_grid(image: nib.Nifti1Image, spacing: tuple[float, float, float], codes: str):
    """Shape and affine covering ``image``'s field of view with ``spacing``, axes stored as ``codes``."""
    shape = np.asarray(image.shape[:3])
    corners = np.array([[i, j, k, 1] for i in (0, shape[0] - 1) for j in (0, shape[1] - 1) for k in (0, shape[2] - 1)])
    world = (image.affine @ corners.T).T[:, :3]
    low, high = world.min(0), world.max(0)
    ras = {"R": (0, 1.0), "L": (0, -1.0), "A": (1, 1.0), "P": (1, -1.0), "S": (2, 1.0), "I": (2, -1.0)}
    affine = np.eye(4)
    new_shape = []
    for out_axis, code in enumerate(codes):
        world_axis, sign = ras[code]
        size = int(np.floor((high[world_axis] - low[world_axis]) / spacing[out_axis])) + 1
        new_shape.append(size)
        affine[world_axis, out_axis] = sign * spacing[out_axis]
        affine[world_axis, 3] = low[world_axis] if sign > 0 else high[world_axis]
    return tuple(new_shape), affine


def regrid(image_path: Path, label_path: Path, out: Path, spacing, codes: str) -> None:
    image, label = nib.load(str(image_path)), nib.load(str(label_path))
    grid = target_grid(image, spacing, codes)
    moved = resample_from_to(image, grid, order=1, cval=-1024)
    labels = resample_from_to(label, grid, order=0, cval=0)
    for folder, img, dtype in (("images", moved, np.int16), ("gt", labels, np.uint8)):
        (out / folder).mkdir(parents=True, exist_ok=True)
        data = np.asarray(img.dataobj)
        data = np.rint(data).astype(dtype)
        nib.save(nib.Nifti1Image(data, img.affine), str(out / folder / image_path.name))
    print(f"{out}: {grid[0]} at {list(spacing)} mm, {''.join(nib.aff2axcodes(grid[1]))}")


def score(pred_path: Path, gt_path: Path) -> None:
    pred, gt = nib.load(str(pred_path)), nib.load(str(gt_path))
    if pred.shape != gt.shape or not np.allclose(pred.affine, gt.affine, atol=1e-4):
        raise SystemExit(f"{pred_path}: shape {pred.shape} / affine differ from {gt_path} {gt.shape}")
    p, g = np.asarray(pred.dataobj), np.asarray(gt.dataobj)
    for value in sorted((set(np.unique(p)) | set(np.unique(g))) - {0}):
        a, b = p == value, g == value
        dice = 2 * (a & b).sum() / max(1, a.sum() + b.sum())
        print(f"label {int(value)}: Dice {dice:.3f} (predicted {int(a.sum())} voxels, reference {int(b.sum())})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image", type=Path)
    parser.add_argument("label", type=Path)
    parser.add_argument("out", type=Path, nargs="?")
    parser.add_argument("--spacing", type=float, nargs=3, default=(0.98, 0.98, 2.0))
    parser.add_argument("--orientation", default="LAS")
    parser.add_argument("--score", action="store_true", help="score IMAGE (a prediction) against LABEL")
    args = parser.parse_args()
    if args.score:
        score(args.image, args.label)
    else:
        regrid(args.image, args.label, args.out, tuple(args.spacing), args.orientation)


if __name__ == "__main__":
    main()
