"""Sub-commands of this area (registered by :mod:`hlfnet.cli`): evaluate, predict, compare, report, export.

Each handler parses nothing itself: it calls one typed function of :mod:`hlfnet.evaluation` (which a user can
call from Python) and prints what that returns. Heavy modules are imported inside the handlers.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from hlfnet.data.cli import label_values_arg

logger = logging.getLogger(__name__)


def _add_predictor_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("inference")
    group.add_argument("--batch-size", type=int, default=8, help="images per forward pass (default 8)")
    group.add_argument("--tta", action="store_true", help="flip test-time augmentation (4 forward passes)")
    group.add_argument(
        "--largest-component", action="store_true", help="keep only the largest connected component per class"
    )
    group.add_argument("--threshold", type=float, default=0.5, help="binary threshold on the probability")
    group.add_argument(
        "--backend",
        choices=("torch", "onnx"),
        default="torch",
        help="onnx: run RUN/export/model.onnx in ONNX Runtime",
    )
    group.add_argument(
        "--device",
        default="auto",
        help="auto (default: cuda when a GPU is present, else cpu), cpu, cuda, cuda:1...",
    )
    group.add_argument(
        "--channels-last", action="store_true", help="channels-last memory format (CPU: ~1.5x faster HLF-Net)"
    )
    group.add_argument(
        "--bf16", action="store_true", help="bfloat16 autocast (CPU with avx512_bf16 or GPU: ~2x faster)"
    )
    group.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_checkpoint_option(group)


def _add_metric_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--nsd-tolerance",
        type=float,
        default=1.0,
        help="NSD tolerance: mm for volumes, pixels for 2-D images (default 1)",
    )
    parser.add_argument(
        "--no-surface-metrics", action="store_true", help="skip HD95, ASSD and NSD (faster on large volumes)"
    )


def _add_checkpoint_option(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    parser.add_argument(
        "--checkpoint",
        choices=("best", "last"),
        default="best",
        help="a run folder's best-on-validation weights (default) or its last epoch's",
    )


def _predictor_options(args: argparse.Namespace) -> dict:
    return {
        "batch_size": args.batch_size,
        "tta": args.tta,
        "largest_component": args.largest_component,
        "threshold": args.threshold,
        "device": args.device,
        "channels_last": args.channels_last,
        "bf16": args.bf16,
        "progress": not args.no_progress and sys.stderr.isatty(),
        **({"class_indices": True} if getattr(args, "class_indices", False) else {}),
    }


def _crossvalidate(args: argparse.Namespace) -> int:
    from hlfnet.errors import UserError
    from hlfnet.evaluation.crossval import crossval_markdown, crossvalidate

    given = [
        flag
        for flag, value in (
            ("--split", args.split),
            ("--data", args.data),
            ("--format", args.format),
            ("--mask-suffix", args.mask_suffix),
            ("--image-pattern", args.image_pattern),
            ("--mask-pattern", args.mask_pattern),
            ("--largest-component", args.largest_component or None),
        )
        if value is not None
    ]
    if given:
        raise UserError(
            f"{args.run}: a cross-validation scores each fold on its own validation cases and chooses the "
            f"largest-component post-processing itself; drop {', '.join(given)}"
        )
    options = _predictor_options(args)
    result = crossvalidate(
        args.run,
        output=args.output,
        backend=args.backend,
        checkpoint=args.checkpoint,
        surface=not args.no_surface_metrics,
        nsd_tolerance=args.nsd_tolerance,
        postprocessing=not args.no_postprocessing,
        **options,
    )
    print(crossval_markdown(result.summary))
    print(f"written to {result.output}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from hlfnet.evaluation.evaluate import evaluate_run, summary_markdown
    from hlfnet.evaluation.predictor.ensemble import ensemble_members

    if ensemble_members(args.run) is not None:
        return _crossvalidate(args)
    if args.no_postprocessing:
        from hlfnet.errors import UserError

        raise UserError("--no-postprocessing applies to a cross-validation (a folder of folds)")

    overrides = {
        key: value
        for key, value in (
            ("format", args.format),
            ("mask_suffix", args.mask_suffix),
            ("image_pattern", args.image_pattern),
            ("mask_pattern", args.mask_pattern),
        )
        if value is not None
    } or None
    result = evaluate_run(
        args.run,
        split=args.split or "test",
        data_root=args.data,
        data_overrides=overrides,
        output=args.output,
        backend=args.backend,
        checkpoint=args.checkpoint,
        surface=not args.no_surface_metrics,
        nsd_tolerance=args.nsd_tolerance,
        **_predictor_options(args),
    )
    print(summary_markdown(result.summary))
    print(f"written to {result.output}")
    return 0


def _predict(args: argparse.Namespace) -> int:
    from hlfnet.evaluation.predictor import Predictor

    options = _predictor_options(args)
    predictor = Predictor.from_path(
        args.model,
        backend=args.backend,
        checkpoint=args.checkpoint,
        postprocessing=args.postprocessing,
        **options,
    )
    written = predictor.predict(
        args.input,
        args.output,
        overwrite=args.overwrite,
        save_probabilities=args.probabilities,
        pattern=args.pattern,
    )
    print(f"wrote {len(written)} prediction(s) to {args.output}")
    return 0


def _compare(args: argparse.Namespace) -> int:
    from hlfnet.evaluation.compare import compare_runs, table_csv, table_markdown

    rows = compare_runs(args.runs, split=args.split, level=args.level)
    markdown = table_markdown(rows, paper=args.paper)
    csv_text = table_csv(rows)
    if len(args.runs) > 1 and not args.csv:
        from hlfnet.evaluation.statistics import paired_comparison, paired_markdown

        reference = args.reference or args.runs[0]
        level = rows[0].level
        metrics = tuple(m for m in ("dice", "jaccard", "accuracy") if m in rows[0].metrics)
        results = [
            result
            for run in args.runs
            if Path(run) != Path(reference)
            for result in paired_comparison(reference, run, split=args.split, level=level, metrics=metrics)
        ]
        markdown += (
            f"\nPaired over the same cases, each run minus {Path(reference).name}: mean difference, 95 % "
            f"bootstrap CI (10 000 resamples), two-sided Wilcoxon signed-rank p.\n\n"
            + paired_markdown(results)
        )
    if args.output:
        from hlfnet.atomic import atomic_write_bytes, owned_outputs

        out = Path(args.output)
        tables = {"table1.md": markdown, "table1.csv": csv_text}
        # replaces its own tables, never another file nor reproduce's table1.md
        with owned_outputs(out, list(tables), "compare", overwrite=True):
            for name, text in tables.items():
                atomic_write_bytes(out / name, text.encode(), root=out)
        print(f"wrote {out / 'table1.md'} and {out / 'table1.csv'}", file=sys.stderr)
    print(csv_text if args.csv else markdown, end="")
    return 0


def _score(args: argparse.Namespace) -> int:
    from hlfnet.evaluation.score import score_folders, summary_table

    result = score_folders(
        args.pred,
        args.gt,
        num_classes=args.num_classes,
        output=args.output,
        gt_suffix=args.gt_suffix,
        label_values=args.label_values,
        surface=not args.no_surface_metrics,
        spacing=tuple(args.spacing) if args.spacing else None,
        tolerance=args.nsd_tolerance,
        fov=args.fov,
    )
    print(summary_table(result.summary), end="")
    if result.output is not None:
        print(f"written to {result.output}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from hlfnet.evaluation.report import write_report

    path = write_report(
        args.run,
        split=args.split,
        output=args.output,
        cases=args.cases,
        overwrite=args.overwrite,
        data_root=args.data,
    )
    print(f"wrote {path}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from hlfnet.evaluation.export import export_run

    path = export_run(
        args.run, fmt=args.format, output=args.output, overwrite=args.overwrite, checkpoint=args.checkpoint
    )
    print(f"wrote {path}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add this area's sub-commands to ``hlfnet``."""
    p = subparsers.add_parser(
        "evaluate",
        help="score a run on its val/test split (per-case CSV, summary JSON, markdown)",
        description="Score a run as the ISIC challenge does (original mask size) and at network size; volumes "
        "per slice and per volume. Writes RUN/evaluation/<split>/{per_case.csv,summary.json,summary.md}. "
        "Given a folder of fold_<N> run folders (hlfnet train --fold N) or a comma-separated list of folds: "
        "the cross-validation, each fold on its own validation cases, per fold and pooled, and the "
        "largest-component post-processing chosen per class; writes FOLDER/crossval/{per_case.csv,"
        "summary.json,summary.md,postprocessing.json}.",
    )
    p.add_argument(
        "run",
        help="run folder, model.safetensors, a pretrained name (hlfnet-isic2017), or the folds of a "
        "cross-validation: a folder holding fold_<N> run folders, or RUN_fold0,RUN_fold1,...",
    )
    p.add_argument("--split", choices=("val", "test", "train"), help="default test")
    p.add_argument(
        "--data", help="evaluate on this data folder (same format, its own split) instead of the run's"
    )
    p.add_argument(
        "--format", help="data format of --data when it differs from the run's (isic2017, folder, msd...)"
    )
    p.add_argument(
        "--output", help="output folder (default RUN/evaluation/<split>; required for a pretrained name)"
    )
    p.add_argument("--mask-suffix", help="mask name suffix of --data (e.g. _lesion for IMD002_lesion.bmp)")
    p.add_argument("--image-pattern", help="image file pattern of --data with {case} (with --mask-pattern)")
    p.add_argument(
        "--mask-pattern", help="mask file pattern of --data with {case}, e.g. '{case}_manual1.gif'"
    )
    p.add_argument(
        "--no-postprocessing",
        action="store_true",
        help="cross-validation: do not score the largest-component post-processing (one prediction pass)",
    )
    _add_metric_options(p)
    _add_predictor_options(p)
    p.set_defaults(handler=_evaluate)

    p = subparsers.add_parser(
        "predict",
        help="predict masks for an image, a folder or a NIfTI volume",
        description="Predict with the training preprocessing rebuilt from the run. 2-D masks are written as "
        "8-bit PNG (0/255) at the input's size; volumes as NIfTI with the input's affine and header.",
    )
    p.add_argument(
        "--model",
        required=True,
        help="pretrained name (hlfnet-isic2017, unet-isic2017: see `hlfnet models`), run folder, "
        "model.safetensors, model.onnx or *.torchscript.pt; or an ensemble: RUN_fold0,RUN_fold1,... or a "
        "folder holding fold_<N> run folders (their probabilities are averaged)",
    )
    p.add_argument(
        "--postprocessing",
        default="auto",
        metavar="auto|none|FILE",
        help="largest-component decision of a cross-validation: auto (default) = FOLDER/crossval/"
        "postprocessing.json of a folder of folds when present; none; or a postprocessing.json "
        "(--largest-component overrides it)",
    )
    p.add_argument(
        "--input", required=True, help="image, folder of images, or .nii/.nii.gz volume (or folder)"
    )
    p.add_argument("--output", required=True, help="output folder")
    p.add_argument(
        "--overwrite", action="store_true", help="replace predictions already in the output folder"
    )
    p.add_argument(
        "--probabilities", action="store_true", help="also write probability maps (output/probabilities)"
    )
    p.add_argument("--pattern", help="glob choosing the files of an input folder, e.g. 'ISIC_*.jpg'")
    p.add_argument(
        "--class-indices",
        action="store_true",
        help="write class indices 0..K-1 (binary 0/255) instead of the data's label_values encoding",
    )
    _add_predictor_options(p)
    p.set_defaults(handler=_predict)

    p = subparsers.add_parser(
        "compare",
        help="the paper's Table 1 from evaluated runs (markdown and CSV)",
        description="Dice, Jaccard, Accuracy and parameters per network, read from RUN/evaluation/<split>/summary.json.",
    )
    p.add_argument("runs", nargs="+", help="run folders, each evaluated with `hlfnet evaluate`")
    p.add_argument("--split", default="test")
    p.add_argument("--level", help="original, network, slice or volume (default: each run's primary level)")
    p.add_argument("--paper", choices=("isic2017", "spleen"), help="show the paper's values beside ours")
    p.add_argument("--output", help="folder to write table1.md and table1.csv into")
    p.add_argument("--csv", action="store_true", help="print CSV instead of markdown")
    p.add_argument(
        "--reference",
        help="run the others are compared with, case by case (default: the first run); paired statistics "
        "(bootstrap CI, Wilcoxon) are printed for two or more runs",
    )
    p.set_defaults(handler=_compare)

    p = subparsers.add_parser(
        "score",
        help="score a folder of predicted masks against a folder of ground truths (ISIC-exact metrics)",
        description="Pairs <id>.png / <id>.nii.gz predictions with <id>, <id>_segmentation or <id>_mask ground "
        "truths and scores each case as the ISIC challenge scorer does (volumes as one 3-D case).",
    )
    p.add_argument("--pred", required=True, help="folder of predicted masks (e.g. hlfnet predict's output)")
    p.add_argument("--gt", required=True, help="folder of ground-truth masks")
    p.add_argument("--num-classes", type=int, default=2, help="classes including background (default 2)")
    p.add_argument("--output", help="folder to write per_case.csv, summary.json and summary.md into")
    p.add_argument(
        "--gt-suffix", help="ground-truth name ending after the case id (default _segmentation or _mask)"
    )
    p.add_argument(
        "--label-values",
        type=label_values_arg,
        help="stored value of each class in both folders, index = class (0,128,255); sets --num-classes",
    )
    p.add_argument(
        "--spacing",
        type=float,
        nargs="+",
        metavar="MM",
        help="pixel size per axis of 2-D masks (default: pixels)",
    )
    p.add_argument("--fov", help="folder of field-of-view masks (<case>[_fov|_mask]; non-zero = scored)")
    _add_metric_options(p)
    p.set_defaults(handler=_score)

    p = subparsers.add_parser(
        "report",
        help="one self-contained HTML page: metrics, curves, best/median/worst cases, Fig. 4 attention maps",
    )
    p.add_argument("run", help="run folder, or a pretrained name (then --output is required)")
    p.add_argument("--split", choices=("val", "test", "train"), default="test")
    p.add_argument("--cases", nargs="+", help="case ids for the Fig. 4 panels (default: best, median, worst)")
    p.add_argument("--output", help="HTML file (default RUN/report.html)")
    p.add_argument(
        "--data", help="data folder to evaluate on when the evaluation is missing (pretrained: always)"
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing report")
    p.set_defaults(handler=_report)

    p = subparsers.add_parser("export", help="export a run's network to ONNX or TorchScript")
    p.add_argument(
        "run", help="run folder, model.safetensors, or a pretrained name (then --output is required)"
    )
    p.add_argument("--format", choices=("onnx", "torchscript"), default="onnx")
    _add_checkpoint_option(p)
    p.add_argument("--output", help="file to write (default RUN/export/model.onnx or model.torchscript.pt)")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(handler=_export)
