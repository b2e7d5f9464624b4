"""benchmarks/patches.py stays runnable: a tiny run prints its three tables (no timing is asserted)."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO_ROOT


def test_patches_benchmark_runs_and_writes_markdown(tmp_path):
    out = tmp_path / "patches.md"
    command = [
        sys.executable,
        str(REPO_ROOT / "benchmarks" / "patches.py"),
        *("--patch", "32", "32", "32", "--batch", "1", "--base", "4", "--iters", "1"),
        *("--ct", "24", "24", "12", "--peak-shape", "48", "40", "6"),
        *("--markdown", str(out)),
    ]
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    text = out.read_text()
    rows = [
        line for line in text.splitlines() if line.startswith(("| hlfnet", "| unet", "| monai_basicunet"))
    ]
    assert len(rows) == 3 and all(float(r.split("|")[3]) > 0 for r in rows)
    assert "overhead" in text and "peak resident" in text and "labels [6, 40, 48]" in text
