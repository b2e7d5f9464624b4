"""The loaders on the real shared data (skip with a reason when ../shared/data is absent)."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch

from hlfnet.data import (
    DataConfig,
    build_dataset,
    load_volume,
    paper_config,
    resolve_split,
    slices_to_volume,
    volume_to_slices,
)
from hlfnet.data.layouts import discover

pytestmark = pytest.mark.realdata


def test_isic_finds_all_2000_pairs_and_makes_aligned_4_channel_tensors(isic_root, tmp_path):
    cfg = paper_config("isic2017", root=str(isic_root), cache_dir=str(tmp_path))
    pairs = discover(cfg).all_pairs()
    assert len(pairs) == 2000
    assert all(p.image.suffix == ".jpg" and "superpixels" not in p.image.name for p in pairs)
    split = resolve_split(cfg)
    assert [len(split[s]) for s in ("train", "val", "test")] == [1455, 109, 436]  # 2000/150/600 proportions
    ds = build_dataset(cfg, "val")  # 109 images keep the test fast; the pipeline is the same for all splits
    darker = 0
    for i in range(len(ds)):
        item = ds[i]
        image, mask = item["image"], item["mask"]
        assert image.shape == (4, 192, 256) and image.dtype == torch.float32
        assert float(image.min()) >= 0.0 and float(image.max()) <= 1.0
        assert mask.shape == (1, 192, 256) and set(mask.unique().tolist()) <= {0, 1}
        grey, fg = image[3], mask[0].bool()
        if fg.any() and (~fg).any():
            darker += bool(grey[fg].mean() < grey[~fg].mean())
    assert darker / len(ds) > 0.8  # the lesion is darker than the surrounding skin: masks are aligned


def test_spleen_slices_orientation_normalisation_and_stacking_back(spleen_root, tmp_path):
    cfg = paper_config("msd", root=str(spleen_root), cache_dir=str(tmp_path))
    # one volume: it is trained on and, as nnU-Net's fold "all", also validated on (a fit, not generalisation)
    assert resolve_split(cfg) == {"train": ["spleen_1"], "val": ["spleen_1"], "test": []}
    ds = build_dataset(cfg, "train", augment=False)
    assert len(ds) == 30  # the spleen is in all 30 slices, so none is dropped
    assert ds[0]["image"].shape == (1, 256, 256)
    images = torch.stack([ds[i]["image"] for i in range(30)])
    masks = torch.stack([ds[i]["mask"][0] for i in range(30)])
    assert 0.0 <= float(images.min()) < 0.05 and 0.9 < float(images.max()) <= 1.0  # min–max, then resized
    native = volume_to_slices(
        spleen_root / "imagesTr" / "spleen_1.nii.gz",
        DataConfig.from_dict({**cfg.to_dict(), "image_size": [101, 122]}),
    )
    assert native.shape == (30, 1, 101, 122)  # axial slices: rows = A→P (y, 101), columns = R→L (x, 122)
    assert float(native.min()) == 0.0 and float(native.max()) == 1.0  # per-volume min–max, exactly
    assert [ds[i]["slice_index"] for i in range(30)] == list(range(30))
    # Radiological view: the spleen (patient's left) lies on the right half of the image.
    cols = masks.nonzero()[:, 2].float()
    assert cols.mean() > 128
    data, meta = load_volume(spleen_root / "imagesTr" / "spleen_1.nii.gz")
    assert data.shape == (122, 101, 30)
    out = slices_to_volume(masks.to(torch.uint8).numpy(), meta.path, tmp_path / "pred.nii.gz")
    written, label = nib.load(out), nib.load(spleen_root / "labelsTr" / "spleen_1.nii.gz")
    assert written.shape == (122, 101, 30)
    np.testing.assert_allclose(written.affine, meta.affine)
    np.testing.assert_array_equal(np.asarray(written.dataobj), np.asarray(label.dataobj))
    window = build_dataset(
        DataConfig.from_dict({**cfg.to_dict(), "ct_window": [-57, 164]}), "train", augment=False
    )
    assert not torch.equal(window[15]["image"], ds[15]["image"])


def test_isbi_loads_as_a_bring_your_own_folder(isbi_root, tmp_path):
    cfg = DataConfig(format="folder", root=str(isbi_root), image_size=(256, 256), cache_dir=str(tmp_path))
    split = resolve_split(cfg)
    assert sum(len(v) for v in split.values()) == 30
    ds = build_dataset(cfg, "train", augment=False)
    item = ds[0]
    assert ds.in_channels == 1 and item["image"].shape == (1, 256, 256)
    assert set(item["mask"].unique().tolist()) == {0, 1}
    # Membranes (label 0) are dark in EM images.
    assert item["image"][0][item["mask"][0] == 0].mean() < item["image"][0][item["mask"][0] == 1].mean()
