"""``hlfnet serve`` against hostile clients: a memory budget for decoded pixels, connection limits that idle
sockets cannot exhaust, every field checked, and security headers on every answer (``/docs`` too)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="hlfnet serve needs the serve extra (pip install 'hlfnet[serve]')")
pytest.importorskip("httpx", reason="the serve tests need httpx (test extra)")

from hlfnet.serve import ServeConfig, create_app  # noqa: E402
from hlfnet.serve.budget import MemoryBudget  # noqa: E402
from tests.hostile.conftest import expect_error  # noqa: E402
from tests.hostile.test_readers import forged_nifti  # noqa: E402


@pytest.fixture
def client(trained: Path) -> Iterator[object]:
    from fastapi.testclient import TestClient

    with TestClient(create_app(ServeConfig(model=str(trained)))) as test_client:
        yield test_client


def _png(shape: tuple[int, ...]) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.full(shape, 128, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


# ------------------------------------------------------------------------------------------------ headers


@pytest.mark.parametrize("path", ["/docs", "/openapi.json", "/api/v1/models", "/no-such-page", "/healthz"])
def test_every_answer_forbids_framing_and_has_a_policy(client, path: str) -> None:
    response = client.get(path)
    assert response.headers["x-frame-options"] == "DENY"
    policy = response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy


def test_docs_policy_allows_exactly_its_own_inline_script(client) -> None:
    response = client.get("/docs")
    assert response.status_code == 200
    policy = response.headers["content-security-policy"]
    assert "'unsafe-inline'" not in policy.split("script-src")[1].split(";")[0]
    scripts = re.findall(r"<script>(.*?)</script>", response.text, flags=re.S)
    assert scripts
    for script in scripts:  # a browser runs it only if its hash is listed
        digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in policy


def test_openapi_json_may_load_nothing(client) -> None:
    policy = client.get("/openapi.json").headers["content-security-policy"]
    assert policy.startswith("default-src 'none'")


# ------------------------------------------------------------------------------------------------ fields


def test_a_boundary_over_the_limit_is_a_400_not_a_500(client) -> None:
    boundary = "b" * 300
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n'
            f"Content-Type: image/png\r\n\r\n"
        ).encode()
        + _png((8, 8, 3))
        + f"\r\n--{boundary}--\r\n".encode()
    )
    response = client.post(
        "/api/v1/predict", content=body, headers={"content-type": f"multipart/form-data; boundary={boundary}"}
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "bad_boundary"


@pytest.mark.parametrize("endpoint", ["predict", "score"])
def test_a_forged_nifti_upload_is_refused_from_its_header(client, endpoint: str, tmp_path: Path) -> None:
    # 300³ float64 = 216 MB declared by a 400-byte file, within the serving voxel limit: only the size check stops it
    forged = forged_nifti(tmp_path / "forged.nii.gz", (300, 300, 300), gz=True).read_bytes()
    fields = ["file"] if endpoint == "predict" else ["prediction", "ground_truth"]
    files = {name: (f"{name}.nii.gz", forged, "application/gzip") for name in fields}
    response = client.post(f"/api/v1/{endpoint}", files=files)
    assert response.status_code == 400, response.text
    assert "declares" in response.json()["error"]["message"]


@pytest.mark.parametrize("token", ["pässwörd", "tab\there", "\u200bzero-width"])
def test_a_token_no_client_could_send_is_one_line(
    token: str, trained: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    expect_error(capsys, ["serve", "--model", str(trained), "--token", token], "--token")
    monkeypatch.setenv("HLFNET_SERVE_TOKEN", token)
    expect_error(capsys, ["serve", "--model", str(trained)], "HLFNET_SERVE_TOKEN")


def test_a_non_ascii_authorization_header_is_a_401(trained: Path) -> None:
    from fastapi.testclient import TestClient

    with TestClient(create_app(ServeConfig(model=str(trained), token="s3cret"))) as client:
        response = client.get(
            "/api/v1/models", headers={"authorization": "Bearer s3cr\xe9t".encode("latin-1")}
        )
        assert response.status_code == 401


# ------------------------------------------------------------------------------------------------ memory


def test_the_serving_pixel_limit_fits_the_memory_budget(client, trained: Path) -> None:
    from fastapi.testclient import TestClient

    config = ServeConfig(model=str(trained), memory_budget_mb=1)
    assert config.pixel_limit == 2**20 // 24  # BYTES_PER_PIXEL: one request always fits the budget
    with TestClient(create_app(config)) as small:
        ok = small.post("/api/v1/predict", files={"file": ("a.png", _png((200, 200, 3)), "image/png")})
        assert ok.status_code == 200, ok.text
        big = small.post("/api/v1/predict", files={"file": ("b.png", _png((300, 300, 3)), "image/png")})
        assert big.status_code == 413 and big.json()["error"]["code"] == "too_many_pixels"


def test_memory_budget_hands_out_bytes_first_come_first_served() -> None:
    async def scenario() -> list[str]:
        budget = MemoryBudget(10)
        order: list[str] = []
        release_first = asyncio.Event()

        async def job(name: str, amount: int, hold: asyncio.Event | None = None) -> None:
            async with budget.reserve(amount):
                order.append(f"{name}+{budget.used}")
                if hold is not None:
                    await hold.wait()

        first = asyncio.create_task(job("a", 6, release_first))
        await asyncio.sleep(0)
        waiting = [asyncio.create_task(job("b", 5)), asyncio.create_task(job("c", 1))]
        for _ in range(5):
            await asyncio.sleep(0)
        assert order == ["a+6"]  # b (5) does not fit beside a (6); c (1) would, but queues behind b
        release_first.set()
        await asyncio.gather(first, *waiting)
        # a's 6 bytes back: b (5) and then c (1) are granted in their order, together 6, never above a's 6
        assert budget.used == 0 and budget.peak == 6
        return [entry.split("+")[0] for entry in order]

    assert asyncio.run(scenario()) == ["a", "b", "c"]


def test_memory_budget_forgets_a_cancelled_waiter() -> None:
    async def scenario() -> int:
        budget = MemoryBudget(4)
        hold = asyncio.Event()

        async def job(amount: int) -> None:
            async with budget.reserve(amount):
                await hold.wait()

        holder = asyncio.create_task(job(4))
        await asyncio.sleep(0)
        waiter = asyncio.create_task(job(3))
        await asyncio.sleep(0)
        waiter.cancel()  # the client went away while waiting for memory
        with pytest.raises(asyncio.CancelledError):
            await waiter
        hold.set()
        await holder
        async with budget.reserve(4):
            return budget.used

    assert asyncio.run(scenario()) == 4


def test_memory_budget_refuses_more_than_it_has() -> None:
    async def scenario() -> None:
        async with MemoryBudget(4).reserve(5):
            pass

    with pytest.raises(ValueError, match="exceed"):
        asyncio.run(scenario())


# ------------------------------------------------------------------------------------------------ sockets


def _idle_sockets(port: int, count: int, partial: bool) -> list[socket.socket]:
    sockets = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port))
        if partial:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # never the blank line that ends the head
        sockets.append(sock)
    return sockets


def _closed_by_server(sock: socket.socket) -> bool:
    sock.settimeout(120)  # a failsafe for a broken server, not a measurement
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


@pytest.fixture(scope="module")
def starved_server(trained: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    from tests.serve.conftest import start_server

    server = start_server(
        trained, tmp_path_factory.mktemp("starved"), "--header-timeout", "3", ready_timeout=600
    )
    yield server
    server.stop()


def test_300_idle_sockets_neither_starve_the_server_nor_stay_open(starved_server) -> None:
    import httpx

    idle = _idle_sockets(starved_server.port, 150, partial=False) + _idle_sockets(
        starved_server.port, 150, partial=True
    )
    try:
        with httpx.Client(timeout=60) as http:
            for _ in range(5):
                assert http.get(f"{starved_server.url}/readyz").status_code == 200
        assert all(_closed_by_server(sock) for sock in idle)  # the head deadline closed them
    finally:
        for sock in idle:
            sock.close()
    log = starved_server.log_text()
    assert "Traceback" not in log and len(log) < 20_000, log[-3000:]


def test_connections_beyond_the_cap_are_closed_at_once(trained: Path, tmp_path: Path) -> None:
    import httpx

    from tests.serve.conftest import start_server

    server = start_server(
        trained, tmp_path, "--max-connections", "8", "--header-timeout", "600", ready_timeout=600
    )
    try:
        idle = _idle_sockets(server.port, 8, partial=True)
        extra = _idle_sockets(server.port, 4, partial=True)
        assert all(_closed_by_server(sock) for sock in extra)  # the deadline is 600 s: only the cap closes
        for sock in idle:
            sock.close()
        with httpx.Client(timeout=60) as http:  # once the idle ones are gone, it answers again
            for _ in range(20):
                try:
                    if http.get(f"{server.url}/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    continue
            else:
                pytest.fail("the server did not answer once the idle connections were gone")
        for sock in extra:
            sock.close()
    finally:
        assert server.stop() == 0, server.log_text()
