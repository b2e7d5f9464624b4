"""benchmarks/profile_training.py and benchmarks/groupnorm_layout.py stay runnable (no timing is asserted)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.slow


def _run(script: str, *args: str) -> str:
    command = [sys.executable, str(REPO_ROOT / "benchmarks" / script), *args]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_training_profile_reports_groupnorm_shares() -> None:
    out = _run(
        "profile_training.py", "--models", "hlfnet", "--modes", "bf16", "channels_last+bf16",
        "--batch", "1", "--size", "32", "32", "--threads", "1",
    )  # fmt: skip
    rows = [line.split("|") for line in out.splitlines() if line.startswith("| hlfnet")]
    assert [r[2].strip() for r in rows] == ["46", "46"]  # HLF-Net: 4 LFEs x 8 modules + 2 bottom + 4 x 3
    assert all(0 < float(r[5].strip(" %")) < 100 for r in rows)


def test_groupnorm_layout_compares_the_five_configurations() -> None:
    out = _run("groupnorm_layout.py", "--batch", "1", "--size", "32", "32", "--threads", "1", "--rounds", "1")
    assert (
        sum(line.startswith("| channels_last") or line.startswith("| bf16") for line in out.splitlines()) == 5
    )
    assert "vs bf16 (NCHW) training" in out


def test_nchw_groupnorm_computes_the_same_values() -> None:
    sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
    try:
        import torch

        from groupnorm_layout import build
    finally:
        sys.path.pop(0)
    x = torch.randn(2, 4, 32, 32).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        plain = build("hlfnet", channels_last=True, nchw_groupnorm=False).eval()(x)
        nchw = build("hlfnet", channels_last=True, nchw_groupnorm=True).eval()(x)
    torch.testing.assert_close(nchw, plain, atol=1e-4, rtol=1e-4)
