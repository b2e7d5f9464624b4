"""Tiny on-disk data sets for the data tests (written into ``tmp_path``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def lesion_pair(size: tuple[int, int] = (30, 40), seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """An RGB image (H, W, 3) uint8 with a dark disc and its 0/255 mask."""
    rng = np.random.default_rng(seed)
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w]
    cy, cx = h / 2 + rng.uniform(-2, 2), w / 2 + rng.uniform(-2, 2)
    mask = ((yy - cy) ** 2 + (xx - cx) ** 2 < (min(h, w) / 3) ** 2).astype(np.uint8) * 255
    image = np.full((h, w, 3), (210, 160, 140), np.uint8)
    image[mask > 0] = (90, 50, 40)
    image = np.clip(image.astype(int) + rng.integers(-8, 9, image.shape), 0, 255).astype(np.uint8)
    return image, mask


def write_isic(root: Path, n: int = 6, parts: tuple[str, ...] = ("Training",), size=(30, 40)) -> Path:
    """ISIC 2017 layout with superpixels and a CSV that must be ignored."""
    for part in parts:
        data, gt = root / f"ISIC-2017_{part}_Data", root / f"ISIC-2017_{part}_Part1_GroundTruth"
        data.mkdir(parents=True, exist_ok=True)
        gt.mkdir(parents=True, exist_ok=True)
        offset = {"Training": 0, "Validation": 1000, "Test_v2": 2000}.get(part, 3000)
        for i in range(n):
            image, mask = lesion_pair(size, seed=offset + i)
            name = f"ISIC_{offset + i:07d}"
            Image.fromarray(image).save(data / f"{name}.jpg", quality=95)
            Image.fromarray(image).save(data / f"{name}_superpixels.png")
            suffix = "_Segmentation" if i % 2 else "_segmentation"
            Image.fromarray(mask).save(gt / f"{name}{suffix}.png")
        (data / f"ISIC-2017_{part}_Data_metadata.csv").write_text("image_id,age\n")
    return root


def write_folder(root: Path, n: int = 5, size=(24, 32), mask_suffix: str = "", grey: bool = False) -> Path:
    """``images/`` + ``masks/`` PNG pairs."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        image, mask = lesion_pair(size, seed=i)
        img = Image.fromarray(image)
        (img.convert("L") if grey else img).save(root / "images" / f"case{i}.png")
        Image.fromarray(mask).save(root / "masks" / f"case{i}{mask_suffix}.png")
    return root


def ct_volume(shape=(20, 16, 6), seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A CT-like int16 volume (HU) with a bright ellipsoid 'organ' (label 1) in some slices, off-centre in x."""
    rng = np.random.default_rng(seed)
    x, y, z = np.mgrid[0 : shape[0], 0 : shape[1], 0 : shape[2]]
    organ = ((x - shape[0] * 0.7) / 3) ** 2 + ((y - shape[1] / 2) / 3) ** 2 + (
        (z - shape[2] / 2) / 1.6
    ) ** 2 < 1
    data = rng.normal(-100, 20, shape)
    data[organ] = 150
    data[0, 0, :] = -1000  # air
    return data.astype(np.int16), organ.astype(np.uint8)


def ras_affine(spacing=(2.0, 2.0, 3.0)) -> np.ndarray:
    return np.diag([*spacing, 1.0])


def write_nifti(path: Path, data: np.ndarray, affine: np.ndarray) -> Path:
    import nibabel as nib

    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, affine), str(path))
    return path


def write_msd(root: Path, n: int = 3, shape=(20, 16, 6), extra_entries: list[dict] | None = None) -> Path:
    """MSD layout: dataset.json, imagesTr/, labelsTr/ (+ AppleDouble ``._`` junk)."""
    import json

    entries = []
    for i in range(n):
        data, label = ct_volume(shape, seed=i)
        write_nifti(root / "imagesTr" / f"spleen_{i}.nii.gz", data, ras_affine())
        write_nifti(root / "labelsTr" / f"spleen_{i}.nii.gz", label, ras_affine())
        entries.append({"image": f"./imagesTr/spleen_{i}.nii.gz", "label": f"./labelsTr/spleen_{i}.nii.gz"})
    (root / "imagesTr" / "._spleen_0.nii.gz").write_bytes(b"\x00\x05\x16\x07junk")
    (root / "imagesTs").mkdir(exist_ok=True)
    manifest = {
        "name": "test",
        "labels": {"0": "background", "1": "spleen"},
        "training": entries + (extra_entries or []),
        "test": [],
    }
    (root / "dataset.json").write_text(json.dumps(manifest))
    return root
