"""benchmarks/serve.py stays runnable: a tiny run writes its numbers (no timing is asserted)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.slow


def test_serve_benchmark_smoke(isic_images, tmp_path) -> None:
    out = tmp_path / "serve.json"
    command = [
        sys.executable, str(REPO_ROOT / "benchmarks" / "serve.py"), "--size", "32", "--images",
        str(isic_images[0].parent), "--count", "4", "--requests", "8", "--concurrency", "1", "2",
        "--threads", "1", "--json", str(out),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "| concurrency |" in result.stdout
    numbers = json.loads(out.read_text())
    assert numbers["predict_images_per_s"] > 0
    assert [r["concurrency"] for r in numbers["rows"]] == [1, 2]
    assert all(r["failed"] == 0 and r["requests_per_s"] > 0 for r in numbers["rows"])
