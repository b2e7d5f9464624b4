"""build_dataset: items, synthetic data, augmentation reproducibility, slices, bad files at build time."""

from __future__ import annotations

import logging
import pickle

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from hlfnet.data import DataConfig, SegmentationDataset, build_dataset, resolve_split
from hlfnet.data.augment import AugmentParams
from hlfnet.data.cache import ArrayStore
from hlfnet.data.synthetic import generate_synthetic
from tests.data.helpers import write_folder, write_msd

SMALL = {"synthetic_train": 12, "synthetic_val": 3, "synthetic_test": 3, "image_size": (64, 96)}


def test_synthetic_items_follow_the_contract():
    ds = build_dataset(DataConfig(**SMALL), "train")
    assert len(ds) == 12 and ds.in_channels == 4 and ds.image_size == (64, 96)
    item = ds[0]
    assert item["image"].shape == (4, 64, 96) and item["image"].dtype == torch.float32
    assert float(item["image"].min()) >= 0.0 and float(item["image"].max()) <= 1.0
    assert item["mask"].shape == (1, 64, 96) and item["mask"].dtype == torch.int64
    assert set(item["mask"].unique().tolist()) == {0, 1}
    assert item["id"] == "synthetic_train_00000"
    assert resolve_split(DataConfig(**SMALL))["val"] == [
        "synthetic_val_00000",
        "synthetic_val_00001",
        "synthetic_val_00002",
    ]


def test_synthetic_is_deterministic_and_separable():
    a_img, a_mask = generate_synthetic("val", 4, (192, 256), seed=1)
    b_img, _ = generate_synthetic("val", 4, (192, 256), seed=1)
    c_img, _ = generate_synthetic("val", 4, (192, 256), seed=2)
    assert np.array_equal(a_img, b_img) and not np.array_equal(a_img, c_img)
    # Its speed (~6 ms per image) is measured in benchmarks/data_pipeline.py, not asserted here.
    images, masks = generate_synthetic("train", 60, (192, 256), seed=0)
    grey = images.mean(axis=-1)
    for g, m in zip(grey, masks, strict=True):
        assert 0.03 < m.mean() < 0.6
        assert g[m == 1].mean() < g[m == 0].mean() - 30  # the lesion is clearly darker
    _, multi = generate_synthetic("train", 2, (64, 64), num_classes=3)
    assert set(np.unique(multi).tolist()) == {0, 1, 2}


def _aligned_store(n: int = 4, size=(40, 48)) -> ArrayStore:
    """Images whose first channel is the mask (×255): alignment after augmentation is checkable."""
    rng = np.random.default_rng(0)
    masks = np.zeros((n, *size), np.uint8)
    for i in range(n):
        top, left = rng.integers(0, 20, 2)
        masks[i, top : top + 15, left : left + 20] = 1
    images = np.repeat((masks * 255)[:, None], 2, axis=1)
    images[:, 1] = rng.integers(0, 255, (n, *size))
    return ArrayStore(images, masks, [{"id": f"s{i}", "row": i, "foreground": True} for i in range(n)])


def test_augmentation_moves_image_and_mask_together():
    params = AugmentParams(crop_scale=(0.6, 0.9), hflip=0.5, vflip=0.5, rot90=0.0)
    ds = SegmentationDataset(_aligned_store(), list(range(4)), 2, augment=True, params=params, seed=0)
    plain = SegmentationDataset(_aligned_store(), list(range(4)), 2)
    changed = 0
    for epoch in range(3):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            item = ds[i]
            agree = ((item["image"][0] > 0.5).long() == item["mask"][0]).float().mean()
            assert agree > 0.97
            changed += not torch.equal(item["mask"], plain[i]["mask"])
    assert changed >= 10


def test_augmentation_is_reproducible_across_workers_and_differs_per_epoch():
    cfg = DataConfig(**SMALL, rot90=0.0, intensity_jitter=0.1)
    ds = build_dataset(cfg, "train")
    ds.set_epoch(2)
    single = next(iter(DataLoader(ds, batch_size=12, num_workers=0)))
    workers = next(iter(DataLoader(ds, batch_size=12, num_workers=2)))
    assert torch.equal(single["image"], workers["image"]) and torch.equal(single["mask"], workers["mask"])
    ds.set_epoch(3)
    assert not torch.equal(ds[0]["image"], single["image"][0])
    unaugmented = build_dataset(cfg, "val")
    assert torch.equal(unaugmented[0]["image"], build_dataset(cfg, "val")[0]["image"])


def test_without_set_epoch_items_vary_and_follow_the_torch_seed():
    ds = build_dataset(DataConfig(**SMALL), "train")
    torch.manual_seed(1)
    a = [ds[i]["mask"] for i in range(4)]
    b = [ds[i]["mask"] for i in range(4)]
    torch.manual_seed(1)
    c = [ds[i]["mask"] for i in range(4)]
    assert any(not torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert all(torch.equal(x, y) for x, y in zip(a, c, strict=True))


def test_msd_slices_carry_volume_and_index_and_drop_background(tmp_path):
    root = write_msd(tmp_path / "msd", n=3, shape=(20, 16, 6))
    cfg = DataConfig(
        format="msd",
        root=str(root),
        image_size=(32, 32),
        cache_dir=str(tmp_path / "c"),
        split_fractions=(0.34, 0.33, 0.33),
        drop_background_slices=("train", "val"),
    )
    train = build_dataset(cfg, "train", augment=False)
    test = build_dataset(cfg, "test")
    assert test.in_channels == 1
    assert len(test) == 6  # whole volume kept
    assert 0 < len(train) < 6  # the organ spans only the middle slices
    assert all(int(train[i]["mask"].sum()) > 0 for i in range(len(train)))
    item = train[0]
    assert item["volume"] == resolve_split(cfg)["train"][0] and isinstance(item["slice_index"], int)
    assert item["id"] == f"{item['volume']}_z{item['slice_index']:04d}"
    assert item["image"].shape == (1, 32, 32)


def test_mask_size_mismatch_names_both_files(tmp_path):
    root = write_folder(tmp_path / "f", n=2, size=(24, 32))
    Image.new("L", (30, 24)).save(root / "masks" / "case1.png")
    cfg = DataConfig(
        format="folder", root=str(root), cache_dir=str(tmp_path / "c"), split_fractions=(1, 0, 0)
    )
    with pytest.raises(
        ValueError, match=r"case1\.png: mask size 30×24 \(W×H\) differs from image .*case1\.png size 32×24"
    ):
        build_dataset(cfg, "train")


def test_truncated_image_fails_the_build_or_is_skipped_with_a_count(tmp_path, caplog):
    root = write_folder(tmp_path / "f", n=3, size=(48, 64))
    bad = root / "images" / "case2.png"
    bad.write_bytes(bad.read_bytes()[:200])
    cfg = DataConfig(
        format="folder", root=str(root), cache_dir=str(tmp_path / "c"), split_fractions=(1, 0, 0)
    )
    with pytest.raises(ValueError, match=r"case2\.png: unreadable or truncated"):
        build_dataset(cfg, "train")
    with caplog.at_level(logging.WARNING):
        ds = build_dataset(DataConfig.from_dict({**cfg.to_dict(), "skip_bad": True}), "train")
    assert ds.ids == ["case0", "case1"]
    assert "skipped 1 of 3" in caplog.text


def test_multiclass_grey_folder_and_any_channel_count(tmp_path):
    root = tmp_path / "mc"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(2):
        np.save(
            root / "images" / f"x{i}.npy", np.random.default_rng(i).random((16, 16, 5)).astype(np.float32)
        )
        Image.fromarray(np.array([[0, 1, 2, 3] * 4] * 16, np.uint8)).save(root / "masks" / f"x{i}.png")
    cfg = DataConfig(
        format="folder",
        root=str(root),
        num_classes=4,
        image_size=(16, 16),
        cache_dir=str(tmp_path / "c"),
        split_fractions=(1, 0, 0),
    )
    item = build_dataset(cfg, "train")[0]
    assert item["image"].shape == (5, 16, 16) and set(item["mask"].unique().tolist()) == {0, 1, 2, 3}
    with pytest.raises(ValueError, match=r"x\d\.png.*\[3\]"):
        build_dataset(DataConfig.from_dict({**cfg.to_dict(), "num_classes": 3}), "train")
    grey = write_folder(tmp_path / "g", n=2, grey=True)
    gcfg = DataConfig(
        format="folder", root=str(grey), cache_dir=str(tmp_path / "c"), split_fractions=(1, 0, 0)
    )
    assert build_dataset(gcfg, "train").in_channels == 1


def test_dataset_pickles_without_the_arrays(tmp_path):
    root = write_folder(tmp_path / "f", n=3)
    cfg = DataConfig(
        format="folder", root=str(root), cache_dir=str(tmp_path / "c"), split_fractions=(1, 0, 0)
    )
    ds = build_dataset(cfg, "train", augment=False)
    blob = pickle.dumps(ds)
    assert len(blob) < 20_000  # memory maps are reopened, not copied
    again = pickle.loads(blob)
    assert torch.equal(again[1]["mask"], ds[1]["mask"]) and again.ids == ds.ids


def test_unknown_split():
    with pytest.raises(ValueError, match="split"):
        build_dataset(DataConfig(**SMALL), "validation")
