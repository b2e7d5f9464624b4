from __future__ import annotations

import dataclasses
import json

import pytest
import yaml

from hlfnet.data import DataConfig, paper_config


def test_defaults_are_the_paper_skin_settings_on_synthetic_data():
    cfg = DataConfig()
    assert cfg.format == "synthetic"
    assert cfg.image_size == (192, 256)
    assert cfg.num_classes == 2
    assert cfg.augment and cfg.hflip == 0.5 and cfg.crop_scale == (0.8, 1.0)


@pytest.mark.parametrize("dump", [json.dumps, yaml.safe_dump])
def test_round_trip_through_asdict_and_text(dump):
    cfg = DataConfig(
        format="msd",
        root="/data/spleen",
        image_size=(256, 256),
        ct_window=(-57, 164),
        split_fractions=(0.6, 0.2, 0.2),
        drop_background_slices=("train",),
    )
    text = dump(dataclasses.asdict(cfg)) if dump is json.dumps else dump(cfg.to_dict())
    back = DataConfig.from_dict(yaml.safe_load(text))
    assert back == cfg
    assert isinstance(back.image_size, tuple) and isinstance(back.ct_window, tuple)


def test_unknown_key_is_named():
    with pytest.raises(ValueError, match="imagesize"):
        DataConfig.from_dict({"imagesize": [1, 2]})


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("format", "dicom", "format"),
        ("image_size", [192], "image_size"),
        ("image_size", [4, 4], "image_size"),
        ("num_classes", 1, "num_classes"),
        ("in_channels", 0, "in_channels"),
        ("ct_window", [164, -57], "ct_window"),
        ("hflip", 1.5, "hflip"),
        ("crop_scale", [0.9, 0.5], "crop_scale"),
        ("split_fractions", [0.5, 0.5, 0.5], "split_fractions"),
        ("drop_background_slices", ["training"], "drop_background_slices"),
        ("synthetic_train", 0, "synthetic_train"),
        ("augment", "yes", "augment"),
    ],
)
def test_bad_values_are_named(field, value, match):
    with pytest.raises(ValueError, match=match):
        DataConfig.from_dict({field: value})


def test_file_formats_need_a_root_and_threshold_needs_binary():
    with pytest.raises(ValueError, match="root"):
        DataConfig(format="isic2017")
    with pytest.raises(ValueError, match="mask_threshold"):
        DataConfig(num_classes=3, mask_threshold=127)


def test_from_file_reads_a_data_section_and_names_the_file(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("model: hlfnet\ndata:\n  format: folder\n  root: /x\n  image_size: [64, 64]\n")
    cfg = DataConfig.from_file(path, seed=3)
    assert cfg.image_size == (64, 64) and cfg.seed == 3 and cfg.format == "folder"
    path.write_text("data:\n  colour: red\n")
    with pytest.raises(ValueError, match="run.yaml.*colour"):
        DataConfig.from_file(path)


def test_paper_config_spleen():
    cfg = paper_config("msd", root="/d")
    assert cfg.image_size == (256, 256) and cfg.in_channels == 1
    assert paper_config("isic2017", root="/d").in_channels == 4
