"""``hlfnet train`` with hostile settings and config files: one line naming the key or file, exit 2, and no run
folder (or anything else) left behind."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.hostile.conftest import Sentinel, expect_error, tiny_args

BAD_OVERRIDES = [
    ("train.lr=.inf", "train.lr"),
    ("train.lr=.nan", "train.lr"),
    ("train.lr=-1", "train.lr"),
    ("train.lr=abc", "train.lr"),
    ("train.weight_decay=.nan", "train.weight_decay"),
    ("train.weight_decay=.inf", "train.weight_decay"),
    ("train.lr_gamma=.inf", "train.lr_gamma"),
    ("train.lr_gamma=.nan", "train.lr_gamma"),
    ("model.depth=50", "model.depth"),
    ("model.depth=0", "model.depth"),
    ("model.depth=12", "HLFNET_MAX_PARAMETERS"),
    ("model.base_channels=100000", "model.base_channels"),
    ("model.base_channels=0", "model.base_channels"),
    ("model.base_channels=2.5", "model.base_channels"),
    ("data.image_size=[100000,100000]", "HLFNET_MAX_IMAGE_PIXELS"),
    ("data.image_size=[32.5,32]", "image_size"),
    ("data.image_size=[4,4]", "image_size"),
    ("data.image_size=[32]", "image_size"),
    ("data.image_size=big", "image_size"),
    ("seed=-1", "seed"),
    ("data.seed=-1", "seed"),
    ("name=../escaped", "'name'"),
    ("name=/tmp/absolute-run", "'name'"),
    ("name=..", "'name'"),
    ("name=a/b", "'name'"),
    ("train.max_epochs=0", "train.max_epochs"),
    ("train.batch_size=-1", "train.batch_size"),
    ("train.batch_size=1000000000", "train.batch_size"),
    ("train.unknown=1", "train.unknown"),
    ("model.name=nonet", "model.name"),
    ("model.foo=1", "model.foo"),
    ("data.format=bogus", "format"),
    ("data.split_fractions=[2,0,0]", "split_fractions"),
    ("train.precision=16-mixed", "16-mixed"),
    ("train.num_workers=-1", "train.num_workers"),
    ("data.num_classes=1", "num_classes"),
]


@pytest.mark.parametrize(("override", "needle"), BAD_OVERRIDES, ids=[o for o, _ in BAD_OVERRIDES])
def test_bad_setting_is_one_line_and_leaves_nothing(
    override: str,
    needle: str,
    tmp_path: Path,
    cache: Path,
    sentinel: Sentinel,
    capsys: pytest.CaptureFixture[str],
) -> None:
    run = tmp_path / "run"
    expect_error(
        capsys, ["train", "--config", "synthetic", "--run-dir", str(run), *tiny_args(cache, override)], needle
    )
    assert not run.exists()
    sentinel.unchanged()


def test_gpu_without_gpu_is_one_line(tmp_path: Path, cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    run = tmp_path / "run"
    argv = [
        "train",
        "--config",
        "synthetic",
        "--run-dir",
        str(run),
        *tiny_args(cache),
        "--accelerator",
        "gpu",
    ]
    expect_error(capsys, argv, "accelerator")
    assert not run.exists()


def test_runs_dir_that_is_a_file(tmp_path: Path, cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    passwd = tmp_path / "passwd"
    passwd.write_text("root:x:0:0")
    argv = ["train", "--config", "synthetic", *tiny_args(cache, f"train.runs_dir={passwd}")]
    expect_error(capsys, argv, str(passwd))
    assert passwd.read_text() == "root:x:0:0"


ALIAS_BOMB = """a: &a ["x","x","x","x","x","x","x","x","x"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""

BAD_FILES = {
    "alias-bomb": (ALIAS_BOMB, "HLFNET_MAX_YAML_NODES"),
    "many-aliases": ("a: &a 1\n" + "".join(f"k{i}: *a\n" for i in range(150)), "HLFNET_MAX_YAML_ALIASES"),
    "huge": ("# " + "x" * (2**20 + 10) + "\nname: x\n", "HLFNET_MAX_YAML_BYTES"),
    "python-tag": ("name: !!python/object/apply:os.system ['touch PWNED']\n", "not valid YAML"),
    "not-a-mapping": ("- a\n- b\n", "mapping"),
    "syntax": ("model: {name: hlfnet\n", "not valid YAML"),
    "binary": (None, "config.yaml"),
    "unknown-section": ("modle: {name: hlfnet}\n", "modle"),
    "section-not-mapping": ("train: 3\n", "train"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_config_file(
    case: str, tmp_path: Path, sentinel: Sentinel, capsys: pytest.CaptureFixture[str]
) -> None:
    text, needle = BAD_FILES[case]
    path = tmp_path / "config.yaml"
    if text is None:
        path.write_bytes(bytes(range(256)) * 4)
    else:
        path.write_text(text)
    sentinel = Sentinel(tmp_path)
    line = expect_error(capsys, ["train", "--config", str(path), "--run-dir", str(tmp_path / "run")], needle)
    assert "config.yaml" in line or needle in line
    assert not (tmp_path / "run").exists() and not Path("PWNED").exists()
    sentinel.unchanged()


def test_missing_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    expect_error(capsys, ["train", "--config", str(tmp_path / "nope.yaml")], "nope.yaml")
