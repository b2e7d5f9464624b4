"""``hlfnet serve`` throughput and latency at concurrency 1 / 4 / 16, against ``hlfnet predict`` on the same images
in the same run.

The server is the real command (``python -m hlfnet serve``) on a free loopback port; the clients are threads,
each sending one image per request (``POST /api/v1/predict``, PNG answer) and waiting for the answer before its
next one. ``hlfnet predict`` is timed in process (``Predictor.predict`` on the folder, batch ``--batch-size``,
reading and writing included), with the same number of torch threads as the server. Each concurrency level
reports requests/s, p50 and p95 latency and the mean batch size the server formed; batching should make
concurrency 16 at least 1.5× concurrency 1.

    python benchmarks/serve.py                          # untrained full-size HLF-Net at 192×256, 48 ISIC images
    python benchmarks/serve.py --model runs/hlfnet_isic2017 --requests 200 --threads 2
    python benchmarks/serve.py --size 32 --requests 24 --count 8      # a smoke run (seconds)

Loopback only; bounded: ``--requests`` per level, ``--timeout`` per request.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ISIC_IMAGES = (
    Path(__file__).resolve().parents[1].parent / "shared" / "data" / "isic2017" / "ISIC-2017_Training_Data"
)


def untrained_run(folder: Path, size: tuple[int, int]) -> Path:
    """An untrained full-size HLF-Net taking 4-channel ``size`` inputs (the paper's network)."""
    from hlfnet.models import create_model, save_model

    model = create_model("hlfnet", in_channels=4, out_channels=1)
    data = {"format": "isic2017", "root": str(folder), "image_size": list(size), "in_channels": 4}
    return save_model(model, folder / "model.safetensors", extra={"data": data})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(model: Path, threads: int, max_batch: int, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    import httpx

    port = free_port()
    command = [
        sys.executable, "-m", "hlfnet", "serve", "--model", str(model), "--port", str(port),
        "--threads", str(threads), "--max-batch", str(max_batch), "--queue-size", "256", "--max-inflight", "256",
        "--log-level", "warning",
    ]  # fmt: skip
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=out, env={**os.environ, "OMP_NUM_THREADS": str(threads)}
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"hlfnet serve exited: {log.read_text()}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("hlfnet serve did not become ready in 120 s")


def load(url: str, images: list[Path], concurrency: int, requests: int, timeout: float) -> dict[str, float]:
    """``requests`` requests from ``concurrency`` client threads; latency per request, throughput overall."""
    import httpx

    payloads = [(p.name, p.read_bytes()) for p in images]
    clients = [httpx.Client(timeout=timeout) for _ in range(concurrency)]

    def one(i: int) -> tuple[float, int, int]:
        name, data = payloads[i % len(payloads)]
        client = clients[i % concurrency]
        start = time.perf_counter()
        response = client.post(f"{url}/api/v1/predict", files={"file": (name, data)})
        return time.perf_counter() - start, response.status_code, int(response.headers.get("x-batch-size", 0))

    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(concurrency * 2)))  # warm-up
        start = time.perf_counter()
        results = list(pool.map(one, range(requests)))
        elapsed = time.perf_counter() - start
    for client in clients:
        client.close()
    latencies = sorted(r[0] for r in results)
    failed = sum(r[1] != 200 for r in results)
    return {
        "concurrency": concurrency,
        "requests": requests,
        "failed": failed,
        "requests_per_s": requests / elapsed,
        "p50_ms": 1000 * statistics.median(latencies),
        "p95_ms": 1000 * latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))],
        "mean_batch": statistics.fmean(r[2] for r in results),
    }


def predict_baseline(model: Path, images: list[Path], batch_size: int, threads: int, work: Path) -> float:
    """Images per second of ``hlfnet predict`` (``Predictor.predict`` on a folder of the same images)."""
    import torch

    from hlfnet.evaluation import Predictor

    torch.set_num_threads(threads)
    folder = work / "images"
    folder.mkdir(exist_ok=True)
    for image in images:
        shutil.copy(image, folder / image.name)
    predictor = Predictor.from_path(model, batch_size=batch_size)
    predictor.predict(folder, work / "warm", overwrite=True)
    start = time.perf_counter()
    predictor.predict(folder, work / "out", overwrite=True)
    return len(images) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model", type=Path, help="run folder / weights (default: untrained full-size HLF-Net)"
    )
    parser.add_argument(
        "--size", type=int, nargs="+", default=[192, 256], help="input size of the default model"
    )
    parser.add_argument("--images", type=Path, default=ISIC_IMAGES, help="folder of images")
    parser.add_argument("--count", type=int, default=48, help="distinct images sent (cycled)")
    parser.add_argument("--requests", type=int, default=200, help="requests per concurrency level")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--threads", type=int, default=2, help="torch threads of the server and of predict")
    parser.add_argument(
        "--batch-size", type=int, default=8, help="hlfnet predict's batch and the server's max"
    )
    parser.add_argument("--timeout", type=float, default=120, help="seconds per request")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args()

    images = sorted(p for p in args.images.glob("*.jpg"))[: args.count]
    if not images:
        raise SystemExit(f"no .jpg images in {args.images}")
    with tempfile.TemporaryDirectory(prefix="hlfnet-bench-serve-") as tmp:
        work = Path(tmp)
        size = tuple(args.size * 2 if len(args.size) == 1 else args.size[:2])
        model = args.model or untrained_run(work, size)  # type: ignore[arg-type]
        predict_rate = predict_baseline(model, images, args.batch_size, args.threads, work)
        process, url = start_server(model, args.threads, args.batch_size, work / "server.log")
        try:
            rows = [load(url, images, c, args.requests, args.timeout) for c in args.concurrency]
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(60)
    base = rows[0]["requests_per_s"]
    print(f"model: {args.model or f'untrained HLF-Net {size[0]}x{size[1]}'}; {len(images)} images; "
          f"{args.threads} torch thread(s); max batch {args.batch_size}")  # fmt: skip
    print(f"hlfnet predict (same images, in process): {predict_rate:.2f} images/s\n")
    print(
        "| concurrency | requests | failed | requests/s | vs concurrency 1 | vs predict | p50 ms | p95 ms | mean batch |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['concurrency']} | {r['requests']} | {r['failed']} | {r['requests_per_s']:.2f} | "
            f"{r['requests_per_s'] / base:.2f}× | {r['requests_per_s'] / predict_rate:.2f}× | {r['p50_ms']:.1f} | "
            f"{r['p95_ms']:.1f} | {r['mean_batch']:.2f} |"
        )
    if args.json:
        args.json.write_text(json.dumps({"predict_images_per_s": predict_rate, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
