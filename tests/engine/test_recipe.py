"""The recipe's choices: optimiser, schedule, ``train.max_time``, the epoch line; their config keys and errors.

Expected values are worked by hand (the poly rates: ``0.01 · (1 - e/4)^0.9``), not read from the code.
"""

from __future__ import annotations

import datetime
import json
import logging
import re
from pathlib import Path

import pytest
import torch
import yaml

from hlfnet.engine.callbacks import EpochSummary, TimeLimit, format_epoch_line
from hlfnet.engine.module import SegmentationModule
from hlfnet.engine.training import build_trainer, load_run_config, train
from hlfnet.experiment.config import TrainConfig, load_config
from hlfnet.models import create_model
from tests.engine.conftest import tiny_overrides

#: 0.01 · (1 - e/4)^0.9 for e = 0..4: 0.75^0.9 = e^(0.9 ln 0.75) = e^(-0.25891) = 0.77189, 0.5^0.9 = 0.53589,
#: 0.25^0.9 = 0.28717, and 0 at the end.
POLY_RATES = [0.01, 0.0077188951, 0.0053588673, 0.0028717459, 0.0]


def _module(**kwargs: object) -> SegmentationModule:
    return SegmentationModule(create_model("unet", base_channels=4, depth=2, in_channels=1), **kwargs)


def _rates(module: SegmentationModule, epochs: int) -> list[float]:
    """The learning rate during each epoch, stepping the schedule once per epoch as Lightning does."""
    configured = module.configure_optimizers()
    optimizer = configured["optimizer"]
    scheduler = configured.get("lr_scheduler", {}).get("scheduler")
    rates = []
    for _ in range(epochs):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
    return rates


def test_the_defaults_are_the_papers_adam_and_step_schedule() -> None:
    t = TrainConfig()
    assert (t.loss, t.optimizer, t.schedule, t.momentum, t.max_time) == ("auto", "adam", "step", 0.99, None)
    optimizer = _module().configure_optimizers()["optimizer"]
    assert type(optimizer) is torch.optim.Adam and optimizer.defaults["weight_decay"] == 0.0


@pytest.mark.parametrize(
    ("name", "kind"), [("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW), ("sgd", torch.optim.SGD)]
)
def test_the_optimizer_is_the_one_named(name: str, kind: type) -> None:
    optimizer = _module(optimizer=name, lr=0.02, weight_decay=3e-5).configure_optimizers()["optimizer"]
    assert type(optimizer) is kind
    assert (optimizer.defaults["lr"], optimizer.defaults["weight_decay"]) == (0.02, 3e-5)


def test_sgd_is_nesterov_with_the_configured_momentum() -> None:
    optimizer = _module(optimizer="sgd").configure_optimizers()["optimizer"]
    assert (optimizer.defaults["momentum"], optimizer.defaults["nesterov"]) == (0.99, True)  # nnU-Net's
    optimizer = _module(optimizer="sgd", momentum=0.9).configure_optimizers()["optimizer"]
    assert (optimizer.defaults["momentum"], optimizer.defaults["nesterov"]) == (0.9, True)
    optimizer = _module(optimizer="sgd", momentum=0.0).configure_optimizers()["optimizer"]
    assert (optimizer.defaults["momentum"], optimizer.defaults["nesterov"]) == (0.0, False)  # plain SGD


def test_poly_schedule_rates_worked_by_hand() -> None:
    rates = _rates(_module(lr=0.01, schedule="poly", max_epochs=4), 5)
    assert rates == pytest.approx(POLY_RATES, rel=1e-8, abs=1e-12)


def test_step_schedule_keeps_its_keys_and_constant_keeps_the_rate() -> None:
    rates = _rates(_module(lr=0.01, lr_step_epochs=2, lr_gamma=0.5), 5)
    assert rates == pytest.approx([0.01, 0.01, 0.005, 0.005, 0.0025])
    assert "lr_scheduler" not in _module(schedule="constant").configure_optimizers()
    assert _rates(_module(lr=0.01, schedule="constant"), 3) == [0.01, 0.01, 0.01]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "train.loss=dice_focal",
            "config key 'train.loss' must be one of ['auto', 'dice', 'dice_ce', 'ce', 'focal']",
        ),
        ("train.optimizer=adamx", "config key 'train.optimizer' must be one of ['adam', 'adamw', 'sgd']"),
        ("train.schedule=cosine", "config key 'train.schedule' must be one of ['step', 'poly', 'constant']"),
        ("train.momentum=1", "train.momentum must be in [0, 1), got 1.0"),
        ("train.max_time=2h", "config key 'train.max_time' must be minutes"),
        ("train.max_time=00:02:00", "config key 'train.max_time' must be minutes"),
        ("train.max_time=0", "config key 'train.max_time' must be a positive duration"),
        ("train.optimiser=sgd", "unknown config key 'train.optimiser' (did you mean 'optimizer'?)"),
    ],
)
def test_unknown_values_are_one_line_errors_naming_the_key(override: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)) as error:
        load_config("synthetic", [override])
    assert "\n" not in str(error.value)


def test_max_time_reads_minutes_and_lightnings_format() -> None:
    assert load_config("synthetic", ["train.max_time=00:02:00:00"]).train.time_limit() == datetime.timedelta(
        hours=2
    )
    assert load_config("synthetic", ["train.max_time=01:00:00:30"]).train.time_limit() == datetime.timedelta(
        days=1, seconds=30
    )
    assert TrainConfig(max_time=90).time_limit() == datetime.timedelta(minutes=90)
    assert TrainConfig(max_time=0.5).time_limit() == datetime.timedelta(seconds=30)
    assert TrainConfig().time_limit() is None


def test_patch_configs_train_with_dice_ce_and_the_papers_with_auto() -> None:
    assert load_config("patch_2d").train.loss == "dice_ce"
    assert load_config("patch_3d").train.loss == "dice_ce"
    for name in ("hlfnet_isic2017", "unet_spleen", "synthetic", "hlfnet_isic2017_gpu"):
        t = load_config(name).train
        assert (t.loss, t.optimizer, t.schedule) == ("auto", "adam", "step"), name


def test_epoch_summary_and_time_limit_are_attached_only_when_asked(
    tmp_path: Path, engine_cache: Path
) -> None:
    def kinds(*overrides: str) -> set[type]:
        config = load_config("synthetic", [*tiny_overrides(engine_cache), *overrides])
        trainer, _ = build_trainer(config, tmp_path, logger=False)
        return {type(c) for c in trainer.callbacks}

    assert EpochSummary in kinds() and TimeLimit not in kinds()  # tiny_overrides turn the bar off
    assert EpochSummary not in kinds("train.progress_bar=true")
    assert TimeLimit in kinds("train.max_time=30")


def test_epoch_line_format() -> None:
    row = {"epoch": 3.0, "train_loss": 0.41234, "val_loss": 0.38, "val_dice": 0.70123, "lr": 1e-4}
    assert format_epoch_line(row, 45, 12.34) == (
        "epoch 3 (4/45): train_loss=0.4123 val_loss=0.3800 val_dice=0.7012 lr=1.000e-04 time=12.3s"
    )


_LINE = re.compile(
    r"^epoch (\d+) \((\d+)/3\): train_loss=\d\.\d{4} val_loss=\d\.\d{4} val_dice=\d\.\d{4} "
    r"lr=\d\.\d{3}e[-+]\d\d time=\d+\.\ds$"
)


def _epoch_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "hlfnet.engine.callbacks" and _LINE.match(r.getMessage())
    ]


def test_max_time_stops_at_an_epoch_end_and_the_run_resumes_to_the_uninterrupted_one(
    tmp_path: Path, engine_cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """SGD + poly over 3 epochs; ``max_time`` of 60 µs is over after any epoch, so each start trains one."""
    recipe = tiny_overrides(engine_cache, train__optimizer="sgd", train__schedule="poly")
    reference = train(load_config("synthetic", recipe), tmp_path / "reference")
    # poly over 3 epochs at 0.01: 0.01 · (1, (2/3)^0.9, (1/3)^0.9), (2/3)^0.9 = e^(0.9 · -0.405465) = 0.694253,
    # (1/3)^0.9 = e^(0.9 · -1.098612) = 0.372041
    assert [r["lr"] for r in reference.metrics] == pytest.approx([0.01, 0.00694253, 0.00372041], rel=1e-5)

    run = tmp_path / "limited"
    caplog.set_level(logging.INFO, logger="hlfnet")
    caplog.clear()
    first = train(load_config("synthetic", [*recipe, "train.max_time=1e-6"]), run)
    assert [r["epoch"] for r in first.metrics] == [0]
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 0
    lines = _epoch_lines(caplog)
    assert len(lines) == 1 and lines[0].startswith("epoch 0 (1/3): ")
    assert any("train.max_time" in r.getMessage() and "reached" in r.getMessage() for r in caplog.records)

    # the limit counts per start: a resume with the same limit trains one more epoch, not zero
    again = train(load_run_config(run), run, resume=True)
    assert [r["epoch"] for r in again.metrics] == [0, 1]
    rest = train(load_run_config(run, ["train.max_time=null"]), run, resume=True)
    assert rest.metrics == reference.metrics  # the momentum buffer and the schedule resumed exactly
    assert [int(_LINE.match(line).group(1)) for line in _epoch_lines(caplog)] == [0, 1, 2]


def test_a_run_recorded_before_these_keys_existed_resumes(tmp_path: Path, engine_cache: Path) -> None:
    """An older run's config.yaml and marker lack optimizer, momentum, schedule and max_time: it trained with
    today's defaults, so a resume must not call them changed."""
    run = tmp_path / "old"
    train(load_config("synthetic", tiny_overrides(engine_cache, train__max_epochs=1)), run)
    new_keys = ("optimizer", "momentum", "schedule", "max_time")
    marker = json.loads((run / ".hlfnet-output.json").read_text())
    resolved = yaml.safe_load((run / "config.yaml").read_text())
    for section in (marker["config"]["train"], resolved["train"]):
        for key in new_keys:
            del section[key]
    (run / ".hlfnet-output.json").write_text(json.dumps(marker))
    (run / "config.yaml").write_text(yaml.safe_dump(resolved))
    resumed = train(load_run_config(run, ["train.max_epochs=2"]), run, resume=True)
    assert [r["epoch"] for r in resumed.metrics] == [0, 1]
    # an edited value is still refused, naming it
    with pytest.raises(ValueError, match=r"train\.optimizer \('adam' -> 'sgd'\)"):
        train(load_run_config(run, ["train.optimizer=sgd", "train.max_epochs=3"]), run, resume=True)
