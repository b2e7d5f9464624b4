"""``hlfnet predict`` against hostile inputs and output folders: never through a link, never over an input or a
foreign file, never outside ``--output``; every bad file a one-line error naming it."""

from __future__ import annotations

import errno
import json
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.hostile.conftest import Sentinel, expect_error, expect_ok, predict_args, save_nifti, write_png

# ---------------------------------------------------------------------------------------------------- output


def test_symlinked_manifest_does_not_escape(
    run: Path, images: Path, tmp_path: Path, sentinel: Sentinel, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "predictions.json").symlink_to(tmp_path / "ESCAPED.json")
    sentinel = Sentinel(tmp_path)
    expect_error(capsys, predict_args(run, images, out), "predictions.json")
    assert (tmp_path / "ESCAPED.json").read_text() == "original"
    sentinel.unchanged()


@pytest.mark.parametrize("flag", [[], ["--overwrite"]], ids=["plain", "overwrite"])
def test_symlinked_mask_is_never_written_through(
    flag: list[str],
    run: Path,
    images: Path,
    tmp_path: Path,
    sentinel: Sentinel,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "case_0.png").symlink_to(tmp_path / "bystander" / "notes.txt")
    sentinel = Sentinel(tmp_path)
    expect_error(capsys, predict_args(run, images, out, *flag), "case_0.png")
    sentinel.unchanged()


def test_symlinked_probability_folder(
    run: Path, images: Path, tmp_path: Path, sentinel: Sentinel, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "probabilities").symlink_to(tmp_path / "bystander")
    sentinel = Sentinel(tmp_path)
    expect_error(capsys, predict_args(run, images, out, "--probabilities"), "probabilities")
    sentinel.unchanged()


@pytest.mark.parametrize("flag", [[], ["--overwrite"]], ids=["plain", "overwrite"])
def test_output_is_the_input_folder(
    flag: list[str], run: Path, images: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sentinel = Sentinel(tmp_path)
    expect_error(capsys, predict_args(run, images, images, *flag), "input folder")
    sentinel.unchanged()


def test_single_input_file_into_its_own_folder(
    run: Path, images: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sentinel = Sentinel(tmp_path)
    expect_error(capsys, predict_args(run, images / "case_0.png", images, "--overwrite"), "input folder")
    sentinel.unchanged()


def test_foreign_file_is_not_replaced_even_with_overwrite(
    run: Path, images: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    write_png(out / "case_1.png", (5, 5), 7)
    sentinel = Sentinel(tmp_path)
    expect_error(capsys, predict_args(run, images, out, "--overwrite"), "case_1.png", "not written by hlfnet")
    sentinel.unchanged()


def test_rerun_refuses_then_overwrite_replaces_own(
    run: Path, images: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    expect_ok(capsys, predict_args(run, images, out))
    sentinel = Sentinel(tmp_path)
    expect_error(capsys, predict_args(run, images, out), "already holds predictions", "--overwrite")
    sentinel.unchanged()
    expect_ok(capsys, predict_args(run, images, out, "--overwrite"))
    sentinel.unchanged(out)


def test_rerun_after_a_kill_finishes_the_rest(
    run: Path, images: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    expect_ok(capsys, predict_args(run, images, out))
    reference = {p.name: p.read_bytes() for p in out.glob("case_*.png")}
    # the state a SIGKILL after the first mask leaves: marker "running", one mask, a temporary, no manifest
    marker = json.loads((out / ".hlfnet-output.json").read_text())
    marker["status"] = "running"
    (out / ".hlfnet-output.json").write_text(json.dumps(marker))
    (out / "case_1.png").unlink()
    (out / "case_2.png").unlink()
    (out / "predictions.json").unlink()
    (out / ".case_1.png.hlfnet-k1ll3d00.tmp").write_bytes(b"\x89PNG trunc")
    expect_ok(capsys, predict_args(run, images, out))
    assert {p.name: p.read_bytes() for p in out.glob("case_*.png")} == reference
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    assert json.loads((out / ".hlfnet-output.json").read_text())["status"] == "complete"


def test_output_below_a_file(
    run: Path, images: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "afile").write_text("x")
    sentinel = Sentinel(tmp_path)
    expect_error(capsys, predict_args(run, images, tmp_path / "afile" / "out"), "afile")
    sentinel.unchanged()


def test_output_is_a_file(
    run: Path, images: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "afile").write_text("x")
    sentinel = Sentinel(tmp_path)
    expect_error(capsys, predict_args(run, images, tmp_path / "afile", "--overwrite"), "afile")
    sentinel.unchanged()


@pytest.mark.parametrize(
    ("code", "needle"),
    [
        (errno.EROFS, "read-only"),
        (errno.ENOSPC, "no space"),
        (errno.EACCES, "permission"),
        (errno.EDQUOT, "quota"),
    ],
    ids=["EROFS", "ENOSPC", "EACCES", "EDQUOT"],
)
def test_os_errors_while_writing_are_one_line(
    code: int,
    needle: str,
    run: Path,
    images: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import tempfile

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError(code, os.strerror(code), str(tmp_path / "out"))

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    sentinel = Sentinel(tmp_path)
    expect_error(capsys, predict_args(run, images, tmp_path / "out"), needle, "out")
    sentinel.unchanged(tmp_path / "out")


# ---------------------------------------------------------------------------------------------------- options


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--pattern", "/etc/*"], "--pattern"),
        (["--pattern", "../*"], "--pattern"),
        (["--pattern", "sub/*.png"], "--pattern"),
        (["--device", "nonsense"], "--device"),
        (["--batch-size", "0"], "batch_size"),
        (["--threshold", "2"], "threshold"),
        (["--threshold", "nan"], "threshold"),
        (["--backend", "onnx"], "model.onnx"),
    ],
    ids=[
        "abs-pattern",
        "dotdot-pattern",
        "sub-pattern",
        "device",
        "batch",
        "threshold",
        "nan-threshold",
        "no-onnx",
    ],
)
def test_bad_options(
    extra: list[str], needle: str, run: Path, images: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sentinel = Sentinel(tmp_path)
    expect_error(capsys, predict_args(run, images, tmp_path / "out", *extra), needle)
    sentinel.unchanged(tmp_path / "out")


def test_cuda_without_gpu(
    run: Path, images: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    expect_error(capsys, predict_args(run, images, tmp_path / "out", "--device", "cuda"), "--device")


# ---------------------------------------------------------------------------------------------------- inputs


def _png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG whose header claims ``width × height`` with a tiny (truncated) image stream: a decompression bomb."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def _npy_with_header(path: Path, shape: tuple[int, ...], dtype: str = "<u1") -> None:
    header = f"{{'descr': '{dtype}', 'fortran_order': False, 'shape': {shape}, }}".encode()
    header += b" " * (63 - (len(header) + 10) % 64) + b"\n"
    path.write_bytes(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + b"\x00" * 64)


def _nifti(path: Path, data: np.ndarray, affine: np.ndarray | None = None) -> None:
    import nibabel as nib

    nib.save(nib.Nifti1Image(data, np.eye(4) if affine is None else affine), str(path))


def _bad_input(kind: str, folder: Path) -> tuple[Path, str]:
    folder.mkdir(parents=True, exist_ok=True)
    if kind == "missing":
        return folder / "nope.png", "nope.png"
    if kind == "empty-folder":
        return folder, "no images"
    if kind == "text-file":
        (folder / "readme.txt").write_text("hi")
        write_png(folder / "a.png", (8, 8))
        return folder, "readme.txt"
    if kind == "corrupt-png":
        (folder / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
        return folder / "bad.png", "bad.png"
    if kind == "truncated-png":
        write_png(folder / "t.png", (64, 64, 3))
        data = (folder / "t.png").read_bytes()
        (folder / "t.png").write_bytes(data[: len(data) // 2])
        return folder / "t.png", "t.png"
    if kind == "bomb-png":
        _png_header_only(folder / "bomb.png", 20000, 20000)
        return folder / "bomb.png", "HLFNET_MAX_IMAGE_PIXELS"
    if kind == "zero-png":
        (folder / "zero.png").write_bytes(b"")
        return folder / "zero.png", "zero.png"
    if kind == "npy-huge-header":
        _npy_with_header(folder / "huge.npy", (100000, 100000, 3))
        return folder / "huge.npy", "huge.npy"
    if kind == "npy-empty":
        np.save(folder / "empty.npy", np.zeros((0, 0), np.uint8))
        return folder / "empty.npy", "empty.npy"
    if kind == "npy-object":
        np.save(folder / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
        return folder / "obj.npy", "obj.npy"
    if kind == "npy-4d":
        np.save(folder / "four.npy", np.zeros((2, 8, 8, 1), np.uint8))
        return folder / "four.npy", "four.npy"
    if kind == "npy-nan":
        np.save(folder / "nan.npy", np.full((8, 8), np.nan, np.float32))
        return folder / "nan.npy", "nan.npy"
    if kind == "npy-garbage":
        (folder / "g.npy").write_bytes(os.urandom(300))
        return folder / "g.npy", "g.npy"
    if kind == "nifti-2d":
        _nifti(folder / "flat.nii.gz", np.zeros((16, 16), np.float32))
        return folder / "flat.nii.gz", "flat.nii.gz"
    if kind == "nifti-zero-affine":
        save_nifti(folder / "za.nii.gz", np.zeros((16, 16, 3), np.float32), zero_affine=True)
        return folder / "za.nii.gz", "za.nii.gz"
    if kind == "nifti-truncated":
        _nifti(folder / "tr.nii.gz", np.random.default_rng(0).random((16, 16, 8)).astype(np.float32))
        data = (folder / "tr.nii.gz").read_bytes()
        (folder / "tr.nii.gz").write_bytes(data[: len(data) // 2])
        return folder / "tr.nii.gz", "tr.nii.gz"
    if kind == "nifti-garbage":
        (folder / "junk.nii").write_bytes(os.urandom(500))
        return folder / "junk.nii", "junk.nii"
    if kind == "nifti-nan":
        _nifti(folder / "nan.nii.gz", np.full((8, 8, 2), np.nan, np.float32))
        return folder / "nan.nii.gz", "nan.nii.gz"
    if kind == "nifti-channels":
        _nifti(folder / "ch.nii.gz", np.zeros((8, 8, 2, 3), np.float32))
        return folder / "ch.nii.gz", "ch.nii.gz"
    if kind == "mixed-images-volumes":
        write_png(folder / "a.png", (8, 8))
        _nifti(folder / "b.nii.gz", np.zeros((8, 8, 2), np.float32))
        return folder, "volumes"
    if kind == "duplicate-stems":
        write_png(folder / "a.png", (8, 8))
        write_png(folder / "a.tif", (8, 8))
        return folder, "'a'"
    raise AssertionError(kind)


BAD_INPUTS = [
    "missing",
    "empty-folder",
    "text-file",
    "corrupt-png",
    "truncated-png",
    "bomb-png",
    "zero-png",
    "npy-huge-header",
    "npy-empty",
    "npy-object",
    "npy-4d",
    "npy-nan",
    "npy-garbage",
    "nifti-2d",
    "nifti-zero-affine",
    "nifti-truncated",
    "nifti-garbage",
    "nifti-nan",
    "nifti-channels",
    "mixed-images-volumes",
    "duplicate-stems",
]


@pytest.mark.parametrize("kind", BAD_INPUTS)
def test_bad_input_is_one_line_naming_it(
    kind: str, run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inputs, needle = _bad_input(kind, tmp_path / "in")
    sentinel = Sentinel(tmp_path)
    expect_error(capsys, predict_args(run, inputs, tmp_path / "out"), needle)
    sentinel.unchanged(tmp_path / "out")


def test_volume_over_the_voxel_limit(
    run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "in").mkdir()
    _nifti(tmp_path / "in" / "big.nii.gz", np.zeros((40, 40, 40), np.float32))
    monkeypatch.setenv("HLFNET_MAX_VOLUME_VOXELS", "10000")
    expect_error(
        capsys,
        predict_args(run, tmp_path / "in" / "big.nii.gz", tmp_path / "out"),
        "HLFNET_MAX_VOLUME_VOXELS",
    )


def test_image_over_the_pixel_limit(
    run: Path,
    images: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    write_png(images / "case_big.png", (40, 40, 3))
    monkeypatch.setenv("HLFNET_MAX_IMAGE_PIXELS", "1500")  # the network's 32×32 fits, the 40×40 image not
    expect_error(
        capsys, predict_args(run, images, tmp_path / "out"), "case_big.png", "HLFNET_MAX_IMAGE_PIXELS"
    )


# ---------------------------------------------------------------------------------------------------- models


def _break_model(kind: str, run: Path) -> str:
    weights, info = run / "model.safetensors", run / "model.json"
    if kind == "missing-run":
        return "nope"
    if kind == "random-safetensors":
        weights.write_bytes(os.urandom(2048))
        return "model.safetensors"
    if kind == "truncated-safetensors":
        weights.write_bytes(weights.read_bytes()[:1000])
        return "model.safetensors"
    if kind == "empty-safetensors":
        weights.write_bytes(b"")
        return "model.safetensors"
    description = json.loads(info.read_text())
    if kind == "unknown-kwarg":
        description["kwargs"]["evil"] = 1
    elif kind == "huge-depth":
        description["kwargs"]["depth"] = 50
    elif kind == "unknown-network":
        description["name"] = "gpt"
    elif kind == "garbage-json":
        info.write_bytes(os.urandom(100))
        return "model.json"
    elif kind == "no-kwargs":
        del description["kwargs"]
    info.write_text(json.dumps(description))
    return "model.json" if kind != "huge-depth" else "depth"


BROKEN_MODELS = [
    "missing-run",
    "random-safetensors",
    "truncated-safetensors",
    "empty-safetensors",
    "unknown-kwarg",
    "huge-depth",
    "unknown-network",
    "garbage-json",
    "no-kwargs",
]


@pytest.mark.parametrize("kind", BROKEN_MODELS)
def test_broken_model_is_one_line(
    kind: str, run: Path, images: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    needle = _break_model(kind, run)
    model = run.parent / "nope" if kind == "missing-run" else run
    sentinel = Sentinel(tmp_path)
    expect_error(capsys, predict_args(model, images, tmp_path / "out"), needle)
    sentinel.unchanged(tmp_path / "out")
