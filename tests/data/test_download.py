"""``hlfnet data download`` against a local HTTP server on 127.0.0.1 (no network)."""

from __future__ import annotations

import hashlib
import http.server
import io
import tarfile
import threading
import zipfile
from pathlib import Path

import pytest

import hlfnet.data.download as dl
from hlfnet.cli import main
from hlfnet.data import DataConfig, build_dataset
from tests.data.helpers import write_isic, write_msd


class _RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Static files with ``Range: bytes=N-`` support (the standard handler has none)."""

    ranges: list[str] = []
    cut_once: set[str] = set()  # paths whose first full request is cut off half-way

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        header = self.headers.get("Range")
        if header:
            type(self).ranges.append(header)
            start = int(header.split("=")[1].rstrip("-"))
            if start >= len(data):
                self.send_response(416)
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            data = data[start:]
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.path in type(self).cut_once and not header:
            type(self).cut_once.discard(self.path)
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(data)


@pytest.fixture
def server(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    _RangeHandler.ranges = []
    _RangeHandler.cut_once = set()
    handler = lambda *a, **k: _RangeHandler(*a, directory=str(served), **k)  # noqa: E731
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_resumes_from_a_partial_file_and_verifies_md5(server, tmp_path):
    served, url = server
    payload = bytes(range(256)) * 400
    (served / "blob.bin").write_bytes(payload)
    dest = tmp_path / "out" / "blob.bin"
    dest.parent.mkdir()
    (dest.parent / "blob.bin.part").write_bytes(payload[:30000])
    md5 = hashlib.md5(payload).hexdigest()
    assert dl.download_file(f"{url}/blob.bin", dest, md5=md5) == dest
    assert dest.read_bytes() == payload
    assert _RangeHandler.ranges == ["bytes=30000-"]
    assert not (dest.parent / "blob.bin.part").exists()
    # Already there and valid: no request at all.
    dl.download_file(f"{url}/nothing-here", dest, md5=md5)


def test_interrupted_transfer_is_resumed_by_the_next_run(server, tmp_path):
    served, url = server
    payload = bytes(range(256)) * 1000
    (served / "big.bin").write_bytes(payload)
    _RangeHandler.cut_once = {"/big.bin"}
    dest = tmp_path / "big.bin"
    with pytest.raises(OSError, match="run again to resume"):
        dl.download_file(f"{url}/big.bin", dest, sha256=hashlib.sha256(payload).hexdigest(), timeout=5)
    assert (tmp_path / "big.bin.part").stat().st_size == len(payload) // 2
    dl.download_file(f"{url}/big.bin", dest, sha256=hashlib.sha256(payload).hexdigest())
    assert dest.read_bytes() == payload and _RangeHandler.ranges == [f"bytes={len(payload) // 2}-"]


def test_checksum_mismatch_removes_the_download(server, tmp_path):
    served, url = server
    (served / "blob.bin").write_bytes(b"abc" * 100)
    with pytest.raises(ValueError, match=r"blob\.bin: checksum mismatch \(md5 .*, expected 0+\)"):
        dl.download_file(f"{url}/blob.bin", tmp_path / "blob.bin", md5="0" * 32)
    assert not (tmp_path / "blob.bin").exists() and not (tmp_path / "blob.bin.part").exists()


def test_missing_file_and_unreachable_host(server, tmp_path):
    _, url = server
    with pytest.raises(FileNotFoundError, match="404"):
        dl.download_file(f"{url}/absent.zip", tmp_path / "absent.zip")
    with pytest.raises(OSError, match="cannot connect"):
        dl.download_file("http://127.0.0.1:9/x.zip", tmp_path / "x.zip", timeout=2)


def test_archive_escaping_root_is_refused(tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("../outside.txt", "x")
    with pytest.raises(ValueError, match="outside"):
        dl.extract_archive(archive, tmp_path / "root")
    (tmp_path / "junk.tar").write_bytes(b"neither")
    with pytest.raises(ValueError, match="junk.tar"):
        dl.extract_archive(tmp_path / "junk.tar", tmp_path / "root")


def _zip_folder(folder: Path, archive: Path) -> None:
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(folder.rglob("*")):
            zf.write(path, path.relative_to(folder.parent))


def test_cli_downloads_isic_from_a_mirror_into_the_loader_layout(server, tmp_path, capsys):
    served, url = server
    source = write_isic(tmp_path / "src", n=2, parts=("Training", "Validation", "Test_v2"))
    for folder in source.iterdir():
        _zip_folder(folder, served / f"{folder.name}.zip")
    root = tmp_path / "isic"
    assert main(["data", "download", "isic2017", "--root", str(root), "--base-url", url]) == 0
    assert "ready at" in capsys.readouterr().out
    cfg = DataConfig(format="isic2017", root=str(root), cache_dir=str(tmp_path / "c"), image_size=(16, 16))
    assert len(build_dataset(cfg, "val")) == 2
    assert not list((root / ".downloads").glob("*.zip"))  # archives removed after extraction
    # A second run finds everything extracted and downloads nothing.
    for archive in served.iterdir():
        archive.unlink()
    assert main(["data", "download", "isic2017", "--root", str(root), "--base-url", url]) == 0


def test_spleen_tar_is_checked_against_its_md5(server, tmp_path, monkeypatch):
    served, url = server
    task = write_msd(tmp_path / "Task09_Spleen", n=1)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tf:
        tf.add(task, arcname="Task09_Spleen")
    (served / "Task09_Spleen.tar").write_bytes(buffer.getvalue())
    good = hashlib.md5(buffer.getvalue()).hexdigest()
    monkeypatch.setitem(
        dl.RESOURCES, "spleen", (dl.Resource(f"{url}/Task09_Spleen.tar", "Task09_Spleen.tar", md5="f" * 32),)
    )
    with pytest.raises(ValueError, match="checksum mismatch"):
        dl.download_dataset("spleen", tmp_path / "d")
    monkeypatch.setitem(
        dl.RESOURCES, "spleen", (dl.Resource(f"{url}/Task09_Spleen.tar", "Task09_Spleen.tar", md5=good),)
    )
    path = dl.download_dataset("spleen", tmp_path / "d", keep_archives=True)
    assert path == (tmp_path / "d" / "Task09_Spleen").resolve()
    assert (path / "dataset.json").is_file() and (
        tmp_path / "d" / ".downloads" / "Task09_Spleen.tar"
    ).is_file()
    cfg = DataConfig(format="msd", root=str(path), cache_dir=str(tmp_path / "c"), image_size=(16, 16))
    assert len(build_dataset(cfg, "train", augment=False)) > 0


def test_official_resources_are_the_paper_datasets():
    assert {r.filename for r in dl.RESOURCES["isic2017"]} >= {
        "ISIC-2017_Training_Data.zip",
        "ISIC-2017_Test_v2_Part1_GroundTruth.zip",
    }
    spleen = dl.RESOURCES["spleen"][0]
    # Checked against an independent record of the same archive: MONAI's DecathlonDataset, which downloads
    # Task09_Spleen.tar from the same address and verifies it with its own MD5 table.
    datasets = pytest.importorskip("monai.apps.datasets")
    assert spleen.url == datasets.DecathlonDataset.resource["Task09_Spleen"]
    assert spleen.md5 == datasets.DecathlonDataset.md5["Task09_Spleen"]
