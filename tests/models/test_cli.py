from __future__ import annotations

import subprocess
import sys

from hlfnet.cli import main


def test_models_command_prints_every_network_with_table1_counts(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| ") and "M |" in line]
    assert [r.split("|")[1].strip() for r in rows] == [
        "hlfnet",
        "hlfnet_hfe",
        "hlfnet_lfe",
        "unet",
        "resunet",
        "unet16",
    ]
    assert "| unet | Unet-28 | 5.94 M | 5.9 M | +0.8 % | 13.90 |" in out
    assert "| hlfnet | HLE-Net | 5.53 M | 5.5 M | +0.5 % |" in out
    assert "| unet16 | U-Net-16 | 1.94 M | – | – |" in out  # not in Table 1
    assert "GFLOPs at 4×192×256" in out


def test_python_dash_m_runs_the_cli():
    done = subprocess.run([sys.executable, "-m", "hlfnet", "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.startswith("hlfnet ")
