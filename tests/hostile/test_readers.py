"""One declared-size check for every reader: a header is compared with the file before anything is allocated
(NIfTI, ``.npy``, JSON), every volume a command reads is checked, and odd files are named, never skipped."""

from __future__ import annotations

import gzip
import json
import os
import socket
import struct
from pathlib import Path

import numpy as np
import pytest

from tests.hostile.conftest import Sentinel, expect_error, expect_ok, predict_args, save_nifti, write_png


def forged_nifti(path: Path, shape: tuple[int, int, int] = (800, 800, 800), gz: bool = False) -> Path:
    """A NIfTI of a few hundred bytes whose header declares ``shape`` of float64 (4 GB at 800³)."""
    raw = save_nifti(path.with_name("small.nii"), np.zeros((2, 2, 2), np.float32)).read_bytes()
    header = bytearray(raw[:352])
    struct.pack_into("<8h", header, 40, 3, *shape, 1, 1, 1, 1)  # dim
    struct.pack_into("<hh", header, 70, 64, 64)  # datatype float64, bitpix 64
    data = bytes(header) + raw[352:]
    path.with_name("small.nii").unlink()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


@pytest.mark.parametrize("gz", [False, True], ids=["nii", "nii.gz"])
def test_forged_nifti_header_is_refused_before_allocating(
    gz: bool, run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    volume = forged_nifti(tmp_path / ("forged.nii.gz" if gz else "forged.nii"), gz=gz)
    assert volume.stat().st_size < 1000
    sentinel = Sentinel(tmp_path)
    line = expect_error(capsys, predict_args(run, volume, tmp_path / "out"), str(volume), "declares")
    assert "(800, 800, 800)" in line
    sentinel.unchanged(tmp_path / "out")


def test_every_volume_is_checked_not_only_the_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    preds, truths = tmp_path / "preds", tmp_path / "gt"
    for case in ("a", "b"):
        save_nifti(preds / f"{case}.nii.gz", np.zeros((4, 4, 4), np.uint8))
    save_nifti(truths / "a.nii.gz", np.zeros((4, 4, 4), np.uint8))
    forged = forged_nifti(truths / "b.nii.gz", gz=True)
    expect_error(capsys, ["score", "--pred", str(preds), "--gt", str(truths)], str(forged), "declares")


def test_tiny_voxels_are_not_singular(tmp_path: Path) -> None:
    import nibabel as nib

    from hlfnet.data.io import load_volume

    path = tmp_path / "micro-ct.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((4, 4, 4), np.float32), np.diag([0.01, 0.01, 0.01, 1.0])), str(path))
    data, meta = load_volume(path)  # 10 µm voxels: det = 1e-6 mm³, a fine affine
    assert data.shape == (4, 4, 4) and meta.affine[0, 0] == pytest.approx(0.01)


def test_a_rank_deficient_affine_is_still_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import nibabel as nib

    from hlfnet.data.io import load_volume

    path = tmp_path / "flat.nii.gz"
    affine = np.array([[1.0, 1.0, 0, 0], [1.0, 1.0, 0, 0], [0, 0, 1.0, 0], [0, 0, 0, 1]])  # two equal columns
    nib.save(nib.Nifti1Image(np.ones((4, 4, 4), np.float32), affine), str(path))
    with pytest.raises(ValueError, match="singular"):
        load_volume(path)


NPY_DTYPES = {
    "string": np.array([["a", "b"], ["c", "d"]]),
    "bytes": np.array([[b"a", b"b"], [b"c", b"d"]]),
    "structured": np.zeros((4, 4), dtype=[("x", "f4"), ("y", "i2")]),
    "zero-size": np.zeros((4, 4), dtype="V0"),
    "datetime": np.zeros((4, 4), dtype="datetime64[s]"),
    "timedelta": np.zeros((4, 4), dtype="timedelta64[s]"),
    "complex": np.ones((4, 4), dtype=np.complex64),
}


@pytest.mark.parametrize("kind", sorted(NPY_DTYPES))
def test_npy_of_a_non_numeric_dtype_is_one_line(
    kind: str, run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    np.save(folder / "case.npy", NPY_DTYPES[kind])
    sentinel = Sentinel(tmp_path)
    expect_error(capsys, predict_args(run, folder, tmp_path / "out"), "case.npy", "type")
    sentinel.unchanged(tmp_path / "out")


def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _socket(path: Path) -> None:
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(path))
    sock.close()


def _broken_link(path: Path) -> None:
    path.symlink_to(path.with_name("gone.png"))


SPECIAL = {"fifo": (_fifo, "FIFO"), "socket": (_socket, "socket"), "broken-link": (_broken_link, "broken")}


@pytest.mark.parametrize("kind", sorted(SPECIAL))
@pytest.mark.parametrize("where", ["in-folder", "as-input"])
def test_special_files_named_like_images_are_named(
    kind: str, where: str, run: Path, images: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make, needle = SPECIAL[kind]
    special = images / "zz_special.png"
    make(special)
    sentinel = Sentinel(tmp_path)
    inputs = images if where == "in-folder" else special
    expect_error(capsys, predict_args(run, inputs, tmp_path / "out"), "zz_special.png", needle)
    sentinel.unchanged(tmp_path / "out")


def test_special_file_among_ground_truths_is_named(
    run: Path, images: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    truths = tmp_path / "gt"
    write_png(truths / "case_0.png", (20, 24), 0)
    _fifo(truths / "case_1.png")
    expect_error(capsys, ["score", "--pred", str(truths), "--gt", str(truths)], "case_1.png", "FIFO")


def test_deeply_nested_model_json_is_one_line(
    run: Path, images: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (run / "model.json").write_text("[" * 100_000 + "]" * 100_000)
    sentinel = Sentinel(tmp_path)
    expect_error(
        capsys, predict_args(run / "model.safetensors", images, tmp_path / "out"), "model.json", "nested"
    )
    sentinel.unchanged(tmp_path / "out")


def test_huge_in_channels_in_model_json_is_refused_before_building(
    run: Path, images: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    info = json.loads((run / "model.json").read_text())
    info["kwargs"]["in_channels"] = 10**9  # 16 × 10⁹ × 9 first-layer weights: ~576 GB if built
    (run / "model.json").write_text(json.dumps(info))
    sentinel = Sentinel(tmp_path)
    expect_error(
        capsys,
        predict_args(run / "model.safetensors", images, tmp_path / "out"),
        "in_channels",
        "HLFNET_MAX_PARAMETERS",
    )
    sentinel.unchanged(tmp_path / "out")


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "1e400", "1.5", "lots"])
@pytest.mark.parametrize("variable", ["HLFNET_MAX_IMAGE_PIXELS", "HLFNET_MAX_ACTIVATION_BYTES"])
def test_limit_variables_must_be_finite_integers(
    variable: str,
    value: str,
    run: Path,
    images: Path,
    tmp_path: Path,
    cache: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from tests.hostile.conftest import tiny_args

    monkeypatch.setenv(variable, value)
    if variable == "HLFNET_MAX_IMAGE_PIXELS":
        argv = predict_args(run, images, tmp_path / "out")
    else:
        argv = ["train", "--config", "synthetic", "--run-dir", str(tmp_path / "r"), *tiny_args(cache)]
    expect_error(capsys, argv, variable)
    assert not (tmp_path / "r").exists()


def test_large_limit_written_in_e_notation_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    from hlfnet.limits import limit

    monkeypatch.setenv("HLFNET_MAX_IMAGE_PIXELS", "2e8")
    assert limit("image_pixels") == 200_000_000


def test_file_size_limit_is_one_line(run: Path, tmp_path: Path) -> None:
    """``ulimit -f``: the kernel refuses the write with EFBIG (Python ignores SIGXFSZ)."""
    import resource
    import subprocess
    import sys

    from PIL import Image

    (tmp_path / "imgs").mkdir()
    noise = np.random.default_rng(0).integers(0, 255, (300, 300, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "imgs" / "big.png")
    limit = 1024  # below the manifest (predictions.json records the whole preprocessing) and the maps

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    command = [
        sys.executable,
        "-m",
        "hlfnet",
        *predict_args(run, tmp_path / "imgs", tmp_path / "out", "--probabilities"),
    ]
    result = subprocess.run(command, capture_output=True, text=True, preexec_fn=small_files, timeout=600)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if ": error: " in line]
    assert len(lines) == 1 and "file too large" in lines[0], result.stderr[-3000:]


def test_jpeg_ground_truth_is_never_dropped(
    run: Path, images: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A ``.jpg`` ground truth without a prediction used to be skipped, flattering the mean."""
    from PIL import Image

    preds, truths = tmp_path / "preds", tmp_path / "gt"
    write_png(preds / "case_0.png", (16, 16), 255)
    truths.mkdir()
    Image.fromarray(np.full((16, 16), 255, np.uint8)).save(truths / "case_0.jpg", quality=100)
    Image.fromarray(np.full((16, 16), 255, np.uint8)).save(truths / "case_1.jpg", quality=100)
    expect_error(capsys, ["score", "--pred", str(preds), "--gt", str(truths)], "case_1")
    (truths / "case_1.jpg").unlink()
    out = expect_ok(capsys, ["score", "--pred", str(preds), "--gt", str(truths)])
    assert "| 1 |" in out  # the JPEG ground truth was read (a uniform JPEG decodes exactly) and scored


def test_jpeg_ground_truth_with_compression_noise_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from PIL import Image

    preds, truths = tmp_path / "preds", tmp_path / "gt"
    mask = np.zeros((32, 32), np.uint8)
    mask[8:24, 5:27] = 255
    write_png(preds / "case_0.png", (32, 32), 0)
    truths.mkdir()
    Image.fromarray(mask).save(truths / "case_0.jpg", quality=50)  # ringing around the edges: 1..254 values
    expect_error(capsys, ["score", "--pred", str(preds), "--gt", str(truths)], "case_0.jpg")
