"""``hlfnet demo``: the main job on a fresh install — no data, no network, a couple of minutes on two CPU cores.

Trains HLF-Net with the shipped ``synthetic`` config (the paper's recipe, shortened: small images, a few
epochs, an earlier learning-rate step), evaluates the best weights on the synthetic test split and the untrained
network on the validation split (both with ``hlfnet evaluate``), writes the HTML report (``hlfnet report``) and
returns where everything went.
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import lightning as L

from hlfnet.engine.training import RunResult, train
from hlfnet.experiment.config import ExperimentConfig, load_config
from hlfnet.models import create_model

__all__ = ["DEMO_CONFIG", "DemoReport", "format_demo_report", "run_demo"]

log = logging.getLogger(__name__)

DEMO_CONFIG = "synthetic"
"""The shipped config the demo trains."""


@dataclass
class DemoReport:
    """What the demo did.

    Attributes:
        result: the training run.
        config: the config it ran.
        untrained_val_dice: validation Dice of the network before training (same seed, same initial weights),
            scored by ``hlfnet evaluate`` as the trained weights are (:func:`_untrained_scores`).
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


def _untrained_scores(run_dir: Path, split: str = "val") -> dict[str, float]:
    """Mean per-image scores on ``split`` of the network a run started from, before its first step.

    The network is rebuilt from the run's ``model.json`` and seeded as :func:`~hlfnet.engine.training.train`
    seeded it (same initial weights), saved beside the run's recorded preprocessing in a temporary folder,
    and scored by :func:`hlfnet.evaluation.evaluate_run` like any trained weights; the ``network`` level (the
    network's input size, what the validation Dice in ``metrics.csv`` measures).
    """
    from hlfnet.evaluation import evaluate_run
    from hlfnet.experiment import load_run
    from hlfnet.models import save_model

    trained = load_run(run_dir)
    seed = (trained.config or {}).get("seed", 0)
    L.seed_everything(seed, workers=True, verbose=False)
    model = create_model(trained.model_name, **trained.info["kwargs"])
    with tempfile.TemporaryDirectory(prefix="hlfnet-untrained-") as folder:
        weights = save_model(model, Path(folder) / "model.safetensors", extra={"data": trained.data})
        result = evaluate_run(weights, split=split, write=False)
    return result.summary["levels"]["network"]


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
    # The starting point, for contrast, scored the same way.
    untrained = _untrained_scores(result.run_dir, "val")
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
