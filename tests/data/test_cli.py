"""``hlfnet data check|prepare|synthetic|download`` through the real entry point."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from hlfnet.cli import main
from tests.data.helpers import write_folder, write_msd


def test_check_passes_a_clean_folder(tmp_path, capsys):
    root = write_folder(tmp_path / "f", n=3)
    assert main(["data", "check", str(root)]) == 0
    out = capsys.readouterr().out
    assert "format:   folder" in out and "pairs:    3" in out and "no problems found" in out
    assert "32×24 ×3" in out and "raw values [0, 255]" in out


def test_check_lists_every_problem_and_fails(tmp_path, capsys):
    root = write_folder(tmp_path / "f", n=5)
    Image.fromarray(np.array([[0, 3], [252, 255]], np.uint8)).resize((32, 24), Image.NEAREST).save(
        root / "masks" / "case0.png"
    )
    Image.new("L", (10, 10)).save(root / "masks" / "case1.png")
    (root / "images" / "case2.png").write_bytes(b"\x89PNG broken")
    (root / "masks" / "case4.png").unlink()
    assert main(["data", "check", str(root), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    problems = "\n".join(report["problems"])
    assert not report["ok"] and len(report["problems"]) == 4
    assert "case0.png: mask values [3, 252]" in problems
    assert "case1.png: mask size 10×10" in problems
    assert "case2.png: unreadable" in problems
    assert "case4.png: image without mask" in problems


def test_check_volumes_and_forced_format(tmp_path, capsys):
    root = write_msd(tmp_path / "m", n=2)
    assert main(["data", "check", str(root)]) == 0
    assert "format:   msd" in capsys.readouterr().out
    assert main(["data", "check", str(root), "--format", "folder"]) == 1
    assert main(["data", "check", str(tmp_path / "missing")]) == 2
    assert "missing: not a folder" in capsys.readouterr().err


def test_prepare_builds_every_split(tmp_path, capsys):
    root = write_folder(tmp_path / "f", n=10)
    code = main(
        [
            "data",
            "prepare",
            "--format",
            "folder",
            "--root",
            str(root),
            "--cache-dir",
            str(tmp_path / "c"),
            "--image-size",
            "16",
            "16",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "split: train 7, val 1, test 2" in out and "(4, 16, 16) uint8" in out
    config = tmp_path / "cfg.yaml"
    config.write_text(f"data:\n  format: folder\n  root: {root}\n  bogus: 1\n")
    assert main(["data", "prepare", "--config", str(config)]) == 2
    assert "bogus" in capsys.readouterr().err


def test_synthetic_export_is_a_valid_folder(tmp_path, capsys):
    out = tmp_path / "syn"
    assert main(["data", "synthetic", "--out", str(out), "--count", "3", "--image-size", "32", "48"]) == 0
    assert main(["data", "check", str(out)]) == 0
    assert "pairs:    3" in capsys.readouterr().out
