"""``hlfnet reproduce``: the CPU and GPU protocols validated without training (the GPU one needs no GPU)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hlfnet.cli import main
from hlfnet.engine import load_config
from hlfnet.engine.loss import default_loss
from hlfnet.engine.reproduce import (
    CONTROL_NETWORKS,
    TABLE1_NETWORKS,
    plan_reproduction,
    reproduce,
    seed_spread_markdown,
)

#: The recipe of §3.1, written from the paper (not from the configs): 256×192 images (H 192, W 256) of RGB plus
#: grey, Dice loss, Adam at 1e-4 without weight decay, batch 6, the rate ×0.1 after every 15 epochs, random
#: cropping and flipping and no other augmentation, float32 on a GTX 1080 Ti (no faster arithmetic there). The
#: paper gives no number of epochs: 45 is three full rate stages (docs/training.md).
PAPER_RECIPE = {
    "data.image_size": (192, 256),
    "data.in_channels": 4,
    "data.random_crop": True,
    "data.flips": True,
    "data.rot90": 0.0,
    "data.intensity_jitter": 0.0,
    "train.loss": "dice",
    "train.optimizer": "adam",
    "train.lr": 1e-4,
    "train.weight_decay": 0.0,
    "train.batch_size": 6,
    "train.schedule": "step",
    "train.lr_step_epochs": 15,
    "train.lr_gamma": 0.1,
    "train.max_epochs": 45,
    "train.precision": "32",
}

#: What each protocol changes, key by key; every other key of the recipe is the paper's.
PROTOCOL_CHANGES = {
    "gpu": {},
    "cpu": {
        "data.image_size": (96, 128),
        "data.intensity_jitter": 0.15,
        "train.max_epochs": 24,
        "train.lr_step_epochs": 8,
        "train.precision": "bf16-mixed",
    },
    "cpu_paper": {"data.image_size": (96, 128), "data.intensity_jitter": 0.15},
}

#: The networks with a config per protocol (U-Net-16, the control, came with the paper-schedule protocols).
PROTOCOL_NETWORKS = {
    "gpu": (*TABLE1_NETWORKS, *CONTROL_NETWORKS),
    "cpu": TABLE1_NETWORKS,
    "cpu_paper": (*TABLE1_NETWORKS, *CONTROL_NETWORKS),
}


def _recipe(config) -> dict[str, object]:
    d, t = config.data, config.train
    return {
        "data.image_size": tuple(d.image_size),
        "data.in_channels": d.in_channels,
        "data.random_crop": d.augment and d.crop_scale[0] < 1.0,
        "data.flips": d.augment and d.hflip > 0 and d.vflip > 0,
        "data.rot90": d.rot90,
        "data.intensity_jitter": d.intensity_jitter,
        # auto: the loss train() resolves for the network's output channels (config.yaml records it)
        "train.loss": default_loss(config.model_kwargs()["out_channels"]) if t.loss == "auto" else t.loss,
        "train.optimizer": t.optimizer,
        "train.lr": t.lr,
        "train.weight_decay": t.weight_decay,
        "train.batch_size": t.batch_size,
        "train.schedule": t.schedule,
        "train.lr_step_epochs": t.lr_step_epochs,
        "train.lr_gamma": t.lr_gamma,
        "train.max_epochs": t.max_epochs,
        "train.precision": "32" if t.precision in ("32", "32-true") else t.precision,
    }


@pytest.mark.parametrize(
    ("protocol", "network"), [(p, n) for p, networks in PROTOCOL_NETWORKS.items() for n in networks]
)
def test_each_protocol_differs_from_the_paper_only_where_it_says(protocol: str, network: str) -> None:
    config = load_config(f"{network}_isic2017_{protocol}")
    assert config.model.name == network and config.data.format == "isic2017"
    assert _recipe(config) == {**PAPER_RECIPE, **PROTOCOL_CHANGES[protocol]}


def test_the_gpu_protocol_is_the_papers_recipe_in_float32_with_crop_and_flip_only() -> None:
    for network in PROTOCOL_NETWORKS["gpu"]:
        config = load_config(f"{network}_isic2017_gpu")
        assert config.train.precision in ("32", "32-true") and config.data.intensity_jitter == 0.0
        assert config.train.max_epochs >= 45 and config.train.max_epochs % config.train.lr_step_epochs == 0
        assert config.train.accelerator == "gpu"  # the hardware keys: a GPU, channels-last, loader workers
        assert config.train.channels_last and config.train.num_workers == 3


@pytest.mark.parametrize("network", TABLE1_NETWORKS)
def test_cpu_protocols_run_on_whatever_the_machine_has(network: str) -> None:
    for protocol in ("cpu", "cpu_paper"):
        config = load_config(f"{network}_isic2017_{protocol}")
        assert config.train.accelerator == "auto" and not config.train.channels_last
        h, w = config.data.image_size
        assert h * 4 == w * 3  # the paper's 4:3 aspect
    cpu = load_config(f"{network}_isic2017_cpu").train
    assert (
        cpu.lr_step_epochs * 3 == cpu.max_epochs
    )  # the shortened schedule keeps the shape: cuts at 1/3, 2/3


def test_one_seeded_split_for_every_network() -> None:
    seeds = {
        (load_config(f"{n}_isic2017_{p}").seed, load_config(f"{n}_isic2017_{p}").data.seed)
        for p, networks in PROTOCOL_NETWORKS.items()
        for n in networks
    }
    assert seeds == {(0, 0)}


@pytest.mark.parametrize("protocol", ["cpu", "cpu_paper", "gpu"])
def test_dry_run_validates_and_prints_every_command(protocol: str, tmp_path: Path, capsys) -> None:
    data = tmp_path / "isic"
    data.mkdir()
    code = main(
        [
            "reproduce",
            "--protocol",
            protocol,
            "--data",
            str(data),
            "--runs-dir",
            str(tmp_path / "r"),
            "--dry-run",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    for network in TABLE1_NETWORKS:
        assert f"--config {network}_isic2017_{protocol}" in out
    assert ("concurrently" in out) == (protocol == "gpu")
    assert not (tmp_path / "r").exists()


def test_a_bad_override_fails_before_anything_trains(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_epoch"):
        plan_reproduction("gpu", tmp_path, overrides=["train.max_epoch=3"])
    with pytest.raises(ValueError, match="networks"):
        plan_reproduction("cpu", tmp_path, networks=("vgg",))


def test_an_interrupted_run_is_resumed(tmp_path: Path) -> None:
    run = tmp_path / "r" / "hlfnet" / "checkpoints"
    run.mkdir(parents=True)
    (run / "last.ckpt").write_bytes(b"")
    plan = plan_reproduction("cpu", tmp_path, networks=("hlfnet",), runs_dir=tmp_path / "r")
    assert "--resume" in plan.commands["hlfnet"]


def _sets(command: list[str]) -> list[str]:
    return [command[i + 1] for i, arg in enumerate(command) if arg == "--set"]


def test_seeds_train_in_their_own_folders_with_the_split_kept(tmp_path: Path) -> None:
    networks = (*TABLE1_NETWORKS, "unet16")
    plans = reproduce("gpu", tmp_path, networks, tmp_path / "r", dry_run=True, seeds=(0, 1, 2))
    assert [plan.seed for plan in plans] == [0, 1, 2]
    for plan in plans:
        assert plan.runs_dir == tmp_path / "r" / f"seed{plan.seed}" and plan.concurrent
        assert plan.networks == networks
        for network, command in plan.commands.items():
            run_dir = command[command.index("--run-dir") + 1]
            assert run_dir == str(tmp_path / "r" / f"seed{plan.seed}" / network)
            config = load_config(command[command.index("--config") + 1], _sets(command))
            assert (config.seed, config.data.seed, config.model.name) == (plan.seed, 0, network)


def test_without_seeds_the_configs_seed_trains_in_the_runs_folder(tmp_path: Path) -> None:
    (plan,) = reproduce("gpu", tmp_path, ("hlfnet",), tmp_path / "r", dry_run=True)
    command = plan.commands["hlfnet"]
    assert plan.seed is None and command[command.index("--run-dir") + 1] == str(tmp_path / "r" / "hlfnet")
    assert not any(item.startswith("seed=") for item in _sets(command))


def test_seeds_are_given_once_and_distinct(tmp_path: Path, capsys) -> None:
    with pytest.raises(ValueError, match="config key 'seed'"):
        plan_reproduction("gpu", tmp_path, overrides=["seed=3"], seed=1)
    with pytest.raises(ValueError, match="seeds must be distinct"):
        reproduce("gpu", tmp_path, dry_run=True, seeds=(1, 1))
    with pytest.raises(ValueError, match="seeds must be distinct"):
        reproduce("gpu", tmp_path, dry_run=True, seeds=())
    with pytest.raises(ValueError, match="'seed' must be in"):
        plan_reproduction("gpu", tmp_path, seed=-1)
    assert (
        main(["reproduce", "--protocol", "gpu", "--data", str(tmp_path), "--seeds", "0,x", "--dry-run"]) == 2
    )
    assert "--seeds must be comma-separated integers, got '0,x'" in capsys.readouterr().err


def test_dry_run_with_seeds_prints_every_seeds_commands(tmp_path: Path, capsys) -> None:
    args = ["reproduce", "--protocol", "gpu", "--data", str(tmp_path), "--runs-dir", str(tmp_path / "r")]
    assert main([*args, "--seeds", "0,1,2", "--networks", "unet,unet16", "--dry-run"]) == 0
    out = capsys.readouterr().out
    for seed in (0, 1, 2):
        assert f"training seed {seed}, runs in {tmp_path / 'r' / f'seed{seed}'}" in out
        assert f"--set seed={seed}" in out
    assert out.count("--config unet16_isic2017_gpu") == 3
    assert not (tmp_path / "r").exists()


def test_an_interrupted_seed_is_resumed_in_its_folder(tmp_path: Path) -> None:
    run = tmp_path / "r" / "seed1" / "hlfnet" / "checkpoints"
    run.mkdir(parents=True)
    (run / "last.ckpt").write_bytes(b"")
    plans = reproduce("gpu", tmp_path, ("hlfnet",), tmp_path / "r", dry_run=True, seeds=(0, 1))
    assert "--resume" not in plans[0].commands["hlfnet"]
    assert plans[1].commands["hlfnet"][plans[1].commands["hlfnet"].index("--resume") + 1] == str(run.parent)


def test_the_seed_spread_is_the_mean_and_sample_deviation_over_seeds(tmp_path: Path) -> None:
    """Jaccard 0.80, 0.82, 0.84 over three seeds: mean 0.82, sample deviation √((0.02² + 0 + 0.02²) / 2) = 0.02."""
    import json

    jaccards = {0: 0.80, 1: 0.82, 2: 0.84}
    for seed, jaccard in jaccards.items():
        summary = tmp_path / f"seed{seed}" / "unet" / "evaluation" / "test" / "summary.json"
        summary.parent.mkdir(parents=True)
        scores = {"dice": 0.9, "jaccard": jaccard, "accuracy": 0.95 + seed / 100}
        fields = {"model": "unet", "paper_name": "Unet-28", "parameters": 5_940_000, "cases": 436}
        summary.write_text(json.dumps({**fields, "primary": "original", "levels": {"original": scores}}))
    table = seed_spread_markdown({s: tmp_path / f"seed{s}" for s in jaccards}, ("unet",))
    assert "| Unet-28 (unet) | 3 | 0.9000 ± 0.0000 | 0.8200 ± 0.0200 | 0.9600 ± 0.0100 |" in table
