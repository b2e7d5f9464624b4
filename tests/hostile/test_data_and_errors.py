"""``hlfnet data`` with hostile folders, and the error policy itself (user errors vs bugs, ``-v``)."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import numpy as np
import pytest

from hlfnet.cli import main
from tests.hostile.conftest import Sentinel, expect_error, expect_ok, save_nifti, tiny_args, write_png


def _folder_dataset(root: Path, shapes: list[tuple[int, ...]]) -> Path:
    for i, shape in enumerate(shapes):
        write_png(root / "images" / f"c{i}.png", shape, 100)
        write_png(root / "masks" / f"c{i}.png", shape[:2], 0)
    return root


@pytest.mark.parametrize("limit", ["0", "-3"])
def test_check_limit_must_be_positive(limit: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _folder_dataset(tmp_path / "d", [(16, 16, 3)] * 2)
    expect_error(capsys, ["data", "check", str(root), "--limit", limit], "--limit")


def test_check_finds_mixed_grey_and_colour(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _folder_dataset(tmp_path / "d", [(16, 16, 3), (16, 16), (16, 16, 3)])
    assert main(["data", "check", str(root)]) == 1
    out, _ = capsys.readouterr()
    assert "different channel counts" in out


def test_train_refuses_mixed_channels_before_any_run_folder(
    tmp_path: Path, cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _folder_dataset(tmp_path / "d", [(16, 16, 3), (16, 16)] * 4)
    run = tmp_path / "run"
    argv = [
        "train", "--config", "synthetic", "--run-dir", str(run),
        *tiny_args(cache, "data.format=folder", f"data.root={root}", "data.in_channels=null"),
    ]  # fmt: skip
    expect_error(capsys, argv, "channel counts")
    assert not run.exists()


def _nifti(path: Path, data: np.ndarray, affine: np.ndarray | None = None) -> None:
    import nibabel as nib

    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, np.eye(4) if affine is None else affine), str(path))


@pytest.mark.parametrize("kind", ["2-D", "zero-affine"])
def test_check_reports_unusable_nifti(kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "vols"
    shape = (16, 16) if kind == "2-D" else (16, 16, 4)
    for sub in ("images", "labels"):
        save_nifti(root / sub / "a.nii.gz", np.zeros(shape, np.float32), zero_affine=kind != "2-D")
    assert main(["data", "check", str(root), "--format", "nifti"]) == 1
    out, _ = capsys.readouterr()
    assert "a.nii.gz" in out


def test_check_missing_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    expect_error(capsys, ["data", "check", str(tmp_path / "nope")], "nope")


def test_check_reports_an_image_over_the_pixel_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _folder_dataset(tmp_path / "d", [(16, 16, 3)] * 2)
    monkeypatch.setenv("HLFNET_MAX_IMAGE_PIXELS", "100")
    assert main(["data", "check", str(root)]) == 1
    out, _ = capsys.readouterr()
    assert "HLFNET_MAX_IMAGE_PIXELS" in out


def test_bad_limit_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _folder_dataset(tmp_path / "d", [(16, 16, 3)] * 2)
    monkeypatch.setenv("HLFNET_MAX_IMAGE_PIXELS", "lots")
    expect_error(
        capsys, ["data", "prepare", "--format", "folder", "--root", str(root)], "HLFNET_MAX_IMAGE_PIXELS"
    )


MSD_ENTRIES = {
    "null-entry": ([None], "entry 0"),
    "null-paths": ([{"image": None, "label": None}], "entry 0"),
    "outside-root": ([{"image": "../../etc/passwd", "label": "labelsTr/a.nii.gz"}], "outside"),
    "absolute": ([{"image": "/etc/hostname", "label": "labelsTr/a.nii.gz"}], "outside"),
    "not-a-list": ({"a": 1}, "training"),
}


@pytest.mark.parametrize("case", sorted(MSD_ENTRIES))
def test_bad_dataset_json(case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    entries, needle = MSD_ENTRIES[case]
    root = tmp_path / "Task09_Spleen"
    root.mkdir()
    (root / "dataset.json").write_text(json.dumps({"training": entries}))
    sentinel = Sentinel(tmp_path)
    expect_error(
        capsys,
        ["data", "prepare", "--format", "msd", "--root", str(root), "--cache-dir", str(tmp_path / "c")],
        needle,
    )
    sentinel.unchanged(tmp_path / "c")


def test_synthetic_never_writes_into_a_real_dataset(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _folder_dataset(tmp_path / "real", [(16, 16, 3)] * 2)
    sentinel = Sentinel(tmp_path)
    expect_error(
        capsys, ["data", "synthetic", "--out", str(root), "--count", "2", "--image-size", "16", "16"], "real"
    )
    sentinel.unchanged()


def test_synthetic_twice_into_its_own_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "syn"
    argv = ["data", "synthetic", "--out", str(out), "--count", "2", "--image-size", "16", "16"]
    expect_ok(capsys, argv)
    expect_ok(capsys, argv)


@pytest.mark.parametrize(
    ("size", "needle"),
    [(["100000", "100000"], "image_size"), (["4", "4"], "image_size")],
    ids=["huge", "tiny"],
)
def test_prepare_bad_image_size(
    size: list[str], needle: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _folder_dataset(tmp_path / "d", [(16, 16, 3)] * 2)
    expect_error(
        capsys, ["data", "prepare", "--format", "folder", "--root", str(root), "--image-size", *size], needle
    )


@pytest.mark.parametrize(
    ("code", "needle"),
    [(errno.EROFS, "read-only"), (errno.ENOSPC, "no space"), (errno.ENOTDIR, "not a folder")],
)
def test_cache_folder_os_errors(
    code: int,
    needle: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import tempfile

    root = _folder_dataset(tmp_path / "d", [(16, 16, 3)] * 4)
    cache = tmp_path / "cache"

    def refuse(*args: object, **kwargs: object) -> str:
        raise OSError(code, os.strerror(code), str(cache))

    monkeypatch.setattr(tempfile, "mkdtemp", refuse)
    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    argv = ["data", "prepare", "--format", "folder", "--root", str(root), "--cache-dir", str(cache)]
    expect_error(capsys, argv, needle, "cache")


# ---------------------------------------------------------------------------------------------------- the policy


def test_an_internal_bug_keeps_its_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import hlfnet.models.cli as models_cli

    def boom(args: object) -> int:
        return {}["not a user error"]  # a KeyError from a bug, not a deliberate raise

    monkeypatch.setattr(models_cli, "_list", boom, raising=False)
    parser_handler = "hlfnet.models.cli"
    assert parser_handler
    from hlfnet import cli

    real = cli.build_parser

    def patched() -> object:
        parser = real()
        for action in parser._subparsers._group_actions:  # type: ignore[union-attr]
            action.choices["models"].set_defaults(handler=lambda args: [][1])
        return parser

    monkeypatch.setattr(cli, "build_parser", patched)
    assert main(["models"]) == 1
    _, err = capsys.readouterr()
    assert "Traceback" in err and "bug in hlfnet" in err and "IndexError" in err


def test_verbose_shows_the_traceback_of_a_user_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["-v", "data", "check", str(tmp_path / "nope")]) == 2
    _, err = capsys.readouterr()
    assert "Traceback" in err and ": error: " in err


def test_interrupt_is_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from hlfnet import cli

    real = cli.build_parser

    def patched() -> object:
        parser = real()

        def interrupted(args: object) -> int:
            raise KeyboardInterrupt

        for action in parser._subparsers._group_actions:  # type: ignore[union-attr]
            action.choices["models"].set_defaults(handler=interrupted)
        return parser

    monkeypatch.setattr(cli, "build_parser", patched)
    assert main(["models"]) == 130
    _, err = capsys.readouterr()
    assert "Traceback" not in err and "interrupted" in err


@pytest.mark.parametrize("damage", ["images.npy", "meta.json", "masks.npy"])
def test_damaged_cache_entry_is_rebuilt(
    damage: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _folder_dataset(tmp_path / "d", [(16, 16, 3)] * 4)
    cache = tmp_path / "cache"
    argv = ["data", "prepare", "--format", "folder", "--root", str(root), "--cache-dir", str(cache)]
    expect_ok(capsys, argv)
    for entry in (cache / "arrays").iterdir():
        (entry / damage).write_bytes(b"\x93NUMPY garbage" if damage.endswith(".npy") else b"{not json")
    sentinel = Sentinel(tmp_path)
    expect_ok(capsys, argv)
    sentinel.unchanged(cache)


@pytest.mark.parametrize(("bug", "kind"), [("{}['key']", "KeyError"), ("int('x')", "ValueError")])
def test_a_bug_inside_hlfnet_that_raises_a_user_error_type_keeps_its_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], bug: str, kind: str
) -> None:
    """A KeyError or ValueError raised by a lookup or conversion in hlfnet's code (not by a ``raise``) is a bug."""
    from hlfnet import cli

    namespace: dict[str, object] = {}
    # The handler's code claims a file of the hlfnet package, as a bug in hlfnet's own code would.
    exec(compile(f"def handler(args):\n    return {bug}\n", cli.__file__, "exec"), namespace)
    real = cli.build_parser

    def patched() -> object:
        parser = real()
        for action in parser._subparsers._group_actions:  # type: ignore[union-attr]
            action.choices["models"].set_defaults(handler=namespace["handler"])
        return parser

    monkeypatch.setattr(cli, "build_parser", patched)
    assert main(["models"]) == 1
    _, err = capsys.readouterr()
    assert "Traceback" in err and "bug in hlfnet" in err and kind in err
