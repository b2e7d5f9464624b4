"""Finding pairs and making splits: ISIC, MSD, folder and NIfTI layouts, and their bad-input cases."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
from PIL import Image

from hlfnet.data import DataConfig, resolve_split
from hlfnet.data.layouts import detect_format, discover
from hlfnet.data.splits import split_counts
from tests.data.helpers import ct_volume, ras_affine, write_folder, write_isic, write_msd, write_nifti


def _cfg(tmp_path, root, **kw):
    return DataConfig(root=str(root), cache_dir=str(tmp_path / "cache"), **kw)


def test_isic_pairs_by_id_ignoring_superpixels_and_csv(tmp_path):
    root = write_isic(tmp_path / "isic", n=6)
    found = discover(_cfg(tmp_path, root, format="isic2017"))
    pairs = found.all_pairs()
    assert [p.id for p in pairs] == [f"ISIC_{i:07d}" for i in range(6)]
    assert all(p.image.suffix == ".jpg" and "segmentation" in p.mask.name.lower() for p in pairs)
    assert {p.mask.name.split("_")[-1] for p in pairs} == {"segmentation.png", "Segmentation.png"}


def test_isic_official_folders_are_the_split(tmp_path):
    root = write_isic(tmp_path / "isic", n=3, parts=("Training", "Validation", "Test_v2"))
    split = resolve_split(_cfg(tmp_path, root, format="isic2017"))
    assert split["val"] == ["ISIC_0001000", "ISIC_0001001", "ISIC_0001002"]
    assert split["test"][0] == "ISIC_0002000" and len(split["train"]) == 3


def test_isic_seeded_split_in_paper_proportions_saved_and_reused(tmp_path, caplog):
    root = write_isic(tmp_path / "isic", n=30)
    cfg = _cfg(tmp_path, root, format="isic2017", split_file=str(tmp_path / "split.json"))
    split = resolve_split(cfg)
    assert (
        [len(split[s]) for s in ("train", "val", "test")]
        == list(split_counts(30, cfg.fractions))
        == [21, 2, 7]
    )
    saved = json.loads((tmp_path / "split.json").read_text())
    assert saved["train"] == split["train"] and saved["seed"] == 0
    # A new image appears: the saved split is reused (new image ignored with a warning), not reshuffled.
    image, mask = Image.new("RGB", (40, 30)), Image.new("L", (40, 30))
    image.save(root / "ISIC-2017_Training_Data" / "ISIC_0099999.jpg")
    mask.save(root / "ISIC-2017_Training_Part1_GroundTruth" / "ISIC_0099999_segmentation.png")
    with caplog.at_level(logging.WARNING):
        again = resolve_split(DataConfig.from_dict({**cfg.to_dict(), "seed": 5}))
    assert again == split
    assert "not in the saved split" in caplog.text
    other = resolve_split(_cfg(tmp_path, root, format="isic2017", seed=1))
    assert other["train"] != split["train"]


def test_split_file_listing_unknown_ids_is_an_error(tmp_path):
    root = write_isic(tmp_path / "isic", n=4)
    (tmp_path / "s.json").write_text(json.dumps({"train": ["ISIC_0000000", "ISIC_7"], "val": [], "test": []}))
    with pytest.raises(ValueError, match=r"s\.json.*ISIC_7"):
        resolve_split(_cfg(tmp_path, root, format="isic2017", split_file=str(tmp_path / "s.json")))


def test_split_counts_match_the_paper_and_keep_one_training_item():
    assert split_counts(41, (25 / 41, 4 / 41, 12 / 41)) == (25, 4, 12)
    assert split_counts(2750, (2000 / 2750, 150 / 2750, 600 / 2750)) == (2000, 150, 600)
    assert split_counts(1, (25 / 41, 4 / 41, 12 / 41)) == (1, 0, 0)
    assert split_counts(3, (0.1, 0.45, 0.45)) == (1, 1, 1)


@pytest.mark.parametrize("orphan", ["image", "mask"])
def test_unpaired_files_are_named(tmp_path, orphan):
    root = write_isic(tmp_path / "isic", n=3)
    if orphan == "image":
        (root / "ISIC-2017_Training_Part1_GroundTruth" / "ISIC_0000001_Segmentation.png").unlink()
        match = r"ISIC_0000001\.jpg: image without mask"
    else:
        (root / "ISIC-2017_Training_Data" / "ISIC_0000002.jpg").unlink()
        match = r"ISIC_0000002_segmentation\.png: mask without image"
    with pytest.raises(ValueError, match=match):
        discover(_cfg(tmp_path, root, format="isic2017"))


def test_skip_bad_warns_with_a_count(tmp_path, caplog):
    root = write_folder(tmp_path / "f", n=4)
    (root / "masks" / "case0.png").unlink()
    (root / "images" / "case1.png").unlink()
    with caplog.at_level(logging.WARNING):
        found = discover(_cfg(tmp_path, root, format="folder", skip_bad=True))
    assert len(found.all_pairs()) == 2
    assert "skipping 2 unpaired file(s)" in caplog.text


@pytest.mark.parametrize("fmt", ["folder", "isic2017", "nifti", "msd"])
def test_empty_folder_is_an_error(tmp_path, fmt):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="empty"):
        discover(_cfg(tmp_path, tmp_path / "empty", format=fmt))


def test_missing_root(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        resolve_split(_cfg(tmp_path, tmp_path / "nowhere", format="folder"))


def test_folder_layouts_images_masks_flat_and_split_folders(tmp_path):
    root = write_folder(tmp_path / "a", n=3, mask_suffix="_seg")
    found = discover(_cfg(tmp_path, root, format="folder", mask_suffix="_seg"))
    assert [p.id for p in found.all_pairs()] == ["case0", "case1", "case2"]
    flat = tmp_path / "flat"
    flat.mkdir()
    for i in range(2):
        Image.new("RGB", (8, 8)).save(flat / f"x{i}.jpg")
        Image.new("L", (8, 8)).save(flat / f"x{i}_mask.png")
    (flat / "._x0.jpg").write_bytes(b"junk")
    assert [p.id for p in discover(_cfg(tmp_path, flat, format="folder")).all_pairs()] == ["x0", "x1"]
    for split in ("train", "val"):
        write_folder(tmp_path / "s" / split, n=2)
    split = resolve_split(_cfg(tmp_path, tmp_path / "s", format="folder"))
    assert len(split["train"]) == 2 and len(split["val"]) == 2 and split["test"] == []


def test_msd_dataset_json_skips_appledouble_and_splits_by_patient(tmp_path):
    root = write_msd(tmp_path / "msd", n=3)
    found = discover(_cfg(tmp_path, root, format="msd"))
    assert [p.id for p in found.all_pairs()] == ["spleen_0", "spleen_1", "spleen_2"]
    split = resolve_split(_cfg(tmp_path, root, format="msd"))
    assert sorted(len(v) for v in split.values()) == [0, 1, 2]  # 3 × (25, 4, 12)/41 → (2, 0, 1)
    assert len(split["train"]) == 2


def test_msd_dataset_json_listing_missing_files(tmp_path):
    root = write_msd(
        tmp_path / "msd",
        n=1,
        extra_entries=[{"image": "./imagesTr/spleen_9.nii.gz", "label": "./labelsTr/spleen_9.nii.gz"}],
    )
    with pytest.raises(FileNotFoundError, match=r"dataset\.json lists 2 missing.*spleen_9\.nii\.gz"):
        discover(_cfg(tmp_path, root, format="msd"))
    (root / "dataset.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"dataset\.json(: | is )not valid JSON"):
        discover(_cfg(tmp_path, root, format="msd"))


def test_nifti_pairs_by_name(tmp_path):
    data, label = ct_volume()
    for i in range(2):
        write_nifti(tmp_path / "v" / "images" / f"p{i}.nii.gz", data, ras_affine())
        write_nifti(tmp_path / "v" / "labels" / f"p{i}.nii.gz", label, ras_affine())
    write_nifti(tmp_path / "v" / "images" / "p9.nii", data, ras_affine())
    with pytest.raises(ValueError, match=r"p9\.nii: image without mask"):
        discover(_cfg(tmp_path, tmp_path / "v", format="nifti"))
    (tmp_path / "v" / "images" / "p9.nii").unlink()
    assert [p.id for p in discover(_cfg(tmp_path, tmp_path / "v", format="nifti")).all_pairs()] == [
        "p0",
        "p1",
    ]


def test_detect_format(tmp_path):
    assert detect_format(write_msd(tmp_path / "m", n=1)) == "msd"
    assert detect_format(write_isic(tmp_path / "i", n=1)) == "isic2017"
    assert detect_format(write_folder(tmp_path / "f", n=1)) == "folder"
    write_nifti(tmp_path / "n" / "imagesTr" / "a.nii.gz", np.zeros((2, 2, 2), np.int16), ras_affine())
    assert detect_format(tmp_path / "n") == "nifti"
