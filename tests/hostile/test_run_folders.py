"""Run folders: ``--overwrite`` replaces only hlfnet's files, never follows links; ``--resume`` refuses what it
cannot honour; killed writes leave nothing behind."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.hostile.conftest import Sentinel, expect_error, expect_ok, tiny_args


def _train(run: Path, cache: Path, *extra: str) -> list[str]:
    return ["train", "--config", "synthetic", "--run-dir", str(run), *tiny_args(cache, *extra)]


def _project_with_src(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)
    (project / "src" / "main.py").write_text("print('precious')")
    (project / "config.yaml").write_text("x: 1\n")
    return project


def _empty_checkpoints_plus_data(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "thesis.tex").write_text("years of work")
    return folder


def _user_file_in_checkpoints(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "config.yaml").write_text("x: 1\n")
    (folder / "checkpoints" / "my-model.pth").write_text("weights from elsewhere")
    return folder


PROJECTS = {
    "config-plus-src": (_project_with_src, "src"),
    "empty-checkpoints-plus-file": (_empty_checkpoints_plus_data, "thesis.tex"),
    "foreign-checkpoint": (_user_file_in_checkpoints, "my-model.pth"),
}


@pytest.mark.parametrize("case", sorted(PROJECTS))
def test_overwrite_never_deletes_foreign_files(
    case: str, tmp_path: Path, cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make, needle = PROJECTS[case]
    folder = make(tmp_path)
    sentinel = Sentinel(tmp_path)
    expect_error(capsys, [*_train(folder, cache), "--overwrite"], needle, "not written by hlfnet")
    sentinel.unchanged()


def test_overwrite_of_own_run_with_a_user_file_added(
    run: Path, tmp_path: Path, cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (run / "notes.txt").write_text("mine")
    sentinel = Sentinel(tmp_path)
    expect_error(capsys, [*_train(run, cache), "--overwrite"], "notes.txt")
    sentinel.unchanged()


def test_overwrite_through_a_symlinked_run_dir(
    run: Path, tmp_path: Path, cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    link = tmp_path / "link"
    link.symlink_to(run)
    sentinel = Sentinel(tmp_path)
    expect_error(capsys, [*_train(link, cache), "--overwrite"], "symbolic link")
    sentinel.unchanged()


def test_existing_run_without_flag(
    run: Path, tmp_path: Path, cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sentinel = Sentinel(tmp_path)
    expect_error(capsys, _train(run, cache), str(run), "--overwrite")
    sentinel.unchanged()


def test_run_dir_is_a_file(tmp_path: Path, cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "file"
    target.write_text("data")
    sentinel = Sentinel(tmp_path)
    expect_error(capsys, [*_train(target, cache), "--overwrite"], str(target))
    sentinel.unchanged()


def test_run_dir_below_a_file(tmp_path: Path, cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "file").write_text("data")
    sentinel = Sentinel(tmp_path)
    expect_error(capsys, _train(tmp_path / "file" / "run", cache), str(tmp_path / "file"))
    sentinel.unchanged()


def test_overwrite_of_own_run_succeeds_and_marks_it(
    run: Path, tmp_path: Path, cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (run / "checkpoints" / ".last.ckpt.hlfnet-abcd1234.tmp").write_bytes(b"half")
    expect_ok(capsys, [*_train(run, cache, "train.max_epochs=1"), "--overwrite"])
    marker = json.loads((run / ".hlfnet-output.json").read_text())
    assert marker["kind"] == "run" and "config_sha256" in marker
    assert not list(run.rglob("*.tmp"))


# ---------------------------------------------------------------------------------------------------- resume


def _edit_config(run: Path, section: str, key: str, value: object) -> None:
    import yaml

    config = yaml.safe_load((run / "config.yaml").read_text())
    config[section][key] = value
    (run / "config.yaml").write_text(yaml.safe_dump(config))


EDITS = [
    ("train", "lr", 0.5, "train.lr"),
    ("data", "image_size", [48, 48], "data.image_size"),
    ("model", "name", "unet", "model.name"),
    ("model", "base_channels", 8, "model.base_channels"),
    ("train", "batch_size", 2, "train.batch_size"),
]


@pytest.mark.parametrize(("section", "key", "value", "needle"), EDITS, ids=[e[3] for e in EDITS])
def test_resume_refuses_edits_it_cannot_honour(
    section: str,
    key: str,
    value: object,
    needle: str,
    run: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _edit_config(run, section, key, value)
    sentinel = Sentinel(tmp_path)
    expect_error(capsys, ["train", "--resume", str(run), "--set", "train.max_epochs=3"], needle)
    sentinel.unchanged()


BROKEN_CHECKPOINTS = {
    "empty": b"",
    "truncated": None,
    "garbage": os.urandom(4096),
    "pickle-bomb": b"\x80\x04\x95\x1f\x00\x00\x00\x00\x00\x00\x00\x8c\x02os\x8c\x06system\x93\x8c\x05touch\x85R.",
}


@pytest.mark.parametrize("case", sorted(BROKEN_CHECKPOINTS))
def test_resume_from_a_broken_last_checkpoint(
    case: str, run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    last = run / "checkpoints" / "last.ckpt"
    data = BROKEN_CHECKPOINTS[case]
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2] if data is None else data)
    sentinel = Sentinel(tmp_path)
    expect_error(capsys, ["train", "--resume", str(run), "--set", "train.max_epochs=3"], "last.ckpt")
    sentinel.unchanged()


def test_resume_without_last_checkpoint(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (run / "checkpoints" / "last.ckpt").unlink()
    expect_error(capsys, ["train", "--resume", str(run)], "last.ckpt")


def test_resume_below_the_epochs_done(run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sentinel = Sentinel(tmp_path)
    expect_error(capsys, ["train", "--resume", str(run), "--set", "train.max_epochs=1"], "train.max_epochs")
    sentinel.unchanged()


@pytest.mark.parametrize(
    ("argv_tail", "needle"),
    [
        (["--set", "train.lr=1"], "train.lr"),
        (["--set", "train.max_epochs=0"], "train.max_epochs"),
        (["--overwrite"], "--overwrite"),
        (["--config", "synthetic"], "--config"),
    ],
    ids=["lr", "zero-epochs", "overwrite", "config"],
)
def test_resume_with_bad_arguments(
    argv_tail: list[str], needle: str, run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sentinel = Sentinel(tmp_path)
    expect_error(capsys, ["train", "--resume", str(run), *argv_tail], needle)
    sentinel.unchanged()


def test_resume_of_a_missing_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    expect_error(capsys, ["train", "--resume", str(tmp_path / "nope")], "nope")


@pytest.mark.parametrize(
    "content",
    ["model: [unclosed\n", "- a list\n", "a: &a [1]\n" + "".join(f"k{i}: *a\n" for i in range(150))],
)
def test_resume_with_a_broken_config_yaml(
    content: str, run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (run / "config.yaml").write_text(content)
    expect_error(capsys, ["train", "--resume", str(run), "--set", "train.max_epochs=3"], "config.yaml")


def test_resume_cleans_temporaries_and_continues(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    leftover = run / "checkpoints" / ".last.ckpt.hlfnet-x1y2z3w4.tmp"
    leftover.write_bytes(b"killed mid-write")
    expect_ok(capsys, ["train", "--resume", str(run), "--set", "train.max_epochs=3"])
    assert not leftover.exists()
    rows = (run / "metrics.csv").read_text().strip().splitlines()
    assert len(rows) == 4  # header + 3 epochs


def test_diverging_training_stops_with_a_clear_error(
    tmp_path: Path, cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    line = expect_error(capsys, _train(run, cache, "train.lr=1e30", "train.max_epochs=3"), "train.lr")
    assert "diverged" in line or "NaN" in line
    weights = run / "model.safetensors"
    if weights.exists():
        from safetensors.torch import load_file

        assert all(bool(t.isfinite().all()) for t in load_file(str(weights)).values())
