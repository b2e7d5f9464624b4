"""Table 1 from evaluated runs, and the self-contained HTML report (checked in headless Chromium when present)."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hlfnet.evaluation.compare import compare_runs, summary_path, table_csv, table_markdown
from hlfnet.evaluation.report import write_report

from .conftest import make_run


def _fake_summary(run: Path, model: str, jaccard: float, parameters: int) -> None:
    path = summary_path(run, "test")
    path.parent.mkdir(parents=True)
    levels = {"original": {"dice": 2 * jaccard / (1 + jaccard), "jaccard": jaccard, "accuracy": 0.9}}
    levels["network"] = {k: v - 0.01 for k, v in levels["original"].items()}
    summary = {
        "run": run.name,
        "model": model,
        "paper_name": {"unet": "Unet-28", "hlfnet": "HLE-Net"}[model],
        "parameters": parameters,
        "cases": 600,
        "primary": "original",
        "levels": levels,
    }
    path.write_text(json.dumps(summary))


def test_compare_reads_summaries_into_table1(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    _fake_summary(tmp_path / "a", "unet", 0.754, 5_900_000)
    _fake_summary(tmp_path / "b", "hlfnet", 0.788, 5_500_000)
    rows = compare_runs([tmp_path / "a", tmp_path / "b"])
    markdown = table_markdown(rows, paper="isic2017")
    assert "| Metric | Unet-28 (a) | HLE-Net (b) |" in markdown
    assert "| Jaccard | 0.754 (paper 0.754) | 0.788 (paper 0.788) |" in markdown
    assert "| Parameters | 5.90×10^6 | 5.50×10^6 |" in markdown
    lines = table_csv(rows).splitlines()
    assert lines[0] == "run,model,paper_name,level,cases,parameters,dice,jaccard,accuracy"
    assert lines[2].startswith("b,hlfnet,HLE-Net,original,600,5500000,")
    network = compare_runs([tmp_path / "a"], level="network")
    assert network[0].metrics["jaccard"] == pytest.approx(0.744)


def test_compare_errors(tmp_path: Path) -> None:
    (tmp_path / "not_evaluated").mkdir()
    with pytest.raises(FileNotFoundError, match=r"run `hlfnet evaluate .*not_evaluated --split test` first"):
        compare_runs([tmp_path / "not_evaluated"])
    with pytest.raises(FileNotFoundError, match="no such run folder"):
        compare_runs([tmp_path / "nothing"])
    _fake_summary(tmp_path / "not_evaluated", "unet", 0.7, 1)
    with pytest.raises(ValueError, match="no 'volume' scores"):
        compare_runs([tmp_path / "not_evaluated"], level="volume")
    summary_path(tmp_path / "not_evaluated").write_text("{}")
    with pytest.raises(ValueError, match="not an evaluation summary"):
        compare_runs([tmp_path / "not_evaluated"])


@pytest.mark.realdata
@pytest.mark.slow
def test_report_is_self_contained_and_renders(trained_isic_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(trained_isic_run, run, ignore=shutil.ignore_patterns("evaluation", "report.html"))
    path = write_report(run, split="test")
    page = path.read_text()
    assert (run / "evaluation" / "test" / "summary.json").is_file(), "the report evaluates a run first"
    # offline: nothing is loaded from anywhere, every picture is an embedded PNG
    assert not re.search(r"""(src|href)=['"](?!data:)""", page)
    uris = re.findall(r"src='data:image/png;base64,([^']+)'", page)
    assert len(uris) == 2 + 3  # curves, overlays, three Fig. 4 rows (best, median, worst)
    for uri in uris:
        assert base64.b64decode(uri)[:8] == b"\x89PNG\r\n\x1a\n"
    assert "LFE semantic-embedding maps" in page and "original (primary)" in page
    with pytest.raises(FileExistsError, match="already exists"):
        write_report(run, split="test")
    case = json.loads((run / "split.json").read_text())["test"][1]
    chosen = write_report(run, split="test", cases=[case], output=tmp_path / "chosen.html")
    assert f"chosen: {case}" in chosen.read_text()
    with pytest.raises(ValueError, match="unknown case id"):
        write_report(run, split="test", cases=["ISIC_1234567"], output=tmp_path / "x.html")

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("headless Chromium not installed: the HTML was checked structurally only")
    shot = tmp_path / "report.png"
    subprocess.run(
        [
            chromium,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--window-size=1200,1600",
            f"--screenshot={shot}",
            path.as_uri(),
        ],
        check=True,
        capture_output=True,
    )
    pixels = np.asarray(Image.open(shot).convert("RGB"))
    assert pixels.shape[:2] == (1600, 1200)
    # the embedded pictures were drawn: plenty of non-white, coloured pixels (jet maps, lesions)
    assert (pixels.std(axis=2) > 30).mean() > 0.02


def test_report_of_a_network_without_attention_maps(tmp_path: Path, isic_root: Path) -> None:
    data = {"format": "isic2017", "root": str(isic_root), "image_size": [32, 48], "cache_dir": str(tmp_path)}
    run = make_run(
        tmp_path / "u", data, name="unet", split={"train": [], "val": [], "test": ["ISIC_0000000"]}
    )
    page = write_report(run, split="test").read_text()
    assert "unet has no LFE or HFE modules" in page
    assert "no curves.png or metrics.csv" in page
    (run / "metrics.csv").write_text(
        "epoch,train_loss,val_loss,val_dice,lr\n0,0.6,0.5,0.6,0.01\n1,0.4,0.35,0.8,0.01\n"
    )
    page = write_report(run, split="test", overwrite=True).read_text()
    assert "drawn from metrics.csv" in page and page.count("data:image/png;base64,") == 2


def test_report_of_a_multiclass_run_names_and_colours_its_classes(tmp_path: Path) -> None:
    """Three classes stored 0/128/255 with names in the config; the head says class 2 everywhere, so every
    per-class score is known by hand: the nucleus is never predicted (Dice 0), the cytoplasm's Dice is
    2|T|/(|T| + N)."""
    import html as html_lib

    import torch

    from hlfnet.evaluation.palette import class_colour
    from hlfnet.models import create_model

    root = tmp_path / "cells"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    dices, jaccards = [], []
    for i in range(3):
        truth = np.zeros((40, 48), np.uint8)
        truth[4 + i : 20, 6 : 22 + i] = 1
        truth[18 : 36 - i, 20:44] = 2
        Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(root / "images" / f"c{i}.png")
        Image.fromarray(np.array([0, 128, 255], np.uint8)[truth], mode="L").save(root / "masks" / f"c{i}.png")
        t = int((truth == 2).sum())
        dices.append(2 * t / (t + truth.size))
        jaccards.append(t / truth.size)
    model = create_model("unet", in_channels=4, out_channels=3, base_channels=4, depth=2)
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.copy_(torch.tensor([0.0, 0.0, 8.0]))
    data = {
        "format": "folder",
        "root": str(root),
        "image_size": [32, 32],
        "in_channels": 4,
        "label_values": [0, 128, 255],
        "class_names": ["background", "nucleus", "cytoplasm"],
        "cache_dir": str(tmp_path / "cache"),
    }
    split = {"train": [], "val": [], "test": ["c0", "c1", "c2"]}
    run = make_run(tmp_path / "run", data, name="unet", out_channels=3, split=split, model=model)
    page = write_report(run, split="test").read_text()
    tables = re.findall(r"<table class='per-class' data-level='original'>(.*?)</table>", page, flags=re.S)
    assert len(tables) == 1
    rows = re.findall(r"<tr class='class-row' data-class='(\d)'><th>(.*?)</th>(.*?)</tr>", tables[0])
    assert [(k, re.sub(r"<[^>]+>", "", name)) for k, name, _ in rows] == [
        ("1", "1: nucleus"),
        ("2", "2: cytoplasm"),
    ]
    header = re.findall(r"<th>([^<]*)</th>", tables[0].split("</tr>")[0])[1:]
    cells = {k: dict(zip(header, re.findall(r"<td>([^<]*)</td>", body), strict=True)) for k, _, body in rows}
    assert float(cells["1"]["Dice"]) == 0.0 and float(cells["1"]["IoU (Jaccard)"]) == 0.0
    assert float(cells["2"]["Dice"]) == pytest.approx(np.mean(dices), abs=1e-4)
    assert float(cells["2"]["IoU (Jaccard)"]) == pytest.approx(np.mean(jaccards), abs=1e-4)
    assert {"HD95", "ASSD", "NSD"} <= set(header)
    assert float(cells["1"]["HD95"]) == pytest.approx(np.hypot(40, 48), abs=1e-3)  # missed: the diagonal
    # the overlays' legend: each class's name with its colour, distinct
    legend = html_lib.unescape(page.split("<span class='legend'>")[1].split("</span> Prediction")[0])
    assert "nucleus" in legend and "cytoplasm" in legend
    assert class_colour(1) in legend and class_colour(2) in legend and class_colour(1) != class_colour(2)
    assert "Unet" in page or "unet has no LFE or HFE modules" in page
