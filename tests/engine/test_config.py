"""Config loading and validation: every shipped config loads; bad keys and values are errors naming them."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hlfnet.experiment.config import ExperimentConfig, TrainConfig, config_to_dict, load_config
from hlfnet.models import TABLE1_MODELS
from hlfnet.schema import apply_overrides, list_configs, resolve_config_path

TABLE1 = [f"{net}_{task}" for net in TABLE1_MODELS for task in ("isic2017", "spleen")]


PROTOCOLS = [
    *(f"{net}_isic2017_{protocol}" for net in TABLE1_MODELS for protocol in ("cpu", "cpu_paper", "gpu")),
    "unet16_isic2017_cpu_paper",  # the U-Net-16 ceiling control
    "unet16_isic2017_gpu",
]
NATIVE_RESOLUTION = ["patch_2d", "patch_3d"]


def test_all_ten_table1_experiments_their_protocols_and_synthetic_are_shipped() -> None:
    assert sorted(list_configs()) == sorted([*TABLE1, *PROTOCOLS, *NATIVE_RESOLUTION, "synthetic"])


@pytest.mark.parametrize("name", NATIVE_RESOLUTION)
def test_native_resolution_configs_load_as_patch_plans(name: str) -> None:
    config = load_config(name, [f"data.root={Path.cwd()}"])
    assert config.data.preprocessing == "patch" and config.train.batch_size == "auto"
    assert config.data.spatial_dims == (3 if name == "patch_3d" else 2)
    assert config.model_kwargs()["spatial_dims"] == config.data.spatial_dims


@pytest.mark.parametrize("name", [*TABLE1, "synthetic"])
def test_shipped_config_loads_with_the_papers_recipe(name: str) -> None:
    config = load_config(name)
    assert config.name == name
    assert config.model.name == name.rsplit("_", 1)[0] if name != "synthetic" else "hlfnet"
    if name != "synthetic":
        t = config.train
        assert (t.batch_size, t.lr, t.lr_step_epochs, t.lr_gamma, t.max_epochs) == (6, 1e-4, 15, 0.1, 45)
        assert config.data.augment
    if name.endswith("isic2017"):
        assert (config.data.format, config.data.image_size, config.data.in_channels) == (
            "isic2017",
            (192, 256),
            4,
        )
    if name.endswith("spleen"):
        assert (config.data.format, config.data.image_size, config.data.in_channels) == ("msd", (256, 256), 1)


def test_defaults_are_the_papers_recipe() -> None:
    t = TrainConfig()
    assert (t.batch_size, t.lr, t.weight_decay, t.lr_step_epochs, t.lr_gamma) == (6, 1e-4, 0.0, 15, 0.1)
    assert (t.accelerator, t.devices, t.precision) == ("auto", 1, "32")  # a GPU when there is one


def test_resolved_config_round_trips_and_spells_out_the_model(tmp_path: Path) -> None:
    config = load_config("hlfnet_isic2017", ["model.base_channels=8"])
    resolved = config_to_dict(config)
    assert resolved["model"] == {
        "name": "hlfnet",
        "in_channels": 4,
        "out_channels": 1,
        "spatial_dims": 2,
        "base_channels": 8,
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(resolved))
    again = load_config(path)
    assert config_to_dict(again) == resolved


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("trian.lr=0.1", "unknown config key 'trian' (did you mean 'train'?)"),
        ("train.learning_rate=0.1", "unknown config key 'train.learning_rate'"),
        ("train.max_epoch=3", "(did you mean 'max_epochs'?)"),
        ("model.base_channel=8", "unknown config key 'model.base_channel' (did you mean 'base_channels'?)"),
        ("data.imagesize=[32,32]", "unknown config key 'data.imagesize' (did you mean 'image_size'?)"),
        ("model.name=hlfnett", "unknown model 'hlfnett' (did you mean 'hlfnet'?)"),
        ("train.lr=fast", "'train.lr' must be a number, got 'fast'"),
        ("train.max_epochs=2.5", "'train.max_epochs' must be an integer"),
        ("train.progress_bar=maybe", "'train.progress_bar' must be true or false"),
        ("train.precision=fp8", "'train.precision' must be one of"),
        ("train.batch_size=0", "train.batch_size must be at least 1"),
        ("train.lr_gamma=2", "train.lr_gamma must be in (0, 1]"),
        ("model.base_channels=wide", "'model.base_channels' must be an integer"),
        ("model.encoder_block=dense", "'model.encoder_block' must be one of"),
        ("model.in_channels=3", "'model.in_channels' is 3 but the data section implies 4"),
        ("data.format=dicom", "'data.format' must be one of"),
        ("seed=abc", "'seed' must be an integer"),
    ],
)
def test_bad_keys_and_values_are_named(override: str, message: str) -> None:
    with pytest.raises(ValueError) as error:
        load_config("synthetic", [override])
    assert message in str(error.value)
    assert "synthetic.yaml" in str(error.value)  # names the file too


def test_half_precision_on_the_cpu_is_refused() -> None:
    with pytest.raises(ValueError, match="needs a GPU"):
        load_config("synthetic", ["train.accelerator=cpu", "train.precision=16-mixed"])


def test_yaml_numbers_without_a_dot_and_int_precision_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("model: {name: unet}\ntrain: {lr: 1e-4, precision: 32}\n")
    config = load_config(path)
    assert config.train.lr == 1e-4 and config.train.precision == "32"
    assert config.name == "mine"  # the file's stem when no name is given


def test_a_section_that_is_not_a_mapping_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("train: 3\n")
    with pytest.raises(ValueError, match="section 'train' must be a mapping"):
        load_config(path)
    path.write_text("- a\n- b\n")
    with pytest.raises(ValueError, match="must be a mapping of sections"):
        load_config(path)
    path.write_text("train: {lr: [\n")
    with pytest.raises(ValueError, match="not valid YAML"):
        load_config(path)


def test_unknown_config_names_the_shipped_ones() -> None:
    with pytest.raises(FileNotFoundError, match="hlfnet_isic2017"):
        resolve_config_path("hlfnet_isic")
    with pytest.raises(FileNotFoundError, match="no/such.yaml"):
        load_config("no/such.yaml")


def test_overrides_parse_yaml_values_and_nest() -> None:
    raw = apply_overrides(
        {"train": {"lr": 1}}, ["train.lr=0.5", "data.image_size=[32, 48]", "train.progress_bar=no"]
    )
    assert raw == {"train": {"lr": 0.5, "progress_bar": False}, "data": {"image_size": [32, 48]}}
    with pytest.raises(ValueError, match="key.sub=value"):
        apply_overrides({}, ["train.lr"])
    with pytest.raises(ValueError, match="train.lr is not a section"):
        apply_overrides({"train": {"lr": 1}}, ["train.lr.x=2"])


def test_multiclass_data_gives_k_outputs() -> None:
    config = load_config("synthetic", ["data.num_classes=3"])
    assert config.model_kwargs()["out_channels"] == 3
    assert ExperimentConfig().model_kwargs()["out_channels"] == 1
