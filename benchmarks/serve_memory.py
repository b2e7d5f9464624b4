"""``hlfnet serve`` under hostile load: peak memory against the memory budget, and answers while idle sockets
are open.

1. **Budget.** The real server (``python -m hlfnet serve``) with ``--memory-budget-mb B``; ``--clients``
   concurrent uploads of the largest image the server accepts (a PNG of ``pixel_limit`` pixels, a few hundred
   kB on the wire), after a warm-up batch of small images. The server's peak resident memory (``VmHWM``)
   above its warm peak (the network's workspace for one batch, which the budget does not cover) is compared
   with the budget: the ratio should stay at or below 1. The ratio above the idle memory is reported too.
2. **Idle sockets.** ``--idle`` sockets that never finish their request head are opened, then legitimate
   requests are sent; the share answered 200 should be 1, and the server log should stay small.

    python benchmarks/serve_memory.py                               # budget 256 MiB, 16 clients, 300 idle
    python benchmarks/serve_memory.py --budget-mb 2048 --clients 16  # the default budget (needs ~4 GB)

Reports ratios and peaks (JSON on stdout); numbers depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve import free_port, untrained_run  # noqa: E402


def rss_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for pid {pid}")


def start(model: Path, budget_mb: float, log: Path, *extra: str) -> tuple[subprocess.Popen[bytes], str]:
    import httpx

    port = free_port()
    command = [
        sys.executable, "-m", "hlfnet", "serve", "--model", str(model), "--port", str(port), "--threads", "1",
        "--memory-budget-mb", str(budget_mb), "--log-level", "warning", *extra,
    ]  # fmt: skip
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=out, env={**os.environ, "OMP_NUM_THREADS": "1"}
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"hlfnet serve exited: {log.read_text()}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.3)
    process.kill()
    raise SystemExit("hlfnet serve did not become ready")


def largest_png(pixels: int) -> bytes:
    """A square grey PNG of at most ``pixels`` pixels (compresses to almost nothing: a bomb-like upload)."""
    import numpy as np
    from PIL import Image

    side = int(pixels**0.5)
    buffer = io.BytesIO()
    Image.fromarray(np.full((side, side), 128, np.uint8)).convert("RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def budget_run(model: Path, budget_mb: float, clients: int, work: Path, timeout: float) -> dict[str, object]:
    import httpx

    from hlfnet.serve import ServeConfig

    pixels = ServeConfig(memory_budget_mb=budget_mb).pixel_limit
    payload = largest_png(pixels)
    process, url = start(model, budget_mb, work / "budget.log", "--request-timeout", str(timeout))
    try:
        idle = rss_kib(process.pid, "VmRSS")
        small = largest_png(192 * 256)

        def one(i: int, data: bytes = payload) -> int:
            with httpx.Client(timeout=timeout + 30) as client:
                return client.post(f"{url}/api/v1/predict", files={"file": (f"{i}.png", data)}).status_code

        # warm-up: a full batch of small images, so that the network's own workspace (activations of one
        # batch, outside the budget) is in the baseline; the budget is about decoded uploads
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda i: one(i, small), range(8)))
        warm = rss_kib(process.pid, "VmHWM")
        start_time = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            codes = list(pool.map(one, range(clients)))
        elapsed = time.perf_counter() - start_time
        peak = rss_kib(process.pid, "VmHWM")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(60)
    budget_kib = budget_mb * 1024
    return {
        "budget_mb": budget_mb,
        "clients": clients,
        "upload_pixels": pixels,
        "upload_kb": round(len(payload) / 1024, 1),
        "answers": {str(c): codes.count(c) for c in sorted(set(codes))},
        "idle_rss_mb": round(idle / 1024, 1),
        "warm_peak_rss_mb": round(warm / 1024, 1),
        "peak_rss_mb": round(peak / 1024, 1),
        "peak_above_idle_over_budget": round((peak - idle) / budget_kib, 3),
        "peak_above_warm_over_budget": round((peak - warm) / budget_kib, 3),
        "wall_s": round(elapsed, 1),
    }


def idle_run(model: Path, idle: int, requests: int, work: Path) -> dict[str, object]:
    import httpx

    log = work / "idle.log"
    process, url = start(model, 256, log)
    port = int(url.rsplit(":", 1)[1])
    sockets = []
    try:
        for i in range(idle):
            sock = socket.create_connection(("127.0.0.1", port))
            if i % 2:
                sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
            sockets.append(sock)
        ok = 0
        with httpx.Client(timeout=30) as client:
            for _ in range(requests):
                with contextlib.suppress(httpx.HTTPError):
                    ok += client.get(f"{url}/readyz").status_code == 200
    finally:
        for sock in sockets:
            sock.close()
        process.send_signal(signal.SIGTERM)
        process.wait(60)
    return {
        "idle_sockets": idle,
        "requests": requests,
        "answered_share": ok / requests,
        "log_bytes": log.stat().st_size,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget-mb", type=float, default=256)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--idle", type=int, default=300)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=600, help="request timeout of the server (s)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hlfnet-serve-memory-") as tmp:
        work = Path(tmp)
        model = untrained_run(work, (192, 256))
        results = {
            "machine": f"{os.cpu_count()} CPU(s), load average {os.getloadavg()[0]:.1f} at start",
            "budget": budget_run(model, args.budget_mb, args.clients, work, args.timeout),
            "idle": idle_run(model, args.idle, args.requests, work),
        }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
