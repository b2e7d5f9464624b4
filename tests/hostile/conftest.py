"""Fixtures of the hostile-input suite: one tiny trained run per session, sentinel trees, one-line-error checks.

Every case runs ``hlfnet.cli.main`` in process and asserts the exit status, that stderr holds exactly one
``hlfnet <command>: error: ...`` line naming the path or key, no traceback, and — through :class:`Sentinel` —
that no file outside the output folder changed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from hlfnet.cli import main

#: The issue's T: a 32×32 synthetic experiment of a few seconds.
TINY = [
    "model.base_channels=4",
    "model.depth=2",
    "data.image_size=[32,32]",
    "data.synthetic_train=6",
    "data.synthetic_val=3",
    "data.synthetic_test=3",
    "train.max_epochs=2",
    "train.batch_size=3",
    "train.lr=0.01",
    "train.progress_bar=false",
    "train.accelerator=cpu",
    "train.log_every_n_steps=1",
]


def predict_args(run: Path, inputs: Path, out: Path, *extra: str) -> list[str]:
    """``hlfnet predict`` arguments of ``run`` on ``inputs`` into ``out`` (no progress bar), plus ``extra``."""
    return [
        "predict",
        "--model",
        str(run),
        "--input",
        str(inputs),
        "--output",
        str(out),
        "--no-progress",
        *extra,
    ]


def tiny_args(cache: Path, *extra: str) -> list[str]:
    """``--set`` arguments of the tiny experiment plus ``extra`` overrides."""
    out: list[str] = []
    for item in [*TINY, f"data.cache_dir={cache}", *extra]:
        out += ["--set", item]
    return out


def digest_tree(root: Path, skip: tuple[Path, ...] = ()) -> dict[str, str]:
    """``{relative path: sha256 or link target}`` of every file and link under ``root``, minus ``skip``."""
    found: dict[str, str] = {}
    if not root.exists():
        return found
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        if any(here == s or s in here.parents for s in skip):
            continue
        for name in filenames + [d for d in dirnames if (here / d).is_symlink()]:
            path = here / name
            if any(path == s or s in path.parents for s in skip):
                continue
            key = str(path.relative_to(root))
            if path.is_symlink():
                found[key] = "link:" + os.readlink(path)
            elif not stat.S_ISREG(path.lstat().st_mode):  # a FIFO or socket: reading it would block
                found[key] = f"special:{stat.S_IFMT(path.lstat().st_mode):o}"
            else:
                found[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


class Sentinel:
    """Checksums of a tree before a case; :meth:`unchanged` asserts that nothing outside ``allowed`` changed."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.before = digest_tree(root)

    def unchanged(self, *allowed: Path) -> None:
        skip = tuple(Path(a) for a in allowed)
        before = {k: v for k, v in self.before.items() if not _under(self.root / k, skip)}
        after = digest_tree(self.root, skip)
        assert after == before, {
            "changed": sorted(k for k in before if after.get(k) != before[k]),
            "new": sorted(set(after) - set(before)),
        }


def _under(path: Path, skip: tuple[Path, ...]) -> bool:
    return any(path == s or s in path.parents for s in skip)


def expect_error(capsys: pytest.CaptureFixture[str], argv: list[str], *needles: str, code: int = 2) -> str:
    """Run ``hlfnet argv``; assert exit ``code``, one error line holding every needle, and no traceback."""
    rc = main(argv)
    _, err = capsys.readouterr()
    assert rc == code, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    lines = [line for line in err.splitlines() if ": error: " in line]
    assert len(lines) == 1, err[-3000:]
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def expect_ok(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    rc = main(argv)
    out, err = capsys.readouterr()
    assert rc == 0, err[-3000:]
    return out


@pytest.fixture(scope="session")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hostile-cache")


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory, cache: Path) -> Path:
    """A tiny HLF-Net trained for two epochs on 32×32 synthetic data, once per session (do not modify)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    run = tmp_path_factory.mktemp("hostile-runs") / "tiny"
    try:
        assert main(["train", "--config", "synthetic", "--run-dir", str(run), *tiny_args(cache)]) == 0
    finally:
        torch.set_num_threads(before)
    return run


@pytest.fixture
def run(trained: Path, tmp_path: Path) -> Path:
    """A private copy of the trained run, free to break."""
    copy = tmp_path / "runs" / "tiny"
    shutil.copytree(trained, copy, symlinks=True)
    return copy


@pytest.fixture
def images(tmp_path: Path) -> Path:
    """Three small RGB PNG images in ``tmp_path/imgs``."""
    from PIL import Image

    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (20 + i, 24, 3), dtype=np.uint8)).save(folder / f"case_{i}.png")
    return folder


@pytest.fixture
def sentinel(tmp_path: Path) -> Sentinel:
    """A bystander file tree beside the case's files; checked by the case."""
    (tmp_path / "bystander" / "deep").mkdir(parents=True)
    (tmp_path / "bystander" / "notes.txt").write_text("irreplaceable")
    (tmp_path / "bystander" / "deep" / "scan.png").write_bytes(b"\x89PNG not really")
    (tmp_path / "ESCAPED.json").write_text("original")
    return Sentinel(tmp_path)


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def write_png(path: Path, shape: tuple[int, ...], value: int = 128) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full(shape, value, np.uint8)).save(path)
    return path


def save_nifti(path: Path, data: np.ndarray, zero_affine: bool = False) -> Path:
    """A NIfTI file; ``zero_affine`` patches the header to an all-zero sform (what a broken converter writes)."""
    import gzip
    import struct

    import nibabel as nib

    path.parent.mkdir(parents=True, exist_ok=True)
    raw = path.with_name(path.name.removesuffix(".gz"))
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(raw))
    if zero_affine:
        with raw.open("r+b") as handle:
            handle.seek(252)
            handle.write(struct.pack("<hh", 0, 1))  # qform_code 0, sform_code 1
            handle.seek(280)
            handle.write(struct.pack("<12f", *([0.0] * 12)))  # srow_x, srow_y, srow_z
    if path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(raw.read_bytes()))
        raw.unlink()
    return path
