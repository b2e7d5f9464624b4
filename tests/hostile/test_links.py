"""One symlink policy for every writer, Lightning's loggers and checkpoints and the cache included: a link
inside an output, run or cache folder is refused, never written through."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.hostile.conftest import Sentinel, expect_error, tiny_args, write_png


def _resume(run: Path) -> list[str]:
    return ["train", "--resume", str(run), "--set", "train.max_epochs=3"]


@pytest.mark.parametrize("folder", ["checkpoints", "logs"])
def test_resume_never_writes_through_a_linked_lightning_folder(
    folder: str, run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(run / folder, elsewhere)  # the link's target holds what resume needs: it would work
    shutil.rmtree(run / folder)
    (run / folder).symlink_to(elsewhere)
    sentinel = Sentinel(tmp_path)
    expect_error(capsys, _resume(run), str(run / folder), "symbolic link")
    sentinel.unchanged()


@pytest.mark.parametrize("inner", ["logs/csv", "logs/csv/version_0/metrics.csv", "checkpoints/last.ckpt"])
def test_resume_refuses_a_link_deep_inside_the_lightning_folders(
    inner: str, run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = run / inner
    elsewhere = tmp_path / "elsewhere"
    if target.is_dir():
        shutil.copytree(target, elsewhere)
        shutil.rmtree(target)
    else:
        shutil.copy2(target, elsewhere)
        target.unlink()
    target.symlink_to(elsewhere)
    sentinel = Sentinel(tmp_path)
    expect_error(capsys, _resume(run), "symbolic link")
    sentinel.unchanged()


def _folder_dataset(root: Path) -> Path:
    for i in range(8):
        write_png(root / "images" / f"c{i}.png", (16, 16, 3), 100 + i)
        write_png(root / "masks" / f"c{i}.png", (16, 16), 0)
    return root


@pytest.mark.parametrize("sub", ["arrays", "splits"])
def test_cache_sub_folders_are_never_written_through(
    sub: str, tmp_path: Path, sentinel: Sentinel, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _folder_dataset(tmp_path / "data")
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / sub).symlink_to(tmp_path / "bystander")
    sentinel = Sentinel(tmp_path)
    argv = [
        "train", "--config", "synthetic", "--run-dir", str(tmp_path / "run"),
        *tiny_args(cache, "data.format=folder", f"data.root={root}", "data.in_channels=3"),
    ]  # fmt: skip
    expect_error(capsys, argv, str(cache / sub), "symbolic link")
    sentinel.unchanged(cache)  # the link's target is checked; the cache may have its split file
    assert not (tmp_path / "run").exists()


def test_lock_file_that_is_a_link_is_refused(
    run: Path, images: Path, tmp_path: Path, sentinel: Sentinel, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / ".hlfnet-lock").symlink_to(tmp_path / "bystander" / "notes.txt")
    sentinel = Sentinel(tmp_path)
    argv = ["predict", "--model", str(run), "--input", str(images), "--output", str(out), "--no-progress"]
    expect_error(capsys, argv, ".hlfnet-lock", "symbolic link")
    sentinel.unchanged()
