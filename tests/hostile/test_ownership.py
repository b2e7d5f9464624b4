"""Ownership: hlfnet replaces or deletes only what it wrote, of its own kind, one command per folder at a time.

Temporaries: only ``.<name>.hlfnet-<8>.tmp`` files whose target the folder's marker records are cleaned (never a
user's ``.thesis.20241201.tmp``, never a folder); a second command into a folder another one is writing is
refused before it changes anything; ``--overwrite`` never lets one command replace another command's file.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.hostile.conftest import Sentinel, digest_tree, expect_error, expect_ok, predict_args


def _user_temporaries(folder: Path, tagged: bool = True) -> dict[str, Path]:
    """What a user may well keep in a folder: files and folders named like old-style temporaries, and
    (``tagged``) one named like hlfnet's for a file the folder's marker does not list."""
    (folder / ".backup.20241201.tmp").mkdir(parents=True)
    (folder / ".backup.20241201.tmp" / "db.sqlite").write_bytes(b"SQLite format 3\0 rows")
    (folder / ".thesis.20241201.tmp").write_text("chapter 3")
    if tagged:
        (folder / ".notes.txt.hlfnet-abcd1234.tmp").write_text("tagged, but for no file hlfnet owns")
    return {p.name: p for p in folder.iterdir() if p.name.endswith(".tmp")}


# ------------------------------------------------------------------------------------------------ temporaries


@pytest.mark.parametrize("second", [["--overwrite"], []], ids=["overwrite", "resume-after-kill"])
def test_predict_keeps_users_files_named_like_temporaries(
    second: list[str], run: Path, images: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    expect_ok(capsys, predict_args(run, images, out))
    if not second:  # a kill after the marker said "running": the rerun cleans and finishes
        marker = json.loads((out / ".hlfnet-output.json").read_text())
        (out / ".hlfnet-output.json").write_text(json.dumps({**marker, "status": "running"}))
    kept = _user_temporaries(out)
    before = digest_tree(out / ".backup.20241201.tmp")
    ours = out / ".case_1.png.hlfnet-k1ll3d00.tmp"
    ours.write_bytes(b"\x89PNG half")
    expect_ok(capsys, predict_args(run, images, out, *second))
    assert all(p.exists() for p in kept.values()), sorted(p.name for p in kept.values() if not p.exists())
    assert digest_tree(out / ".backup.20241201.tmp") == before
    assert not ours.exists()  # hlfnet's own leftover goes


def test_predict_into_an_unmarked_folder_touches_no_temporaries(
    run: Path, images: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    _user_temporaries(out)
    (out / ".case_0.png.hlfnet-abcd1234.tmp").write_text("no marker: not known to be ours")
    sentinel = Sentinel(out)
    expect_ok(capsys, predict_args(run, images, out))
    after = digest_tree(out)
    assert {k: v for k, v in after.items() if k in sentinel.before} == sentinel.before


def test_resume_keeps_users_temporaries_in_the_run_folder(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # checkpoints/ is hlfnet's: a tagged temporary there is one of its own (a killed checkpoint write)
    kept = {**_user_temporaries(run), **_user_temporaries(run / "checkpoints", tagged=False)}
    ours = run / "checkpoints" / ".last.ckpt.hlfnet-x1y2z3w4.tmp"
    ours.write_bytes(b"half a checkpoint")
    expect_ok(capsys, ["train", "--resume", str(run), "--set", "train.max_epochs=3"])
    assert all(p.exists() for p in kept.values())
    assert not ours.exists()


def test_overwrite_refuses_a_folder_holding_a_users_temporary(
    run: Path, tmp_path: Path, cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.hostile.conftest import tiny_args

    (run / ".thesis.20241201.tmp").write_text("chapter 3")
    sentinel = Sentinel(tmp_path)
    argv = ["train", "--config", "synthetic", "--run-dir", str(run), *tiny_args(cache), "--overwrite"]
    expect_error(capsys, argv, ".thesis.20241201.tmp", "not written by hlfnet")
    sentinel.unchanged()


def test_long_input_names_fit_their_temporaries(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.hostile.conftest import write_png

    name = (
        "c" * 240 + ".png"
    )  # 244 bytes: its temporary would pass NAME_MAX (255) if the name were kept whole
    write_png(tmp_path / "imgs" / name, (20, 24, 3))
    out = tmp_path / "out"
    expect_ok(capsys, predict_args(run, tmp_path / "imgs", out))
    assert (out / name).is_file()
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


# ------------------------------------------------------------------------------------------------ locks


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[callable]:
    """Start a process that holds an output folder's lock (as a running predict or train does)."""
    started: list[subprocess.Popen[str]] = []

    def hold(folder: Path) -> subprocess.Popen[str]:
        code = (
            "import sys, time\n"
            "from hlfnet.atomic import folder_lock\n"
            "with folder_lock(sys.argv[1]):\n"
            "    print('held', flush=True)\n"
            "    time.sleep(600)\n"
        )
        process = subprocess.Popen(
            [sys.executable, "-c", code, str(folder)], stdout=subprocess.PIPE, text=True
        )
        started.append(process)
        assert process.stdout is not None and process.stdout.readline().strip() == "held"
        return process

    yield hold
    for process in started:
        process.kill()
        process.wait()


def test_second_predict_into_a_busy_folder_changes_nothing(
    holder, run: Path, images: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    expect_ok(capsys, predict_args(run, images, out))
    marker = json.loads((out / ".hlfnet-output.json").read_text())
    (out / ".hlfnet-output.json").write_text(json.dumps({**marker, "status": "running"}))
    # the first predict's work in progress: a temporary it is writing now
    (out / ".case_2.png.hlfnet-inflight.tmp").write_bytes(b"\x89PNG being written")
    process = holder(out)
    sentinel = Sentinel(tmp_path)
    for flags in ([], ["--overwrite"]):
        expect_error(capsys, predict_args(run, images, out, *flags), str(out), f"pid {process.pid}")
    sentinel.unchanged()


def test_resume_of_a_run_that_is_training_is_refused(
    holder, run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    process = holder(run)
    sentinel = Sentinel(tmp_path)
    expect_error(
        capsys, ["train", "--resume", str(run), "--set", "train.max_epochs=3"], str(run), f"pid {process.pid}"
    )
    sentinel.unchanged()


def test_a_refused_predict_leaves_no_lock_behind(
    run: Path, images: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.hostile.conftest import write_png

    out = tmp_path / "out"
    write_png(out / "case_1.png", (5, 5), 7)  # a user's file: refused
    sentinel = Sentinel(tmp_path)
    expect_error(capsys, predict_args(run, images, out, "--overwrite"), "case_1.png")
    sentinel.unchanged()
    assert sorted(p.name for p in out.iterdir()) == ["case_1.png"]


# ------------------------------------------------------------------------------------------------ kinds


@pytest.mark.parametrize(
    ("command", "target"),
    [
        (["export", "--format", "torchscript"], "model.safetensors"),
        (["export", "--format", "torchscript"], "model.json"),
        (["report"], "config.yaml"),
        (["report"], "split.json"),
    ],
    ids=["export-over-weights", "export-over-model-json", "report-over-config", "report-over-split"],
)
def test_overwrite_never_replaces_another_commands_file_in_a_run(
    command: list[str], target: str, run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sentinel = Sentinel(tmp_path)
    argv = [command[0], str(run), *command[1:], "--output", str(run / target), "--overwrite"]
    expect_error(capsys, argv, target, "another hlfnet command")
    sentinel.unchanged()


def test_score_never_replaces_an_evaluation(
    run: Path, images: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    expect_ok(capsys, ["evaluate", str(run), "--split", "test"])
    evaluation = run / "evaluation" / "test"
    assert (evaluation / "summary.json").is_file()
    preds = tmp_path / "preds"
    expect_ok(capsys, predict_args(run, images, preds))
    sentinel = Sentinel(tmp_path)
    argv = ["score", "--pred", str(preds), "--gt", str(preds), "--output", str(evaluation)]
    expect_error(capsys, argv, str(evaluation), "another hlfnet command (evaluation)")
    sentinel.unchanged()


def test_score_replaces_its_own_scores(
    run: Path, images: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    preds = tmp_path / "preds"
    expect_ok(capsys, predict_args(run, images, preds))
    argv = ["score", "--pred", str(preds), "--gt", str(preds), "--output", str(tmp_path / "scores")]
    expect_ok(capsys, argv)
    expect_ok(capsys, argv)  # re-scoring is its job


# ------------------------------------------------------------------------------------------------ reproduce


def _isic_folder(tmp_path: Path) -> Path:
    data = tmp_path / "isic"
    data.mkdir()
    return data


@pytest.mark.parametrize("entry", ["table1.md", "unet.log"])
def test_reproduce_never_replaces_a_users_file_in_its_runs_folder(
    entry: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / entry).write_text("# my own table\n")
    sentinel = Sentinel(tmp_path)
    argv = ["reproduce", "--protocol", "cpu", "--data", str(_isic_folder(tmp_path)), "--runs-dir", str(runs)]
    expect_error(capsys, [*argv, "--networks", "unet"], entry, "not written by hlfnet")
    sentinel.unchanged()


def test_reproduce_never_appends_through_a_linked_log(
    tmp_path: Path, sentinel: Sentinel, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "unet.log").symlink_to(tmp_path / "bystander" / "notes.txt")
    sentinel = Sentinel(tmp_path)
    argv = ["reproduce", "--protocol", "cpu", "--data", str(_isic_folder(tmp_path)), "--runs-dir", str(runs)]
    expect_error(capsys, [*argv, "--networks", "unet"], "unet.log", "symbolic link")
    sentinel.unchanged()


def test_a_failing_network_in_reproduce_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import hlfnet.engine.reproduce as reproduce

    runs = tmp_path / "runs"
    failing = [sys.executable, "-c", "import sys; print('CUDA error: out of memory'); sys.exit(3)"]
    plan = reproduce.ReproducePlan("cpu", runs, ("unet",), {"unet": failing}, concurrent=False)
    monkeypatch.setattr(reproduce, "plan_reproduction", lambda *args, **kwargs: plan)
    argv = ["reproduce", "--protocol", "cpu", "--data", str(_isic_folder(tmp_path)), "--runs-dir", str(runs)]
    expect_error(capsys, argv, str(runs / "unet.log"), "exit status 3")
    assert "out of memory" in (runs / "unet.log").read_text()


# ------------------------------------------------------------------------------------------------ pretrained


@pytest.fixture
def evaluated(run: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    expect_ok(capsys, ["evaluate", str(run), "--split", "test"])
    return run


def _publish(run: Path, folder: Path, name: str, *extra: str) -> list[str]:
    return [
        "pretrained",
        "publish",
        str(run),
        "--name",
        name,
        "--protocol",
        "tiny",
        "--folder",
        str(folder),
        *extra,
    ]


@pytest.mark.parametrize(
    "users",
    [{"manifest.json": '{"mine": true}\n'}, {"x.safetensors": "my weights"}, {"x.split.json": "{}"}],
    ids=["manifest", "weights", "split"],
)
def test_publish_never_replaces_a_users_file(
    users: dict[str, str], evaluated: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "store"
    folder.mkdir()
    for name, text in users.items():
        (folder / name).write_text(text)
    sentinel = Sentinel(tmp_path)
    for flags in ([], ["--replace"]):
        expect_error(
            capsys, _publish(evaluated, folder, "x", *flags), next(iter(users)), "not written by hlfnet"
        )
    sentinel.unchanged()


def test_publish_keeps_the_manifests_other_keys_and_entries(
    evaluated: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "store"
    expect_ok(capsys, _publish(evaluated, folder, "first"))
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps({**manifest, "site": "radiology, room 4"}))
    expect_ok(capsys, _publish(evaluated, folder, "second"))
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["site"] == "radiology, room 4"
    assert sorted(manifest["models"]) == ["first", "second"]
    expect_error(capsys, _publish(evaluated, folder, "first"), "first", "replace")
