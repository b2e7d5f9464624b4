"""``hlfnet report``: one self-contained HTML page about a run, readable offline.

The page holds the metrics table of ``hlfnet evaluate`` (run first if its summary is missing), the training
curves (``curves.png``, or drawn from ``metrics.csv``), the best, median and worst cases by Jaccard as overlays
(ground truth green, prediction red), and the paper's Fig. 4 for chosen cases: image, ground truth, prediction,
then every LFE map ``σ(s')`` in encoder order (shallow → deep: resolution high → low) and every HFE spatial map
``s̃`` in decoder order (deep → shallow: resolution low → high), as the paper lays the figure out (a–h, i–p).
Every picture is a PNG embedded as base64; the page loads nothing from anywhere.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from hlfnet.atomic import atomic_write_bytes, claim_outputs, owned_outputs
from hlfnet.evaluation.report_cases import ReportCase, display_picture, load_native_cases, load_network_cases
from hlfnet.limits import read_json

__all__ = ["write_report", "render_report", "ReportCase"]

logger = logging.getLogger(__name__)


def _png(figure: Any) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(figure)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _show(ax: Any, picture: np.ndarray, title: str) -> None:
    ax.imshow(picture, cmap=None if picture.ndim == 3 else "gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_title(title, fontsize=8)
    ax.axis("off")


def _overlay(
    ax: Any, picture: np.ndarray, truth: np.ndarray, pred: np.ndarray, title: str, num_classes: int = 2
) -> None:
    """Binary: ground truth green and prediction red, as outlines. Multi-class: the prediction filled and the
    ground truth outlined in the colour of each class (:mod:`hlfnet.evaluation.palette`)."""
    from hlfnet.evaluation.palette import class_rgb

    _show(ax, picture, title)
    if num_classes == 2:
        for mask, colour in ((truth, "lime"), (pred, "red")):
            if mask.any() and not mask.all():
                ax.contour(mask > 0, levels=[0.5], colors=colour, linewidths=1.2)
        return
    fill = np.zeros((*pred.shape, 4))
    for k in range(1, num_classes):
        fill[pred == k] = (*class_rgb(k), 0.45)
    ax.imshow(fill, interpolation="nearest")
    for k in range(1, num_classes):
        mask = truth == k
        if mask.any() and not mask.all():
            ax.contour(mask, levels=[0.5], colors=[class_rgb(k)], linewidths=1.2)


def _curves_image(root: Path | None, history: list[dict[str, Any]] | None = None) -> tuple[str | None, str]:
    """The training curves as a data URI: ``curves.png`` as it is, or drawn from ``metrics.csv``.

    ``history`` (the rows of ``metrics.csv``, as a pretrained model's manifest keeps them) is drawn instead when
    there is no run folder.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    if root is not None:
        png = root / "curves.png"
        if png.is_file():
            return "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode("ascii"), "curves.png"
        metrics = root / "metrics.csv"
        if not metrics.is_file():
            return None, "no curves.png or metrics.csv in the run folder"
        with metrics.open() as handle:
            rows = list(csv.DictReader(handle))
    else:
        rows = [{k: "" if v is None else str(v) for k, v in row.items()} for row in history or []]
    if not rows:
        return None, "metrics.csv is empty"
    x_key = "epoch" if "epoch" in rows[0] else None
    series: dict[str, list[tuple[float, float]]] = {}
    for i, row in enumerate(rows):
        x = float(row[x_key]) if x_key and row.get(x_key) not in (None, "") else float(i)
        for key, value in row.items():
            if key in (x_key, "step") or value in (None, ""):
                continue
            try:
                series.setdefault(key, []).append((x, float(value)))
            except ValueError:
                continue
    if not series:
        return None, "metrics.csv has no numeric columns"
    losses = {k: v for k, v in series.items() if "loss" in k}
    others = {k: v for k, v in series.items() if k not in losses and "lr" not in k}
    figure, axes = plt.subplots(1, 2, figsize=(10, 3.2))
    for ax, group, title in ((axes[0], losses, "loss"), (axes[1], others, "metrics")):
        for key, points in sorted(group.items()):
            xs, ys = zip(*points, strict=True)
            ax.plot(xs, ys, marker="." if len(xs) < 30 else None, label=key)
        ax.set_xlabel(x_key or "row")
        ax.set_title(title, fontsize=9)
        if group:
            ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    return _png(figure), "drawn from metrics.csv"


def _fig4(predictor: Any, case: ReportCase) -> str:
    """The paper's Fig. 4 row of one case: image, truth, prediction, LFE maps, HFE spatial maps."""
    import matplotlib.pyplot as plt

    tensor, maps, probabilities = predictor.attention(case.tensor)
    pred = predictor.labels(probabilities[None])[0].numpy()
    panels: list[tuple[str, np.ndarray, str]] = [
        ("image", display_picture(tensor), "image"),
        ("ground truth", case.truth.astype(float), "mask"),
        ("prediction", pred.astype(float), "mask"),
    ]
    size = tensor.shape[-2:]
    for level, m in enumerate(maps.lfe):
        panels.append((f"LFE {level + 1} σ(s')", m[0, 0].float().cpu().numpy(), "map"))
    depth = len(maps.hfe_spatial)
    for i, m in enumerate(maps.hfe_spatial):
        panels.append((f"HFE {depth - i} s̃", m[0, 0].float().cpu().numpy(), "map"))
    figure, axes = plt.subplots(1, len(panels), figsize=(1.9 * len(panels), 2.2))
    for ax, (title, picture, kind) in zip(np.atleast_1d(axes), panels, strict=True):
        if kind == "map":
            low, high = float(picture.min()), float(picture.max())
            shown = (picture - low) / (high - low) if high > low else np.zeros_like(picture)
            ax.imshow(shown, cmap="jet", vmin=0, vmax=1, interpolation="bilinear")
            ax.set_title(
                f"{title}\n{picture.shape[0]}×{picture.shape[1]} [{low:.2f}, {high:.2f}]", fontsize=7
            )
            ax.axis("off")
        elif kind == "mask":
            ax.imshow(
                picture, cmap="gray", vmin=0, vmax=max(1.0, float(picture.max())), interpolation="nearest"
            )
            ax.set_title(f"{title}\n{size[0]}×{size[1]}", fontsize=7)
            ax.axis("off")
        else:
            _show(ax, picture, f"{title}\n{size[0]}×{size[1]}")
    return _png(figure)


def _overlays(predictor: Any, cases: list[ReportCase]) -> str:
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(cases), figsize=(3.4 * len(cases), 3.0))
    for ax, case in zip(np.atleast_1d(axes), cases, strict=True):
        pred = case.prediction
        if pred is None:
            pred = predictor.labels(predictor.probabilities(case.tensor[None]))[0].numpy()
        score = f", J={case.jaccard:.3f}" if case.jaccard is not None else ""
        _overlay(
            ax,
            case.picture if case.picture is not None else display_picture(case.tensor),
            case.truth,
            pred,
            f"{case.label}: {case.id}{score}",
            predictor.num_classes,
        )
    return _png(figure)


def _legend(names: tuple[str, ...]) -> str:
    """The colour key of the overlays: one entry per foreground class (multi-class), or the binary convention."""
    from hlfnet.evaluation.palette import class_colour

    if len(names) == 2:
        return "Ground truth green, prediction red"
    items = "".join(
        f"<span class='key'><span class='fill' style='background:{class_colour(k)}'></span>"
        f"<span class='line' style='border-color:{class_colour(k)}'></span>{html.escape(names[k])}</span>"
        for k in range(1, len(names))
    )
    return f"<span class='legend'>{items}</span> Prediction filled, ground truth outlined, in each class's colour"


def _read_rows(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def _pick(rows: list[dict[str, str]], key: str) -> list[tuple[str, dict[str, str]]]:
    """Best, median and worst rows by ``key`` (distinct rows when there are at least three)."""
    ordered = sorted(rows, key=lambda r: float(r[key]), reverse=True)
    picks = [("best", ordered[0]), ("median", ordered[len(ordered) // 2]), ("worst", ordered[-1])]
    seen: set[int] = set()
    unique = []
    for label, row in picks:
        if id(row) not in seen:
            seen.add(id(row))
            unique.append((label, row))
    return unique


def _number(value: Any) -> str:
    """A score as ``0.1234``; anything else that found its way into a summary, escaped."""
    try:
        return f"{float(value):.4f}"
    except (TypeError, ValueError):
        return html.escape(str(value))


def _is_stale(summary_file: Path) -> bool:
    from hlfnet.evaluation.evaluate import stale_reason

    try:
        reason = stale_reason(read_json(summary_file, "evaluation summary"), summary_file)
    except (OSError, ValueError, AttributeError):
        return True  # unreadable: score again
    if reason:
        logger.info("%s is stale (%s): evaluating again", summary_file, reason)
    return reason is not None


_LABELS = {"dice": "Dice", "jaccard": "IoU (Jaccard)", "hd95": "HD95", "assd": "ASSD", "nsd": "NSD"}


def _cell(value: Any) -> str:
    """A table cell: ``—`` where a level has no such metric, ``n/a`` for NaN (no case with the structure)."""
    if value is None:
        return "—"
    if isinstance(value, float) and value != value:
        return "n/a"
    return _number(value)


def _metrics_table(summary: dict[str, Any]) -> str:
    """The means of every level (overlap, then boundary metrics), for multi-class also per class."""
    from hlfnet.evaluation.evaluate import metric_columns
    from hlfnet.evaluation.metrics import BINARY_METRICS

    levels = summary["levels"]
    main = list(dict.fromkeys(m for scores in levels.values() for m in metric_columns(scores)[0]))
    main = main or list(BINARY_METRICS)
    head = "".join(f"<th>{html.escape(_LABELS.get(m, m.replace('_', ' ')))}</th>" for m in main)
    body = []
    for level, scores in levels.items():
        primary = " (primary)" if level == summary["primary"] else ""
        cells = "".join(f"<td>{_cell(scores.get(m))}</td>" for m in main)
        count = summary.get("counts", {}).get(level, "")
        body.append(
            f"<tr><th>{html.escape(str(level))}{primary}</th><td>{html.escape(str(count))}</td>{cells}</tr>"
        )
    return f"<table><tr><th>level</th><th>cases</th>{head}</tr>{''.join(body)}</table>"


def _class_tables(summary: dict[str, Any], names: tuple[str, ...]) -> str:
    """Per-class tables (``dice_class1``... of each level): one row per foreground class, named and coloured."""
    from hlfnet.evaluation.evaluate import metric_columns
    from hlfnet.evaluation.metrics import BINARY_METRICS, SURFACE_METRICS
    from hlfnet.evaluation.palette import class_colour

    parts = []
    for level, scores in summary["levels"].items():
        _, per_class = metric_columns(scores)
        if not per_class:
            continue
        classes = sorted({int(k.rsplit("_class", 1)[1]) for k in per_class})
        found = {k.rsplit("_class", 1)[0] for k in per_class}
        metrics = [m for m in (*BINARY_METRICS, *SURFACE_METRICS) if m in found]
        head = "".join(f"<th>{html.escape(_LABELS.get(m, m.replace('_', ' ')))}</th>" for m in metrics)
        rows = []
        for k in classes:
            name = names[k] if k < len(names) else f"class {k}"
            cells = "".join(f"<td>{_cell(scores.get(f'{m}_class{k}'))}</td>" for m in metrics)
            rows.append(
                f"<tr class='class-row' data-class='{k}'><th><span class='fill' style='background:"
                f"{class_colour(k)}'></span>{k}: {html.escape(name)}</th>{cells}</tr>"
            )
        parts.append(
            f"<h3>Per class ({html.escape(str(level))})</h3><table class='per-class' data-level='"
            f"{html.escape(str(level))}'><tr><th>class</th>{head}</tr>{''.join(rows)}</table>"
        )
    return "".join(parts)


_STYLE = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2em auto;max-width:1500px;color:#222;padding:0 1em}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.9em}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:right}
th{background:#f4f4f4}img{max-width:100%;display:block;margin:.5em 0}.note{color:#555;font-size:.9em}
dl{display:grid;grid-template-columns:max-content auto;gap:.2em 1em}dt{font-weight:600}
.legend{display:inline-flex;flex-wrap:wrap;gap:.3em 1em;margin-right:.5em}.key{display:inline-flex;align-items:center}
.fill,.line{display:inline-block;width:.9em;height:.9em;margin-right:.25em;border-radius:2px}
.line{border:2px solid;box-sizing:border-box}
"""


def _surface_note(settings: dict[str, Any]) -> str:
    if not settings.get("surface_metrics"):
        return ""
    return (
        f"HD95 and ASSD in {settings.get('surface_units')}, NSD at tolerance {settings.get('nsd_tolerance')} "
        f"{settings.get('surface_units')} (MONAI's); — = not computed at this level; n/a = no case with the "
        "structure in prediction or truth."
    )


def render_report(
    title: str,
    facts: dict[str, str],
    summary: dict[str, Any],
    curves: tuple[str | None, str],
    overlays: str | None,
    fig4: list[tuple[ReportCase, str]],
    fig4_note: str,
    class_names: tuple[str, ...] = ("background", "class 1"),
) -> str:
    """Assemble the HTML page from already rendered pieces (data URIs); ``class_names`` (background first)
    name the classes of the overlays' legend and of the per-class tables."""
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1><dl>",
        *(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in facts.items()),
        "</dl><h2>Metrics</h2>",
        _metrics_table(summary),
        "<p class='note'>Per-image scores as the ISIC challenge computes them, averaged over cases. "
        "<em>original</em>: at the original mask size; <em>network</em>: at the network input size; "
        "<em>slice</em>/<em>volume</em>: per 2-D slice / per 3-D volume. "
        + html.escape(_surface_note(summary.get("settings", {})))
        + "</p>",
        _class_tables(summary, class_names),
        "<h2>Training curves</h2>",
        f"<img alt='training curves' src='{curves[0]}'><p class='note'>{html.escape(curves[1])}</p>"
        if curves[0]
        else f"<p class='note'>{html.escape(curves[1])}</p>",
        "<h2>Best, median and worst cases</h2>",
        f"<img alt='overlays' src='{overlays}'><p class='note'>{_legend(class_names)}, at the network "
        "input size; J = Jaccard at the primary level.</p>"
        if overlays
        else "<p class='note'>no cases</p>",
        "<h2>Fig. 4: attention maps</h2>",
        f"<p class='note'>{html.escape(fig4_note)}</p>",
    ]
    for case, uri in fig4:
        score = f" (Jaccard {case.jaccard:.3f})" if case.jaccard is not None else ""
        parts.append(f"<h3>{html.escape(case.label)}: {html.escape(case.id)}{score}</h3>")
        parts.append(f"<img alt='attention maps of {html.escape(case.id)}' src='{uri}'>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(
    run: str | os.PathLike[str],
    split: str = "test",
    output: str | os.PathLike[str] | None = None,
    cases: list[str] | None = None,
    overwrite: bool = False,
    data_root: str | os.PathLike[str] | None = None,
) -> Path:
    """Write the HTML report of a run (or of a pretrained network, with ``output`` and ``data_root``).

    Args:
        run: run folder, or a pretrained name (then ``output`` is required and the evaluation is written
            beside it, in ``<output stem>-evaluation/<split>``).
        split: the evaluated split to show (evaluated now if ``RUN/evaluation/<split>`` is missing).
        output: the HTML file; default ``RUN/report.html``.
        cases: case ids for Fig. 4 (image ids; ``volume:slice`` for volumes); default best, median, worst.
        overwrite: replace an existing report.
        data_root: evaluate on this data folder instead of the one recorded at training.

    Returns:
        The HTML file.

    Raises:
        FileNotFoundError: missing run or weights.
        FileExistsError: the report exists and ``overwrite`` is false.
        ValueError: an unknown case id.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)

    from hlfnet.evaluation.compare import summary_path
    from hlfnet.evaluation.evaluate import evaluate_run, pairs_for_split, synthetic_as_folder
    from hlfnet.evaluation.predictor import Predictor
    from hlfnet.experiment.run_folder import load_run

    loaded = load_run(run)
    path = Path(output) if output is not None else loaded.output_folder("the report") / "report.html"
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path}: already exists (pass --overwrite to replace it)")
    # --overwrite replaces a report hlfnet wrote, never another file, a folder or a symlink (hlfnet.atomic)
    legacy = ("report.html",) if output is None else ()
    claim_outputs(path.parent, [path.name], overwrite=overwrite, legacy=legacy, kind="report")
    root = (
        path.parent / f"{path.stem}-evaluation" if loaded.pretrained else loaded.output_folder("the report")
    )
    summary_file = summary_path(root, split)
    if summary_file.is_file() and _is_stale(summary_file):
        evaluate_run(run, split=split, output=summary_file.parent)
    if not summary_file.is_file() or (loaded.pretrained and data_root is not None):
        logger.info("%s missing: evaluating the %s split first", summary_file, split)
        evaluate_run(run, split=split, data_root=data_root, output=summary_file.parent)
    summary = read_json(summary_file, "evaluation summary")
    settings = summary.get("settings", {})
    predictor = Predictor.from_run(
        loaded, tta=False, largest_component=False, threshold=settings.get("threshold", 0.5)
    )
    cfg = predictor.cfg
    if cfg.format == "synthetic":
        cfg = predictor.cfg = synthetic_as_folder(cfg, split, root)
    if summary.get("data_root") and summary["data_root"] != cfg.root:
        from dataclasses import replace

        cfg = predictor.cfg = replace(cfg, root=summary["data_root"])
    volume = cfg.is_volume
    rows = _read_rows(summary_file.parent / ("per_slice.csv" if volume else "per_case.csv"))
    key = "slice_jaccard" if volume else "original_jaccard"
    ids = [r["volume"] for r in rows] if volume else [r["id"] for r in rows]
    pairs = {p.id: p for p in pairs_for_split(cfg, split, sorted(set(ids)))}
    picked = _pick(rows, key) if rows else []
    chosen = picked
    if cases:
        by_id = {r["id"]: r for r in rows}
        unknown = [c for c in cases if c not in by_id]
        if unknown:
            raise ValueError(
                f"{summary_file.parent}: unknown case id(s) {unknown} (ids are listed in its CSV files)"
            )
        chosen = [("chosen", by_id[c]) for c in cases]
    # resize plans show the network inputs (and Fig. 4 from them); native-resolution plans show each case at its
    # own size, predicted by sliding windows, and (chosen cases included) no attention maps
    patch = cfg.is_patch_plan
    load_cases = load_native_cases if patch else load_network_cases
    shown = load_cases(predictor, cfg, pairs, chosen if (patch and cases) else picked, volume)
    chosen_cases = (
        shown if (patch or not cases) else load_network_cases(predictor, cfg, pairs, chosen, volume)
    )
    overlays = _overlays(predictor, shown) if shown else None
    has_maps = bool(getattr(loaded.model, "has_attention_maps", False))
    if patch:
        fig4 = []
        note = (
            "Native-resolution run (data.preprocessing: patch): the overlays show each case at its own size "
            + ("(the evaluated axial slice of a volume) " if volume else "")
            + "as hlfnet evaluate scored it, predicted by sliding windows; attention maps (Fig. 4) are drawn "
            "for whole-image networks only. hlfnet predict --probabilities writes the probability maps."
        )
    elif has_maps:
        fig4 = [(case, _fig4(predictor, case)) for case in chosen_cases]
        note = (
            "Columns as in the paper's Fig. 4: image, ground truth, prediction, then LFE semantic-embedding maps "
            "σ(s') from shallow to deep (resolution high → low), then HFE pixel-wise attention s̃ from deep to "
            "shallow (resolution low → high). Each map is shown min–max scaled (jet: blue low, red high); its "
            "true range is under its title."
        )
    else:
        fig4 = []
        note = f"{loaded.model_name} has no LFE or HFE modules, so there are no attention maps to show."
    facts = {
        "model": f"{loaded.model_name} ({summary.get('paper_name', '')}), {summary['parameters']:,} parameters",
        "weights": str(loaded.weights),
        "data": f"{cfg.format} at {cfg.root}, "
        + (
            f"patches {list(cfg.patch_size)} at spacing {list(cfg.target_spacing or [])}"
            if patch
            else f"network input {cfg.image_size[0]}×{cfg.image_size[1]}"
        ),
        "split": f"{split}: {summary['cases']} case(s)",
        "inference": f"TTA {settings.get('tta')}, largest component {settings.get('largest_component')}, "
        f"threshold {settings.get('threshold')}",
    }
    page = render_report(
        f"hlfnet report: {loaded.name}",
        facts,
        summary,
        _curves_image(None, loaded.info["manifest"].get("history"))
        if loaded.pretrained
        else _curves_image(root),
        overlays,
        fig4,
        note,
        cfg.names_of_classes(predictor.num_classes),
    )
    with owned_outputs(path.parent, [path.name], "report", overwrite=True, legacy=legacy):
        atomic_write_bytes(path, page.encode("utf-8"), root=path.parent)
    logger.info("wrote %s (%.0f kB)", path, path.stat().st_size / 1024)
    return path
