"""``hlfnet demo``: the main job on a fresh install — no data, no network, a couple of minutes on two CPU cores.

Trains HLF-Net with the shipped ``synthetic`` config (the paper's recipe, shortened: small images, a few
epochs, a larger learning rate), evaluates the best weights on the synthetic test split (``hlfnet evaluate``),
writes the HTML report (``hlfnet report``) and returns where everything went.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader

from hlfnet.data import build_dataset
from hlfnet.engine.config import ExperimentConfig, load_config
from hlfnet.engine.training import RunResult, train
from hlfnet.evaluation.metrics import mean_scores, scores_from_logits
from hlfnet.models import create_model

__all__ = ["DEMO_CONFIG", "DemoReport", "evaluate_model", "evaluate_split", "format_demo_report", "run_demo"]

log = logging.getLogger(__name__)

DEMO_CONFIG = "synthetic"
"""The shipped config the demo trains."""


@dataclass
class DemoReport:
    """What the demo did.

    Attributes:
        result: the training run.
        config: the config it ran.
        untrained_val_dice: validation Dice of the network before training (same seed, same initial weights).
        first_val_dice: validation Dice after the first epoch.
        test_scores: mean per-image scores of the best weights on the test split.
        test_images: number of test images.
        seconds: wall time of the whole demo.
        extra_files: more outputs (the evaluation's, when available) by role.
    """

    result: RunResult
    config: ExperimentConfig
    untrained_val_dice: float
    first_val_dice: float
    test_scores: dict[str, float]
    test_images: int
    seconds: float
    extra_files: dict[str, Path] = field(default_factory=dict)


def _free_run_dir(parent: Path, name: str) -> Path:
    candidate = parent / name
    index = 1
    while candidate.exists():
        candidate = parent / f"{name}-{index}"
        index += 1
    return candidate


def evaluate_split(
    run_dir: Path, config: ExperimentConfig, split: str = "test"
) -> tuple[dict[str, float], int]:
    """Mean per-image Dice, Jaccard, accuracy, ... of a run's best weights on one split.

    The network is rebuilt from the run folder alone (``model.safetensors`` + ``model.json``).

    Returns:
        ``(scores, number of images)``.
    """
    from hlfnet.models import load_model

    model, _ = load_model(run_dir / "model.safetensors")
    return evaluate_model(model, config, split)


@torch.no_grad()
def evaluate_model(model: nn.Module, config: ExperimentConfig, split: str) -> tuple[dict[str, float], int]:
    """Mean per-image scores of ``model`` on one split of ``config.data`` (no augmentation).

    Returns:
        ``(scores, number of images)``.

    Raises:
        ValueError: the split is empty.
    """
    model.eval()
    dataset = build_dataset(config.data, split, augment=False)
    if len(dataset) == 0:
        raise ValueError(f"split {split!r} of {config.data.format} data is empty: nothing to evaluate")
    per_image: dict[str, list[torch.Tensor]] = {}
    for batch in DataLoader(dataset, batch_size=config.train.batch_size):
        for key, value in scores_from_logits(model(batch["image"]), batch["mask"]).items():
            per_image.setdefault(key, []).append(value)
    return mean_scores({k: torch.cat(v) for k, v in per_image.items()}), len(dataset)


def run_demo(
    run_dir: str | Path | None = None, *, overwrite: bool = False, overrides: list[str] | None = None
) -> DemoReport:
    """Train HLF-Net on synthetic data, evaluate it, and report.

    Args:
        run_dir: run folder; default the first free ``runs/demo``, ``runs/demo-1``, ...
        overwrite: replace ``run_dir`` if it exists.
        overrides: ``key=value`` overrides of the ``synthetic`` config.

    Returns:
        The :class:`DemoReport`.
    """
    start = time.perf_counter()
    config = load_config(DEMO_CONFIG, overrides)
    if run_dir is None:
        run_dir = _free_run_dir(Path(config.train.runs_dir), "demo")
    result = train(config, run_dir, overwrite=overwrite)
    # The same evaluation and report a user gets from `hlfnet evaluate` / `hlfnet report` on any run.
    from hlfnet.evaluation import evaluate_run, write_report

    evaluation = evaluate_run(result.run_dir, split="test")
    scores, count = evaluation.summary["levels"]["network"], int(evaluation.summary["cases"])
    report_file = write_report(result.run_dir, split="test")
    # The starting point, for contrast: train() seeded the same way before it built the network.
    L.seed_everything(config.seed, workers=True, verbose=False)
    untrained, _ = evaluate_model(create_model(config.model.name, **config.model_kwargs()), config, "val")
    return DemoReport(
        result=result,
        config=config,
        untrained_val_dice=untrained["dice"],
        first_val_dice=result.metrics[0]["val_dice"] if result.metrics else float("nan"),
        test_scores=scores,
        test_images=count,
        seconds=time.perf_counter() - start,
        extra_files={"evaluation": Path(evaluation.output or ""), "report": report_file},
    )


def format_demo_report(report: DemoReport) -> str:
    """The demo's closing summary for the terminal."""
    r = report.result
    c = report.config
    lines = [
        "",
        f"hlfnet demo: trained {c.model.name} on synthetic data ({c.data.synthetic_train} train / "
        f"{c.data.synthetic_val} val / {report.test_images} test images, {c.data.image_size[0]}x"
        f"{c.data.image_size[1]}) for {len(r.metrics)} epochs in {report.seconds:.0f} s",
        f"  validation Dice: {report.untrained_val_dice:.3f} untrained -> {report.first_val_dice:.3f} after epoch 0 "
        f"-> {r.best_val_dice:.3f} at best epoch {r.best_epoch}",
        "  test split (best weights): "
        + ", ".join(f"{k} {report.test_scores[k]:.3f}" for k in ("dice", "jaccard", "accuracy")),
        "",
        f"run folder: {r.run_dir}",
    ]
    for role, path in {**r.files, **report.extra_files}.items():
        lines.append(f"  {role:16s} {path}")
    lines += [
        "",
        f"resume or extend:  hlfnet train --resume {r.run_dir} --set train.max_epochs={c.train.max_epochs + 5}",
        f"TensorBoard:       tensorboard --logdir {r.files['logs'] / 'tensorboard'}",
        "real images:       hlfnet predict --model hlfnet-isic2017 --input YOUR_IMAGES/ --output masks/"
        "   (trained on ISIC 2017, ships with hlfnet)",
    ]
    return "\n".join(lines)
