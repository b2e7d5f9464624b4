"""Evaluation, inference, reports and export: what the paper reports and what a user does with a trained network.

Public API (see ``docs/evaluation.md``)::

    from hlfnet.evaluation import binary_scores, Predictor, evaluate_run, compare_runs, write_report, export_run

    scores = binary_scores(pred, target)                 # per image, exactly as the ISIC challenge scorer
    Predictor.from_path("runs/hlfnet").predict("images/", "predictions/")
    evaluate_run("runs/hlfnet", split="test")            # RUN/evaluation/test/{per_case.csv,summary.json,summary.md}
    compare_runs(["runs/unet", "runs/hlfnet"])           # Table 1
    write_report("runs/hlfnet")                          # RUN/report.html
    export_run("runs/hlfnet", "onnx")                    # RUN/export/model.onnx
"""

from __future__ import annotations

from hlfnet.evaluation.compare import PAPER_TABLE1, compare_runs, table_csv, table_markdown
from hlfnet.evaluation.evaluate import EvaluationResult, evaluate_run, score_labels, summary_markdown
from hlfnet.evaluation.export import OnnxModel, export_model, export_run, load_exported
from hlfnet.evaluation.metrics import (
    BINARY_METRICS,
    binary_confusion,
    binary_scores,
    foreground_mean,
    mean_scores,
    multiclass_scores,
    scores_from_confusion,
    scores_from_logits,
)
from hlfnet.evaluation.predictor import Prediction, Predictor, VolumePrediction, largest_component
from hlfnet.evaluation.report import write_report

__all__ = [
    "BINARY_METRICS",
    "PAPER_TABLE1",
    "EvaluationResult",
    "OnnxModel",
    "Prediction",
    "Predictor",
    "VolumePrediction",
    "binary_confusion",
    "binary_scores",
    "compare_runs",
    "evaluate_run",
    "export_model",
    "export_run",
    "foreground_mean",
    "largest_component",
    "load_exported",
    "mean_scores",
    "multiclass_scores",
    "score_labels",
    "scores_from_confusion",
    "scores_from_logits",
    "summary_markdown",
    "table_csv",
    "table_markdown",
    "write_report",
]
