"""``hlfnet serve`` as a process under load and under hostile requests, on loopback only, bounded in count and
time: every answer is a mask identical to ``hlfnet predict``'s or a clear 4xx/503, and the server stays healthy."""

from __future__ import annotations

import asyncio
import io
import socket
import struct
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.serve.conftest import Server, clean_exit, reference_masks, start_server

pytestmark = pytest.mark.slow


def _healthy(server: Server) -> None:
    assert server.process.poll() is None, server.log_text()
    assert httpx.get(f"{server.url}/readyz", timeout=10).status_code == 200


def _leftovers(server: Server) -> list[Path]:
    """Files left in the server's private folder (each request's folder is removed when it ends)."""
    return [p for p in server.tmpdir.rglob("*") if p.is_file()]


def _near_threshold(run: Path, image: Path) -> np.ndarray:
    from hlfnet.evaluation import Predictor

    p = Predictor.from_path(run, workers=0).predict_image(image, keep_probabilities=True).probabilities[0]
    return np.abs(p - 0.5) < 1e-4


@pytest.mark.parametrize("concurrency", [1, 4, 16])
def test_200_requests_masks_identical_rss_bounded(
    server, tiny_run, isic_images, tmp_path, concurrency
) -> None:
    import psutil

    expected = reference_masks(tiny_run, isic_images, tmp_path)
    uploads = [(p.name, p.read_bytes()) for p in isic_images]
    process = psutil.Process(server.process.pid)

    def one(i: int) -> tuple[str, httpx.Response]:
        name, data = uploads[i % len(uploads)]
        with httpx.Client(timeout=60) as client:
            return name, client.post(f"{server.url}/api/v1/predict", files={"file": (name, data)})

    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(2 * concurrency)))  # warm up
        rss_before = process.memory_info().rss
        results = list(pool.map(one, range(200)))
    rss_after = process.memory_info().rss
    assert all(r.status_code == 200 for _, r in results), {r.status_code for _, r in results}
    exact = sum(r.content == expected[name] for name, r in results)
    if concurrency == 1:
        assert exact == 200  # one request at a time: one image per forward pass, as `hlfnet predict IMAGE`
    else:
        # several images per forward pass: CPU kernels round differently by batch size (~1e-6), so a pixel whose
        # probability lies within 1e-4 of the threshold may flip — exactly as `hlfnet predict` on a folder
        # differs from `hlfnet predict` on each file. Every other pixel must be identical.
        for name, response in results:
            if response.content != expected[name]:
                served = np.asarray(Image.open(io.BytesIO(response.content)))
                reference = np.asarray(Image.open(io.BytesIO(expected[name])))
                differ = served != reference
                assert not (
                    differ
                    & ~_near_threshold(tiny_run, isic_images[[p.name for p in isic_images].index(name)])
                ).any()
        batches = [int(r.headers["x-batch-size"]) for _, r in results]
        assert max(batches) > 1, "concurrent requests were never batched"
    assert rss_after - rss_before < 150 * 2**20, f"RSS grew by {(rss_after - rss_before) / 2**20:.0f} MiB"
    assert not _leftovers(server)
    _healthy(server)


def test_full_queue_answers_503_with_retry_after(tiny_run, isic_image, tmp_path) -> None:
    srv = start_server(tiny_run, tmp_path, "--queue-size", "1", "--max-batch", "1")
    try:
        data = isic_image.read_bytes()

        async def burst() -> list[httpx.Response]:
            async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=64)) as client:
                return await asyncio.gather(
                    *(
                        client.post(f"{srv.url}/api/v1/predict", files={"file": ("a.jpg", data)})
                        for _ in range(48)
                    )
                )

        responses = asyncio.run(burst())
        codes = [r.status_code for r in responses]
        assert set(codes) <= {200, 503} and codes.count(503) > 0 and codes.count(200) > 0, codes
        for r in responses:
            if r.status_code == 503:
                assert r.headers["retry-after"] == "1" and r.json()["error"]["code"] in ("queue_full", "busy")
        _healthy(srv)
        assert not _leftovers(srv)
    finally:
        assert srv.stop() == 0, srv.log_text()


def _raw_partial_upload(server: Server, body: bytes, declared: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    head = (
        f"POST /api/v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=XyZ\r\n"
        f"Content-Length: {declared}\r\n\r\n"
    ).encode()
    sock.sendall(head + body)
    return sock


def test_client_killed_mid_upload_leaves_server_healthy(server, isic_image) -> None:
    data = isic_image.read_bytes()
    part = (
        b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n\r\n'
        + data[: len(data) // 2]
    )
    for _ in range(5):
        sock = _raw_partial_upload(server, part, len(part) + 10_000)
        time.sleep(0.2)
        sock.close()  # the client dies mid-upload
    deadline = time.monotonic() + 10
    while _leftovers(server) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _leftovers(server)
    _healthy(server)
    assert (
        httpx.post(f"{server.url}/api/v1/predict", files={"file": ("a.jpg", data)}, timeout=30).status_code
        == 200
    )


def _png_bomb(width: int, height: int) -> bytes:
    """A valid PNG header announcing width × height grey pixels, with a tiny (truncated) zlib stream."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return (
            struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 100_000)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_hostile_requests_get_clear_errors(server, isic_image) -> None:
    url = f"{server.url}/api/v1/predict"
    jpeg = isic_image.read_bytes()
    cases = {
        "oversize": (
            413,
            "upload_too_large",
            {"files": {"file": ("big.png", b"\x89PNG\r\n\x1a\n" + b"0" * (65 * 2**20))}},
        ),
        "bomb": (413, "too_many_pixels", {"files": {"file": ("bomb.png", _png_bomb(100_000, 100_000))}}),
        "bomb_below_pil": (
            413,
            "too_many_pixels",
            {"files": {"file": ("bomb.png", _png_bomb(12_000, 10_000))}},
        ),
        "truncated": (400, "unreadable_image", {"files": {"file": ("cut.jpg", jpeg[: len(jpeg) // 2])}}),
        "text_as_png": (415, "unsupported_file", {"files": {"file": ("x.png", b"hello, not an image")}}),
        "empty": (400, "empty_file", {"files": {"file": ("e.png", b"")}}),
        "json_body": (415, "unsupported_media_type", {"json": {"file": "x"}}),
        "no_file": (400, "missing_file", {"files": {"ground_truth": ("t.png", jpeg)}}),
        "unknown_field": (400, "unknown_field", {"files": {"image": ("a.jpg", jpeg)}}),
        "text_field": (
            400,
            "not_a_file",
            {"data": {"file": "abc"}, "files": {"ground_truth": ("t.png", jpeg)}},
        ),
    }
    with httpx.Client(timeout=60) as client:
        for name, (status, code, kwargs) in cases.items():
            response = client.post(url, **kwargs)
            assert response.status_code == status, (name, response.text)
            error = response.json()["error"]
            assert error["code"] == code, (name, error)
            assert "\n" not in error["message"] and "Traceback" not in response.text, name
            assert str(server.tmpdir) not in response.text, name  # no private path leaks
        # the oversize upload is refused from its Content-Length, before being read
        sock = _raw_partial_upload(server, b"--XyZ", 2**40)
        assert sock.recv(65536).startswith(b"HTTP/1.1 413")
        sock.close()

        # chunked (no Content-Length): refused while streaming
        def chunks():
            yield b'--a\r\nContent-Disposition: form-data; name="file"; filename="big.png"\r\n\r\n'
            for _ in range(70):
                yield b"0" * 2**20

        streamed = client.post(
            url, content=chunks(), headers={"Content-Type": "multipart/form-data; boundary=a"}
        )
        assert streamed.status_code == 413
        # path-like names are never paths: answered normally, written nowhere else
        for evil in (
            "../../../../tmp/hlfnet_evil.jpg",
            "/etc/passwd",
            "..\\..\\win.jpg",
            "a\x00b.jpg",
            "ü€ 😀.jpg",
        ):
            response = client.post(url + "?format=json", files={"file": (evil, jpeg)})
            assert response.status_code == 200, (evil, response.text)
            assert "/" not in response.json()["name"] and "\\" not in response.json()["name"]
            assert "/" not in response.headers.get("content-disposition", "")
        assert not Path("/tmp/hlfnet_evil.jpg").exists()
    assert not _leftovers(server)
    _healthy(server)


def test_1000_tiny_concurrent_requests(server) -> None:
    buffer = io.BytesIO()
    Image.fromarray(np.full((8, 8, 3), 120, np.uint8)).save(buffer, format="PNG")
    data = buffer.getvalue()

    async def flood() -> list[int]:
        limits = httpx.Limits(max_connections=1000, max_keepalive_connections=0)
        async with httpx.AsyncClient(timeout=120, limits=limits) as client:

            async def one() -> int:
                try:
                    return (
                        await client.post(f"{server.url}/api/v1/predict", files={"file": ("t.png", data)})
                    ).status_code
                except httpx.HTTPError:
                    return -1

            return await asyncio.gather(*(one() for _ in range(1000)))

    codes = asyncio.run(flood())
    assert set(codes) <= {200, 503}, sorted(set(codes))
    assert codes.count(200) >= 32
    _healthy(server)
    assert not _leftovers(server)


def test_graceful_shutdown_finishes_inflight_requests(tiny_run, isic_image, tmp_path) -> None:
    srv = start_server(tiny_run, tmp_path)
    data = isic_image.read_bytes()
    head = b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n\r\n'
    tail = b"\r\n--XyZ--\r\n"
    body = head + data + tail
    sock = _raw_partial_upload(srv, body[:1000], len(body))  # in flight: half uploaded
    time.sleep(0.3)
    srv.process.send_signal(__import__("signal").SIGTERM)
    time.sleep(0.5)
    with pytest.raises(httpx.ConnectError):  # new connections are refused at once
        httpx.get(f"{srv.url}/healthz", timeout=5)
    sock.sendall(body[1000:])
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = sock.recv(65536)
        if not chunk:
            break
        answer += chunk
    sock.close()
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    assert clean_exit(srv.process.wait(30)) == 0, srv.log_text()
    assert not any(srv.tmpdir.iterdir()), list(srv.tmpdir.iterdir())  # the private folder is gone
