"""``hlfnet reproduce``: the CPU and GPU protocols validated without training (the GPU one needs no GPU)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hlfnet.cli import main
from hlfnet.engine import load_config
from hlfnet.engine.reproduce import TABLE1_NETWORKS, plan_reproduction


@pytest.mark.parametrize("network", TABLE1_NETWORKS)
def test_gpu_protocol_is_the_papers_full_recipe(network: str) -> None:
    # §3.1: 256x192 images, Dice loss, Adam 1e-4, batch 6, lr x0.1 every 15 epochs; 45 epochs = 3 stages.
    config = load_config(f"{network}_isic2017_gpu")
    assert config.model.name == network
    assert tuple(config.data.image_size) == (192, 256)
    t = config.train
    assert (t.lr, t.batch_size, t.lr_step_epochs, t.lr_gamma, t.max_epochs) == (1e-4, 6, 15, 0.1, 45)
    assert t.accelerator == "gpu" and t.precision == "bf16-mixed"


@pytest.mark.parametrize("network", TABLE1_NETWORKS)
def test_cpu_protocol_changes_only_size_and_epochs_keeping_the_schedules_shape(network: str) -> None:
    paper, cpu = load_config(f"{network}_isic2017"), load_config(f"{network}_isic2017_cpu")
    assert cpu.model.name == network
    assert (cpu.train.lr, cpu.train.batch_size, cpu.train.lr_gamma) == (
        paper.train.lr,
        paper.train.batch_size,
        0.1,
    )
    assert cpu.train.lr_step_epochs * 3 == cpu.train.max_epochs  # x0.1 at 1/3 and 2/3, as 15/45
    h, w = cpu.data.image_size
    assert h * 4 == w * 3  # the paper's 4:3 aspect
    assert cpu.train.accelerator == "auto"


def test_one_seeded_split_for_every_network() -> None:
    seeds = {
        (load_config(f"{n}_isic2017_{p}").seed, load_config(f"{n}_isic2017_{p}").data.seed)
        for n in TABLE1_NETWORKS
        for p in ("cpu", "gpu")
    }
    assert len(seeds) == 1


@pytest.mark.parametrize("protocol", ["cpu", "gpu"])
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
