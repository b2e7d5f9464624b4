"""The one configuration system (hlfnet.schema): ``extends:`` bases, the typed validator, override limits."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hlfnet.data import DataConfig
from hlfnet.errors import ResourceLimitError
from hlfnet.experiment.config import ModelConfig, TrainConfig, config_to_dict, load_config
from hlfnet.schema import EXTENDS_KEY, apply_overrides, list_configs, read_yaml, resolve_config_path


def _write(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_user_config_extends_a_shipped_one_and_changes_one_key(tmp_path: Path) -> None:
    mine = _write(tmp_path / "short.yaml", {EXTENDS_KEY: "unet_isic2017_cpu", "train": {"max_epochs": 3}})
    config, shipped = config_to_dict(load_config(mine)), config_to_dict(load_config("unet_isic2017_cpu"))
    assert config["name"] == "short"  # the deriving file's stem, not the base's
    assert config["train"]["max_epochs"] == 3
    assert config["train"]["lr_step_epochs"] == 8 and config["data"]["image_size"] == [96, 128]
    config["train"]["max_epochs"], config["name"] = shipped["train"]["max_epochs"], shipped["name"]
    assert config == shipped


def test_bases_merge_in_order_mappings_key_by_key_and_the_deriving_file_wins(tmp_path: Path) -> None:
    (tmp_path / "bases").mkdir()
    _write(tmp_path / "bases" / "a.yaml", {"train": {"lr": 0.5, "batch_size": 2}, "data": {"hflip": 0.1}})
    _write(tmp_path / "bases" / "b.yaml", {"train": {"lr": 0.25}, "seed": 7})
    top = _write(
        tmp_path / "top.yaml", {EXTENDS_KEY: ["bases/a.yaml", "bases/b.yaml"], "train": {"batch_size": 4}}
    )
    assert read_yaml(top) == {
        "train": {"lr": 0.25, "batch_size": 4},  # b over a, then top over both
        "data": {"hflip": 0.1},
        "seed": 7,
    }


def test_a_base_resolves_beside_its_file_not_beside_the_working_directory(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    _write(tmp_path / "sub" / "base.yaml", {"train": {"lr": 0.5}})
    _write(tmp_path / "sub" / "mid.yaml", {EXTENDS_KEY: "base.yaml", "seed": 3})
    top = _write(tmp_path / "top.yaml", {EXTENDS_KEY: "sub/mid.yaml"})
    assert read_yaml(top) == {"train": {"lr": 0.5}, "seed": 3}


def test_a_cycle_of_bases_is_named(tmp_path: Path) -> None:
    _write(tmp_path / "a.yaml", {EXTENDS_KEY: "b.yaml"})
    _write(tmp_path / "b.yaml", {EXTENDS_KEY: "a.yaml"})
    with pytest.raises(ValueError, match=r"forms a cycle: .*a\.yaml -> .*b\.yaml -> .*a\.yaml"):
        read_yaml(tmp_path / "a.yaml")


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        ("nowhere.yaml", FileNotFoundError, "extends 'nowhere.yaml': no such file beside it"),
        (3, ValueError, "'extends' must name a config file"),
        ([""], ValueError, "'extends' must name a config file"),
    ],
)
def test_a_bad_base_names_the_file_that_asked_for_it(tmp_path: Path, value, error, message) -> None:
    path = _write(tmp_path / "mine.yaml", {EXTENDS_KEY: value})
    with pytest.raises(error, match=message) as raised:
        load_config(path)
    assert "mine.yaml" in str(raised.value)


def test_data_from_file_resolves_bases_too(tmp_path: Path) -> None:
    path = _write(tmp_path / "data.yaml", {EXTENDS_KEY: "hlfnet_spleen", "data": {"root": "/ct"}})
    cfg = DataConfig.from_file(path)
    assert (cfg.format, cfg.root, cfg.image_size, cfg.in_channels) == ("msd", "/ct", (256, 256), 1)


def test_shipped_network_configs_are_their_base_plus_a_model() -> None:
    for name in list_configs():
        if name in ("synthetic", "patch_2d", "patch_3d"):  # the demo's and the native-resolution recipes
            continue
        raw = yaml.safe_load(resolve_config_path(name).read_text())
        assert set(raw) == {EXTENDS_KEY, "model"} and set(raw["model"]) == {"name"}, name
        assert resolve_config_path(raw[EXTENDS_KEY].removesuffix(".yaml")).parent.name == "base"


def test_bases_are_not_listed_as_runnable_configs() -> None:
    assert not [name for name in list_configs() if name.startswith("base") or name == "paper"]


def test_an_override_with_too_many_yaml_aliases_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HLFNET_MAX_YAML_ALIASES", "2")
    bomb = "[&a [1], *a, *a, *a]"
    with pytest.raises(ResourceLimitError, match="override 'data.image_size'"):
        apply_overrides({}, [f"data.image_size={bomb}"])
    assert apply_overrides({}, ["data.root=/a: b: [c"]) == {"data": {"root": "/a: b: [c"}}  # text, not YAML


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: DataConfig(image_size=("192", 256)), "'data.image_size[0]' must be an integer"),
        (lambda: DataConfig(augment="yes"), "'data.augment' must be true or false"),
        (lambda: DataConfig(format="dicom"), "'data.format' must be one of"),
        (
            lambda: DataConfig(drop_background_slices=("training",)),
            "'data.drop_background_slices[0]' must be one of",
        ),
        (lambda: DataConfig(ct_window=(1.0,)), "'data.ct_window' must have 2 items"),
        (lambda: TrainConfig(lr="fast"), "'train.lr' must be a number"),
        (lambda: TrainConfig(max_epochs=2.5), "'train.max_epochs' must be an integer"),
        (lambda: ModelConfig(name="unet", kwargs={"base_channel": 8}), "did you mean 'base_channels'"),
        (lambda: ModelConfig(name="unett"), "unknown model 'unett'"),
    ],
)
def test_configs_built_in_python_are_checked_like_yaml(build, message) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(")):
        build()


def test_python_values_are_normalised_like_yaml_ones() -> None:
    cfg = DataConfig(
        image_size=[32, 48], root=Path("/x"), format="folder", hflip=1, drop_background_slices="train"
    )
    assert cfg.image_size == (32, 48) and cfg.root == "/x" and cfg.hflip == 1.0
    assert cfg.drop_background_slices == ("train",)
    assert TrainConfig(lr="1e-3").lr == 1e-3 and TrainConfig(precision=32).precision == "32"
