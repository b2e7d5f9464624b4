"""One signal policy (SIGTERM: 143 and a line; Ctrl-C: 130 and ``interrupted``; the run resumes), and weights
that would silently predict nothing (NaN/inf) refused when they are loaded."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import lightning as L
import pytest
import torch
from safetensors.torch import load_file, save_file

from hlfnet.cli import main
from tests.hostile.conftest import Sentinel, expect_error, expect_ok


class _SendSignal(L.Callback):
    """Sends ``signum`` to this process at the second training batch, as ``kill`` or Ctrl-C would."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.batches = 0

    def on_train_batch_start(self, trainer: L.Trainer, *args: object) -> None:
        self.batches += 1
        if self.batches == 2:
            os.kill(os.getpid(), self.signum)


@pytest.mark.parametrize(
    ("signum", "code", "needle"),
    [(signal.SIGTERM, 143, "terminated"), (signal.SIGINT, 130, "interrupted")],
    ids=["sigterm", "ctrl-c"],
)
def test_a_signal_during_training_exits_with_its_status_and_a_line(
    signum: int,
    code: int,
    needle: str,
    run: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import hlfnet.engine.training as training

    build = training.build_trainer
    monkeypatch.setattr(
        training,
        "build_trainer",
        lambda config, run_dir, callbacks=None: build(config, run_dir, [_SendSignal(signum)]),
    )
    # Ctrl-C at a terminal meets Python's own SIGINT handler; a test run started in the background by a shell
    # without job control inherits SIGINT ignored (Python then installs none), so set it as a terminal has it
    previous_sigint = signal.signal(signal.SIGINT, signal.default_int_handler)
    handlers = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    try:
        rc = main(["train", "--resume", str(run), "--set", "train.max_epochs=4"])
    finally:
        restored_sigint = signal.getsignal(signal.SIGINT)
        signal.signal(signal.SIGINT, previous_sigint)
    _, err = capsys.readouterr()
    assert rc == code, err[-3000:]
    assert "Traceback" not in err
    ours = [line for line in err.splitlines() if line.startswith("hlfnet train: ")]
    assert len(ours) == 1 and needle in ours[0], err[-3000:]
    assert (signal.getsignal(signal.SIGTERM), restored_sigint) == handlers  # restored
    monkeypatch.setattr(training, "build_trainer", build)
    expect_ok(capsys, ["train", "--resume", str(run), "--set", "train.max_epochs=3"])  # and it resumes


def test_sigterm_outside_training_is_the_same_policy(
    run: Path,
    images: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import hlfnet.evaluation.predictor.predict_folder as predict_folder

    real = predict_folder.predict_all

    def terminated(*args: object, **kwargs: object) -> object:
        os.kill(os.getpid(), signal.SIGTERM)
        return real(*args, **kwargs)

    monkeypatch.setattr(predict_folder, "predict_all", terminated)
    argv = [
        "predict",
        "--model",
        str(run),
        "--input",
        str(images),
        "--output",
        str(tmp_path / "out"),
        "--no-progress",
    ]
    rc = main(argv)
    _, err = capsys.readouterr()
    assert rc == 143 and "hlfnet predict: terminated" in err and "Traceback" not in err, err[-3000:]
    monkeypatch.setattr(predict_folder, "predict_all", real)
    expect_ok(capsys, argv)  # the killed run's folder is finished by a rerun


@pytest.mark.parametrize("bad", [float("nan"), float("inf")], ids=["nan", "inf"])
def test_non_finite_weights_are_refused_at_load(
    bad: float, run: Path, images: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    weights = run / "model.safetensors"
    state = load_file(str(weights))
    key = sorted(k for k, v in state.items() if v.is_floating_point())[0]
    state[key] = state[key].clone()
    state[key].view(-1)[0] = bad
    save_file(state, str(weights), metadata={"model_name": "hlfnet"})
    sentinel = Sentinel(tmp_path)
    argv = ["predict", "--model", str(weights), "--input", str(images), "--output", str(tmp_path / "out")]
    expect_error(capsys, [*argv, "--no-progress"], str(weights), key, "NaN/inf")
    sentinel.unchanged()
    assert not torch.isfinite(load_file(str(weights))[key]).all()
