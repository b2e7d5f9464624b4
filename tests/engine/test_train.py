"""Training end to end on tiny synthetic runs: run folder, loss, determinism, exact resume, refusals."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
import torch
import yaml

from hlfnet.engine.module import EPOCH_COLUMNS
from hlfnet.engine.training import RunResult, load_run_config, train
from hlfnet.errors import OutputRefused
from hlfnet.evaluation import evaluate_run
from hlfnet.experiment import read_metrics_csv
from hlfnet.experiment.config import load_config
from hlfnet.models import load_model
from tests.engine.conftest import SUBPROCESS_ENV, tiny_overrides

RUN_FILES = (
    "config.yaml",
    "split.json",
    "checkpoints/best.ckpt",
    "checkpoints/last.ckpt",
    "model.safetensors",
    "model.json",
    "metrics.csv",
    "curves.png",
)


@pytest.fixture(scope="module")
def four_epochs(tmp_path_factory: pytest.TempPathFactory, engine_cache: Path) -> RunResult:
    """An uninterrupted 4-epoch run (shared by the loss, folder, determinism and resume tests)."""
    config = load_config("synthetic", tiny_overrides(engine_cache, train__max_epochs=4))
    return train(config, tmp_path_factory.mktemp("runs") / "full")


def test_loss_falls_and_the_run_folder_is_complete(four_epochs: RunResult) -> None:
    run = four_epochs.run_dir
    for name in RUN_FILES:
        assert (run / name).is_file(), f"{name} missing from the run folder"
    assert (run / "curves.png").read_bytes().startswith(b"\x89PNG")
    umask = os.umask(0)
    os.umask(umask)
    for name in RUN_FILES:  # readable like any file the user writes, not mkstemp's owner-only 0600
        assert (run / name).stat().st_mode & 0o777 == 0o666 & ~umask, name
    assert list((run / "logs" / "csv").glob("version_0/metrics.csv"))
    assert list((run / "logs" / "tensorboard").glob("version_0/events.out.tfevents.*"))

    rows = read_metrics_csv(run / "metrics.csv")
    assert [r["epoch"] for r in rows] == [0, 1, 2, 3]
    assert list(rows[0]) == list(EPOCH_COLUMNS)
    assert rows[-1]["train_loss"] < rows[0]["train_loss"] - 0.02
    assert all(0 <= r[k] <= 1 for r in rows for k in ("val_dice", "val_jaccard", "val_accuracy"))
    # StepLR: x0.1 every 2 epochs, lr recorded as used during the epoch.
    assert [r["lr"] for r in rows] == pytest.approx([0.01, 0.01, 0.001, 0.001])

    # The resolved config rebuilds the experiment; the split is the data's.
    resolved = yaml.safe_load((run / "config.yaml").read_text())
    assert resolved["model"]["name"] == "hlfnet" and resolved["model"]["in_channels"] == 4
    assert load_run_config(run).train.max_epochs == 4
    split = json.loads((run / "split.json").read_text())
    assert (len(split["train"]), len(split["val"])) == (12, 6)

    # The best weights: the network rebuilds from the run folder alone, and `hlfnet evaluate` (the one evaluation
    # path: files in, Predictor, ISIC scores) reproduces the validation scores Lightning logged.
    best = max(rows, key=lambda r: r["val_dice"])
    model, info = load_model(run / "model.safetensors")
    assert info["best_epoch"] == best["epoch"] == four_epochs.best_epoch
    assert info["best_val_dice"] == pytest.approx(best["val_dice"])
    assert info["data"]["image_size"] == [32, 32]
    evaluation = evaluate_run(run, split="val", write=False)
    assert evaluation.summary["counts"]["network"] == 6
    scores = evaluation.summary["levels"]["network"]
    assert scores["dice"] == pytest.approx(best["val_dice"], abs=1e-6)
    assert scores["jaccard"] == pytest.approx(best["val_jaccard"], abs=1e-6)
    assert scores["accuracy"] == pytest.approx(best["val_accuracy"], abs=1e-6)

    # Checkpoints load without unpickling arbitrary objects and hold the best / last epochs.
    last = torch.load(run / "checkpoints/last.ckpt", weights_only=True)
    assert last["epoch"] == 3
    best_ckpt = torch.load(run / "checkpoints/best.ckpt", weights_only=True)
    assert best_ckpt["epoch"] == best["epoch"]
    assert torch.equal(best_ckpt["state_dict"]["model.head.weight"], model.state_dict()["head.weight"])


def test_same_seed_gives_identical_metrics_and_another_seed_does_not(
    four_epochs: RunResult, tmp_path: Path, engine_cache: Path
) -> None:
    again = train(
        load_config("synthetic", tiny_overrides(engine_cache, train__max_epochs=4)), tmp_path / "again"
    )
    assert again.metrics == four_epochs.metrics
    other = train(
        load_config("synthetic", tiny_overrides(engine_cache, seed=1, train__max_epochs=1)), tmp_path / "s1"
    )
    assert other.metrics[0] != four_epochs.metrics[0]


def test_stop_then_resume_equals_the_uninterrupted_run(
    four_epochs: RunResult, tmp_path: Path, engine_cache: Path
) -> None:
    run = tmp_path / "stopped"
    first = train(load_config("synthetic", tiny_overrides(engine_cache, train__max_epochs=2)), run)
    assert len(first.metrics) == 2
    resumed = train(load_run_config(run, ["train.max_epochs=4"]), run, resume=True)
    assert resumed.metrics == four_epochs.metrics  # lr, losses and scores, to the last bit
    assert resumed.best_epoch == four_epochs.best_epoch
    assert sorted(p.name for p in (run / "logs" / "csv").iterdir()) == ["version_0", "version_1"]


def test_existing_run_folder_is_refused_unless_overwrite(tmp_path: Path, engine_cache: Path) -> None:
    config = load_config("synthetic", tiny_overrides(engine_cache, train__max_epochs=1))
    run = tmp_path / "run"
    train(config, run)
    with pytest.raises(FileExistsError, match=str(run)):
        train(config, run)
    # --overwrite replaces only what hlfnet wrote: a file the user added is named and nothing is deleted
    (run / "stale.txt").write_text("added by the user")
    with pytest.raises(OutputRefused, match="stale.txt"):
        train(config, run, overwrite=True)
    assert (run / "stale.txt").exists() and (run / "model.safetensors").exists()
    (run / "stale.txt").unlink()
    (run / "checkpoints" / ".last.ckpt.hlfnet-abcd1234.tmp").write_bytes(b"left by a kill")
    result = train(config, run, overwrite=True)
    assert len(result.metrics) == 1 and not list(run.rglob("*.tmp"))

    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("do not delete")
    with pytest.raises(OutputRefused, match="thesis.tex"):
        train(config, precious, overwrite=True)
    assert (precious / "thesis.tex").exists()

    with pytest.raises(FileNotFoundError, match="no checkpoint to resume from"):
        train(config, tmp_path / "nothing", resume=True)
    with pytest.raises(ValueError, match="not both"):
        train(config, run, resume=True, overwrite=True)


def test_default_run_folder_is_runs_dir_slash_name(tmp_path: Path, engine_cache: Path) -> None:
    config = load_config(
        "synthetic",
        tiny_overrides(engine_cache, train__max_epochs=1, train__runs_dir=str(tmp_path / "r"), name="tiny"),
    )
    assert train(config).run_dir == tmp_path / "r" / "tiny"


def test_multiclass_training_uses_softmax_dice(tmp_path: Path, engine_cache: Path) -> None:
    config = load_config("synthetic", tiny_overrides(engine_cache, data__num_classes=3, train__max_epochs=1))
    result = train(config, tmp_path / "k3")
    _, info = load_model(result.run_dir / "model.safetensors")
    assert info["kwargs"]["out_channels"] == 3
    row = result.metrics[0]
    assert all(math.isfinite(row[k]) for k in EPOCH_COLUMNS)


class _FixedLogits(torch.nn.Module):
    """A "network" whose logits are given, so the loss of a training step can be worked out by hand."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits = logits
        self.out_channels = logits.shape[1]
        self.anchor = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits + 0 * self.anchor


@pytest.mark.filterwarnings("ignore:You are trying to `self.log")
def test_multiclass_training_step_is_per_image_softmax_dice_over_the_foreground_classes() -> None:
    """K = 3 logits on two 1×2 images. Logits = log p, so softmax gives p back exactly: in both images pixel a
    has p = (0.2, 0.5, 0.3) and pixel b p = (0.1, 0.3, 0.6); the labels are (1, 2) and (2, 2). Per image and
    foreground class k, Dice loss = 1 - (2 Σ p_k t_k + ε) / (Σ p_k + Σ t_k + ε), MONAI's ε = 1e-5:

    * image 1, class 1: 1 - (2·0.5 + ε) / (0.8 + 1 + ε); class 2: 1 - (2·0.6 + ε) / (0.9 + 1 + ε);
    * image 2, class 1: 1 - ε / (0.8 + ε) (absent, predicted 0.8); class 2: 1 - (2·0.9 + ε) / (0.9 + 2 + ε);

    the loss is the mean of the four. Sigmoid Dice (0.553 on image 1 alone), the background included (0.604)
    or Dice over the whole batch instead of per image would each give another value.
    """
    from hlfnet.engine.module import SegmentationModule

    p = torch.tensor([[0.2, 0.1], [0.5, 0.3], [0.3, 0.6]]).view(1, 3, 1, 2).repeat(2, 1, 1, 1)
    module = SegmentationModule(_FixedLogits(p.log()))
    batch = {"image": torch.zeros(2, 1, 1, 2), "mask": torch.tensor([[[[1, 2]]], [[[2, 2]]]])}
    e = 1e-5
    per_class = [
        1 - (1.0 + e) / (1.8 + e),
        1 - (1.2 + e) / (1.9 + e),
        1 - e / (0.8 + e),
        1 - (1.8 + e) / (2.9 + e),
    ]
    expected = sum(per_class) / 4  # 0.548039...
    assert float(module.training_step(batch, 0).detach()) == pytest.approx(expected, abs=1e-6)


@pytest.mark.slow
def test_killed_run_resumes_to_the_uninterrupted_metrics(tmp_path: Path, engine_cache: Path) -> None:
    """SIGKILL a real ``hlfnet train`` process once it has a checkpoint, then ``--resume`` it."""
    import signal
    import subprocess
    import sys
    import time

    overrides = tiny_overrides(engine_cache, train__max_epochs=5, data__synthetic_train=24)
    reference = train(load_config("synthetic", overrides), tmp_path / "reference")

    run = tmp_path / "killed"
    command = [sys.executable, "-m", "hlfnet", "train", "--config", "synthetic", "--run-dir", str(run)]
    for item in overrides:
        command += ["--set", item]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=SUBPROCESS_ENV)
    deadline = time.monotonic() + 120
    while not (run / "checkpoints" / "last.ckpt").exists():
        assert process.poll() is None, process.stderr.read().decode()[-2000:] if process.stderr else ""
        assert time.monotonic() < deadline, "no checkpoint after 120 s"
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL
    killed_at = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["epoch"]
    assert killed_at < 4, "the run finished before it could be killed"

    resumed = train(load_run_config(run), run, resume=True)
    assert resumed.metrics == reference.metrics
    assert read_metrics_csv(run / "metrics.csv") == reference.metrics


def test_resume_refuses_a_changed_split(tmp_path: Path, engine_cache: Path) -> None:
    run = tmp_path / "run"
    train(load_config("synthetic", tiny_overrides(engine_cache, train__max_epochs=1)), run)
    # the recorded config catches it first and names the key
    with pytest.raises(ValueError, match=r"data\.synthetic_train \(12 -> 11\)"):
        train(load_run_config(run, ["data.synthetic_train=11", "train.max_epochs=2"]), run, resume=True)


def test_unusable_data_fails_before_a_run_folder_exists(tmp_path: Path, engine_cache: Path) -> None:
    missing = load_config(
        "hlfnet_isic2017", [f"data.root={tmp_path / 'no-isic'}", f"data.cache_dir={engine_cache}"]
    )
    with pytest.raises(FileNotFoundError, match="no-isic"):
        train(missing, tmp_path / "run")
    assert not (tmp_path / "run").exists()  # so the corrected command is not refused

    no_val = load_config("synthetic", tiny_overrides(engine_cache, data__synthetic_val=0))
    with pytest.raises(ValueError, match="validation split .* is empty"):
        train(no_val, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_in_channels_null_is_read_from_the_data(tmp_path: Path, engine_cache: Path) -> None:
    config = load_config(
        "synthetic", tiny_overrides(engine_cache, data__in_channels="null", train__max_epochs=1)
    )
    result = train(config, tmp_path / "run")
    assert load_run_config(result.run_dir).data.in_channels == 4
    assert yaml.safe_load((result.run_dir / "config.yaml").read_text())["model"]["in_channels"] == 4


def test_channels_last_training_matches_default(tmp_path):
    """channels_last changes the memory layout only: the same seed gives the same metrics up to rounding."""
    import torch

    from hlfnet.engine.module import SegmentationModule
    from hlfnet.models import create_model

    torch.manual_seed(0)
    plain = SegmentationModule(create_model("hlfnet", base_channels=4))
    torch.manual_seed(0)
    fast = SegmentationModule(create_model("hlfnet", base_channels=4), channels_last=True)
    weight = fast.model.encoder[1].trunk[0][0].weight
    assert weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous()
    batch = {"image": torch.rand(2, 4, 32, 32), "mask": (torch.rand(2, 1, 32, 32) > 0.5).long()}
    image = fast.batch_image(batch)
    assert image.is_contiguous(memory_format=torch.channels_last) and not image.is_contiguous()
    with torch.no_grad():
        torch.testing.assert_close(fast(image), plain(plain.batch_image(batch)), atol=1e-4, rtol=1e-4)
