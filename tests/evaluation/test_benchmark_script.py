"""benchmarks/predict.py stays runnable: default and fast modes in one process (no timing is asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from tests.conftest import REPO_ROOT


def test_predict_benchmark_measures_both_modes_in_one_run(tiny_run: Path, tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (40, 52, 3), dtype=np.uint8)).save(images / f"case_{i}.png")
    out = tmp_path / "predict.json"
    command = [
        sys.executable, str(REPO_ROOT / "benchmarks" / "predict.py"), "--model", str(tiny_run), "--images",
        str(images), "--count", "3", "--batch-size", "2", "--repeats", "1", "--threads", "1", "--json", str(out),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "fast over default:" in result.stdout
    numbers = json.loads(out.read_text())
    assert set(numbers["modes"]) == {"default", "fast"}
    assert all(m["end_to_end_images_per_s"] > 0 for m in numbers["modes"].values())
    assert numbers["fast_speedup_end_to_end"] > 0 and 0.9 < numbers["fast_mask_agreement"] <= 1.0
