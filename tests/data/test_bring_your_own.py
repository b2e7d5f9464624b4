"""Bring-your-own data: nnU-Net v2 raw datasets, pairing by pattern, GIF masks, label mapping, the check's hints."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hlfnet.data import DataConfig, build_dataset
from hlfnet.data.check import check_dataset, group_problems
from hlfnet.data.io import read_mask, unmapped_values
from hlfnet.data.layouts import detect_format, discover, suggest_pairing
from tests.data.helpers import write_isic


def write_nnunet_2d(root: Path, n: int = 4, labels: dict | None = None, values=(1, 2)) -> Path:
    """An nnU-Net v2 raw 2-D dataset: grey PNG channel files ``case<i>_0000.png`` and label maps ``case<i>.png``."""
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    (root / "imagesTs").mkdir()
    labels = labels or {"background": 0, "cell": 1, "nucleus": 2}
    manifest = {"channel_names": {"0": "grey"}, "labels": labels, "numTraining": n, "file_ending": ".png"}
    (root / "dataset.json").write_text(json.dumps(manifest))
    rng = np.random.default_rng(0)
    for i in range(n):
        mask = np.zeros((24, 32), np.uint8)
        mask[4:12, 4:14] = values[0]
        mask[14:20, 18:28] = values[1]
        image = np.clip(mask.astype(int) * 60 + rng.integers(0, 40, mask.shape), 0, 255).astype(np.uint8)
        Image.fromarray(image).save(root / "imagesTr" / f"case{i}_0000.png")
        Image.fromarray(mask).save(root / "labelsTr" / f"case{i}.png")
    Image.fromarray(np.zeros((24, 32), np.uint8)).save(root / "imagesTs" / "test0_0000.png")
    return root


def write_nnunet_3d(root: Path, n: int = 3) -> Path:
    import nibabel as nib

    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    manifest = {
        "channel_names": {"0": "CT"},
        "labels": {"background": 0, "spleen": 1},
        "file_ending": ".nii.gz",
    }
    (root / "dataset.json").write_text(json.dumps(manifest))
    affine = np.diag([0.8, 0.8, 2.5, 1.0])
    for i in range(n):
        labels = np.zeros((16, 12, 5), np.uint8)
        labels[4:10, 3:8, 1:4] = 1
        image = (labels * 200 - 100).astype(np.int16)
        nib.save(nib.Nifti1Image(image, affine), root / "imagesTr" / f"spleen_{i}_0000.nii.gz")
        nib.save(nib.Nifti1Image(labels, affine), root / "labelsTr" / f"spleen_{i}.nii.gz")
    return root


# ---------------------------------------------------------------------------------------------- nnU-Net


def test_nnunet_2d_is_detected_before_msd_and_paired_by_case(tmp_path: Path) -> None:
    root = write_nnunet_2d(tmp_path / "Dataset001_Cells")
    assert detect_format(root) == "nnunet"
    cfg = DataConfig(format="nnunet", root=str(root), image_size=(24, 32), use_cache=False)
    assert cfg.num_classes == 3  # from dataset.json's labels
    assert not cfg.is_volume
    found = discover(cfg)
    assert [p.id for p in found.all_pairs()] == ["case0", "case1", "case2", "case3"]
    assert found.all_pairs()[0].image.name == "case0_0000.png"
    assert found.all_pairs()[0].mask.name == "case0.png"
    dataset = build_dataset(cfg, "train", augment=False)
    assert dataset.in_channels == 1  # the stored channels, as nnU-Net reads them
    assert {int(v) for item in dataset for v in item["mask"].unique()} <= {0, 1, 2}


def test_an_msd_dataset_json_is_still_msd(tmp_path: Path) -> None:
    (tmp_path / "dataset.json").write_text(json.dumps({"training": [], "labels": {"0": "background"}}))
    assert detect_format(tmp_path) == "msd"


def test_nnunet_3d_nifti_is_read_as_volumes(tmp_path: Path) -> None:
    root = write_nnunet_3d(tmp_path / "Dataset009_Spleen")
    assert detect_format(root) == "nnunet"
    cfg = DataConfig(
        format="nnunet", root=str(root), image_size=(16, 16), use_cache=False, split_fractions=(1, 0, 0)
    )
    assert cfg.is_volume and cfg.num_classes == 2
    dataset = build_dataset(cfg, "train", augment=False)
    # 3 volumes of 5 axial slices, background-only slices dropped: slices 1..3 of each
    assert len(dataset) == 9
    assert dataset[0]["mask"].max() == 1


def test_nnunet_labels_that_are_not_0_to_k_become_label_values(tmp_path: Path) -> None:
    root = write_nnunet_2d(tmp_path / "d", labels={"background": 0, "liver": 1, "tumour": 5}, values=(1, 5))
    cfg = DataConfig(format="nnunet", root=str(root), use_cache=False)
    assert cfg.num_classes == 3 and cfg.label_values == (0, 1, 5)
    mask = read_mask(root / "labelsTr" / "case0.png", cfg.num_classes, label_values=cfg.label_values)
    assert mask[15, 20] == 2 and mask[5, 5] == 1
    # the class names follow dataset.json too, also for a selection of its values
    assert cfg.class_names == ("background", "liver", "tumour")
    selected = DataConfig(format="nnunet", root=str(root), use_cache=False, label_values=(0, 5))
    assert selected.class_names == ("background", "tumour")


def test_class_names_are_checked_and_default_to_class_k() -> None:
    cfg = DataConfig(num_classes=3, class_names=("background", "nucleus", "cytoplasm"))
    assert cfg.names_of_classes() == ("background", "nucleus", "cytoplasm")
    assert DataConfig(num_classes=3).names_of_classes() == ("background", "class 1", "class 2")
    assert cfg.names_of_classes(2) == ("background", "class 1")  # names for another class count: none
    with pytest.raises(ValueError, match="data.class_names must give 3 names"):
        DataConfig(num_classes=3, class_names=("background", "nucleus"))
    with pytest.raises(ValueError, match="data.class_names"):
        DataConfig(label_values=(0, 128, 255), class_names=("background", "", "x"))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"labels": {"background": 0, "whole tumour": [1, 2, 3]}}, "region-based labels ['whole tumour']"),
        ({"labels": {"background": 0, "a": 1, "ignore": 2}}, "'ignore' label"),
        ({"file_ending": ".mha"}, "file_ending '.mha' is not read by hlfnet"),
    ],
)
def test_nnunet_manifest_problems_are_one_line_naming_dataset_json(tmp_path: Path, change, message) -> None:
    root = write_nnunet_2d(tmp_path / "d")
    manifest = json.loads((root / "dataset.json").read_text())
    (root / "dataset.json").write_text(json.dumps({**manifest, **change}))
    with pytest.raises(ValueError, match="dataset.json") as caught:
        discover(DataConfig(format="nnunet", root=str(root), num_classes=3, label_values=(0, 1, 2)))
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_nnunet_case_without_its_label_is_named(tmp_path: Path) -> None:
    root = write_nnunet_2d(tmp_path / "d")
    (root / "labelsTr" / "case2.png").unlink()
    with pytest.raises(ValueError, match=r"case2_0000.png: image without mask"):
        discover(DataConfig(format="nnunet", root=str(root)))


# ---------------------------------------------------------------------------------------------- patterns


def write_drive(root: Path) -> Path:
    """DRIVE's layout: images/<n>_training.tif, 1st_manual/<n>_manual1.gif (0/255), mask/ = field of view."""
    for folder in ("images", "1st_manual", "mask"):
        (root / folder).mkdir(parents=True)
    for n in (21, 22, 23):
        vessels = np.zeros((20, 24), np.uint8)
        vessels[5:15, 10:12] = 255
        Image.fromarray(np.full((20, 24, 3), 120, np.uint8)).save(root / "images" / f"{n}_training.tif")
        Image.fromarray(vessels).convert("P").save(root / "1st_manual" / f"{n}_manual1.gif")
        Image.fromarray(np.full((20, 24), 255, np.uint8)).save(root / "mask" / f"{n}_training_mask.gif")
    return root


def test_patterns_pair_images_and_masks_across_folders_and_read_gif(tmp_path: Path) -> None:
    root = write_drive(tmp_path / "DRIVE")
    cfg = DataConfig(
        format="folder",
        root=str(root),
        image_pattern="images/{case}_training.tif",
        mask_pattern="1st_manual/{case}_manual1.gif",
    )
    pairs = discover(cfg).all_pairs()
    assert [p.id for p in pairs] == ["21", "22", "23"]
    mask = read_mask(pairs[0].mask)
    assert mask.sum() == 20 and set(np.unique(mask)) == {0, 1}  # GIF's grey palette: 0/255 → classes 0/1


def test_flat_folder_patterns_never_take_a_mask_for_an_image(tmp_path: Path) -> None:
    for n in (1, 2):
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / f"IMD00{n}.bmp")
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / f"IMD00{n}_lesion.bmp")
    cfg = DataConfig(
        format="folder", root=str(tmp_path), image_pattern="{case}.bmp", mask_pattern="{case}_lesion.bmp"
    )
    assert [(p.id, p.mask.name) for p in discover(cfg).all_pairs()] == [
        ("IMD001", "IMD001_lesion.bmp"),
        ("IMD002", "IMD002_lesion.bmp"),
    ]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"image_pattern": "{case}.png"}, "go together"),
        (
            {"image_pattern": "case.png", "mask_pattern": "{case}.png"},
            "data.image_pattern must be a file name",
        ),
        ({"image_pattern": "../{case}.png", "mask_pattern": "{case}.png"}, "data.image_pattern"),
        ({"image_pattern": "{case}/x.png", "mask_pattern": "{case}.png"}, "data.image_pattern"),
        ({"label_values": [0, 128, 128]}, "data.label_values must list at least 2 distinct"),
        ({"label_values": [0, 128, 255], "num_classes": 4}, "data.label_values has 3 entries"),
    ],
)
def test_bad_pattern_and_label_settings_name_the_key(fields, message) -> None:
    with pytest.raises(ValueError, match=message):
        DataConfig(format="folder", root="/nowhere", **fields)


# ---------------------------------------------------------------------------------------------- suggestions


def test_suggestion_finds_the_mask_suffix(tmp_path: Path) -> None:
    images = [tmp_path / f"IMD00{n}.bmp" for n in (2, 3, 4)]
    masks = [tmp_path / f"IMD00{n}_lesion.bmp" for n in (2, 3, 4)]
    assert (
        suggest_pairing(images, masks)
        == 'data.mask_suffix: "_lesion" (--mask-suffix _lesion) pairs 3 of them'
    )


def test_suggestion_finds_patterns_from_the_common_endings(tmp_path: Path) -> None:
    images = [tmp_path / f"{n}_training.tif" for n in (21, 31, 40)]
    masks = [tmp_path / f"{n}_manual1.gif" for n in (21, 31, 40)]
    hint = suggest_pairing(images, masks)
    assert hint == (
        'data.image_pattern: "{case}_training.tif" and data.mask_pattern: "{case}_manual1.gif" pair 3 of them'
    )


def test_suggestion_is_silent_when_nothing_explains_the_names(tmp_path: Path) -> None:
    assert (
        suggest_pairing(
            [tmp_path / "a.png", tmp_path / "b.png"], [tmp_path / "x_m.png", tmp_path / "y_m.png"]
        )
        is None
    )


def test_unpaired_error_and_check_carry_the_suggestion(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    for n in range(3):
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "images" / f"c{n}.png")
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "masks" / f"c{n}_lesion.png")
    with pytest.raises(ValueError, match=r'6 unpaired file\(s\).*; try data.mask_suffix: "_lesion"'):
        discover(DataConfig(format="folder", root=str(tmp_path)))
    with pytest.raises(FileNotFoundError, match=r'no image/mask pairs; try data.mask_suffix: "_lesion"'):
        discover(DataConfig(format="folder", root=str(tmp_path), skip_bad=True))
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "images" / "ok.png")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "masks" / "ok.png")
    with pytest.raises(ValueError, match=r'6 unpaired file\(s\).*; try data.mask_suffix: "_lesion"'):
        discover(DataConfig(format="folder", root=str(tmp_path)))
    report = check_dataset(tmp_path)
    lines = "\n".join(report.lines())
    assert 'try data.mask_suffix: "_lesion"' in lines
    assert "image without mask (×3, e.g." in lines  # one line for the three files, with a count


def test_repeated_problems_are_printed_once_with_a_count() -> None:
    problems = [
        f"/d/masks/{n}.png: label values [128, 255] outside the declared classes 0..2" for n in range(300)
    ]
    problems.append("/d: something else")
    assert group_problems(problems) == [
        "label values [128, 255] outside the declared classes 0..2 (×300, e.g. /d/masks/0.png)",
        "/d: something else",
    ]


# ---------------------------------------------------------------------------------------------- label values


def write_three_class_folder(root: Path) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for n in range(3):
        mask = np.zeros((12, 16), np.uint8)
        mask[2:6, 2:6] = 128
        mask[7:11, 8:14] = 255
        Image.fromarray(np.full((12, 16), 90, np.uint8)).save(root / "images" / f"wbc{n}.png")
        Image.fromarray(mask).save(root / "masks" / f"wbc{n}.png")
    return root


def test_label_values_map_0_128_255_to_classes(tmp_path: Path) -> None:
    root = write_three_class_folder(tmp_path / "wbc")
    with pytest.raises(ValueError, match=r"label values \[128, 255\] outside the declared classes 0..2"):
        read_mask(root / "masks" / "wbc0.png", 3)
    cfg = DataConfig(
        format="folder", root=str(root), label_values=(0, 128, 255), image_size=(12, 16), use_cache=False
    )
    assert cfg.num_classes == 3
    mask = read_mask(root / "masks" / "wbc0.png", cfg.num_classes, label_values=cfg.label_values)
    assert (mask == 1).sum() == 16 and (mask == 2).sum() == 24
    report = check_dataset(root, label_values=[0, 128, 255])
    assert report.ok and report.class_fractions["1"] == pytest.approx(16 / 192)
    assert "mapping:  0 → class 0, 128 → class 1, 255 → class 2" in report.lines()


def test_label_values_select_classes_of_a_larger_map_and_others_become_background() -> None:
    stored = np.array([[0, 1, 2, 5], [6, 117, 5, 1]], np.uint8)
    from hlfnet.data.io import labels_to_classes

    classes = labels_to_classes(stored, 4, None, "x.png", label_values=(0, 1, 5, 6))
    np.testing.assert_array_equal(classes, [[0, 1, 0, 2], [3, 0, 2, 1]])
    assert unmapped_values({0, 1, 2, 5, 6, 117}, (0, 1, 5, 6)) == [2, 117]


def test_validation_only_isic_download_is_pooled(tmp_path: Path) -> None:
    root = write_isic(tmp_path / "isic", n=3, parts=("Validation",))
    found = discover(DataConfig(format="isic2017", root=str(root)))
    assert not found.official and len(found.all_pairs()) == 3
