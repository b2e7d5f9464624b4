"""evaluate / compare / report / export: outputs only where asked, never over foreign files or through links;
stale evaluations refused (compare) or re-scored (report); summary strings escaped in the report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.hostile.conftest import Sentinel, expect_error, expect_ok


def _evaluate(run: Path, *extra: str) -> list[str]:
    return ["evaluate", str(run), "--split", "test", "--no-progress", *extra]


def test_evaluate_output_with_a_foreign_summary(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "scores"
    out.mkdir()
    (out / "summary.json").write_text('{"mine": true}')
    sentinel = Sentinel(tmp_path)
    expect_error(capsys, _evaluate(run, "--output", str(out)), "summary.json", "not written by hlfnet")
    sentinel.unchanged(run / "evaluation")


def test_evaluate_output_below_a_file(run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "afile").write_text("x")
    sentinel = Sentinel(tmp_path)
    expect_error(capsys, _evaluate(run, "--output", str(tmp_path / "afile" / "scores")), "afile")
    sentinel.unchanged(run / "evaluation")


def test_evaluate_twice_replaces_its_own_files(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "scores"
    expect_ok(capsys, _evaluate(run, "--output", str(out)))
    expect_ok(capsys, _evaluate(run, "--output", str(out)))
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["settings"]["weights_sha256"]) == 64


@pytest.mark.parametrize("device", ["nonsense", "cuda:99"])
def test_evaluate_bad_device(
    device: str, run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sentinel = Sentinel(tmp_path)
    expect_error(capsys, _evaluate(run, "--device", device), "--device")
    sentinel.unchanged()


def _retrain_weights(run: Path) -> None:
    """What a resume for more epochs does to the weights: model.safetensors changes."""
    import torch

    from hlfnet.models import load_model, save_model

    model, info = load_model(run / "model.safetensors")
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01)
    save_model(
        model, run / "model.safetensors", extra={k: v for k, v in info.items() if k not in ("name", "kwargs")}
    )


def test_compare_refuses_a_stale_evaluation(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    expect_ok(capsys, _evaluate(run))
    _retrain_weights(run)
    sentinel = Sentinel(tmp_path)
    expect_error(capsys, ["compare", str(run)], "stale", "hlfnet evaluate")
    sentinel.unchanged()


def test_compare_of_an_unevaluated_run_names_the_file(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    expect_error(capsys, ["compare", str(run)], "summary.json", "hlfnet evaluate")


def test_compare_output_never_replaces_a_foreign_table(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    expect_ok(capsys, _evaluate(run))
    out = tmp_path / "tables"
    out.mkdir()
    (out / "table1.md").write_text("my own table")
    sentinel = Sentinel(tmp_path)
    expect_error(capsys, ["compare", str(run), "--output", str(out)], "table1.md")
    sentinel.unchanged()


def test_report_rescores_a_stale_evaluation(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    expect_ok(capsys, _evaluate(run))
    _retrain_weights(run)
    expect_ok(capsys, ["report", str(run), "--output", str(tmp_path / "r.html")])
    from hlfnet.evaluation.evaluate import file_sha256

    summary = json.loads((run / "evaluation" / "test" / "summary.json").read_text())
    assert summary["settings"]["weights_sha256"] == file_sha256(run / "model.safetensors")


def test_report_escapes_summary_strings(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    expect_ok(capsys, _evaluate(run))
    path = run / "evaluation" / "test" / "summary.json"
    summary = json.loads(path.read_text())
    summary["counts"]["original"] = "<script>alert(1)</script>"
    summary["levels"]["original"]["dice"] = "<img src=x onerror=alert(2)>"
    path.write_text(json.dumps(summary))
    expect_ok(capsys, ["report", str(run), "--output", str(tmp_path / "r.html")])
    page = (tmp_path / "r.html").read_text()
    assert "<script>alert" not in page and "<img src=x" not in page


def _report_target(kind: str, tmp_path: Path) -> tuple[Path, str]:
    if kind == "folder":
        (tmp_path / "dir").mkdir()
        return tmp_path / "dir", "folder"
    if kind == "symlink":
        (tmp_path / "link.html").symlink_to(tmp_path / "bystander" / "notes.txt")
        return tmp_path / "link.html", "symbolic link"
    if kind == "foreign":
        (tmp_path / "mine.html").write_text("<p>my page</p>")
        return tmp_path / "mine.html", "not written by hlfnet"
    if kind == "below-file":
        (tmp_path / "afile").write_text("x")
        return tmp_path / "afile" / "r.html", "afile"
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["folder", "symlink", "foreign", "below-file"])
@pytest.mark.parametrize("command", ["report", "export"])
def test_report_and_export_output_policy(
    command: str, kind: str, run: Path, tmp_path: Path, sentinel: Sentinel, capsys: pytest.CaptureFixture[str]
) -> None:
    if command == "export":
        pytest.importorskip("torch.jit")
    target, needle = _report_target(kind, tmp_path)
    sentinel = Sentinel(tmp_path)
    argv = [command, str(run), "--output", str(target), "--overwrite"]
    if command == "export":
        argv += ["--format", "torchscript"]
    expect_error(capsys, argv, needle)
    sentinel.unchanged(run / "evaluation")


def test_report_of_a_missing_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    expect_error(capsys, ["report", str(tmp_path / "nope")], "nope")


def test_export_twice_needs_overwrite_then_replaces_its_own(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "model.torchscript.pt"
    expect_ok(capsys, ["export", str(run), "--format", "torchscript", "--output", str(out)])
    expect_error(capsys, ["export", str(run), "--format", "torchscript", "--output", str(out)], "--overwrite")
    expect_ok(capsys, ["export", str(run), "--format", "torchscript", "--output", str(out), "--overwrite"])
