"""benchmarks/models.py stays runnable: a tiny run writes its table (no timing is asserted)."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO_ROOT


def test_models_benchmark_runs_and_writes_markdown(tmp_path):
    out = tmp_path / "bench.md"
    command = [
        sys.executable,
        str(REPO_ROOT / "benchmarks" / "models.py"),
        *(
            "--models",
            "hlfnet",
            "monai_basicunet",
            "--modes",
            "fp32",
            "channels_last",
        ),  # bf16 is emulated (slow) without AVX-512 BF16
        *("--iters", "1", "--warmup", "0", "--batch", "1", "--size", "32", "32", "--threads", "1"),
        *("--markdown", str(out)),
    ]
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    rows = [
        line
        for line in out.read_text().splitlines()
        if line.startswith("| hlfnet") or line.startswith("| monai")
    ]
    assert len(rows) == 4
    assert all(float(r.split("|")[6]) > 0 and float(r.split("|")[7]) > 0 for r in rows)
