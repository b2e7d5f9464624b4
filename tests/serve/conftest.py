"""Fixtures of the ``hlfnet serve`` tests: a tiny trained network, real ISIC images, and servers — in process
(FastAPI's TestClient) or as the real ``hlfnet serve`` command on a free loopback port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import REPO_ROOT, shared_data_root

pytest.importorskip("fastapi", reason="hlfnet serve needs the serve extra (pip install 'hlfnet[serve]')")
pytest.importorskip("uvicorn", reason="hlfnet serve needs the serve extra (pip install 'hlfnet[serve]')")
pytest.importorskip("httpx", reason="the serve tests need httpx (test extra)")


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny HLF-Net (base 4, depth 2, 4-channel 32×32) trained one epoch by ``hlfnet.engine`` on synthetic data."""
    from hlfnet.engine import load_config, train

    config = load_config(
        "synthetic",
        [
            "data.image_size=[32,32]",
            "data.synthetic_train=12",
            "data.synthetic_val=6",
            "data.synthetic_test=6",
            "model.base_channels=4",
            "model.depth=2",
            "train.max_epochs=1",
            "train.progress_bar=false",
        ],
    )
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return train(config, tmp_path_factory.mktemp("serve_runs") / "tiny").run_dir
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="session")
def volume_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained tiny 1-channel HLF-Net for NIfTI volumes (weights + model.json, as training writes them)."""
    from hlfnet.models import create_model, save_model

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("serve_volume_run")
    model = create_model("hlfnet", in_channels=1, out_channels=1, base_channels=4, depth=2)
    data = {
        "format": "nifti",
        "root": str(root),
        "image_size": [32, 32],
        "in_channels": 1,
        "ct_window": [-200.0, 300.0],
    }
    return save_model(model, root / "model.safetensors", extra={"data": data})


#: The three classes of ``class_run``: masks stored 0/128/255 (``data.label_values``), named in its config.
CLASS_VALUES = (0, 128, 255)
CLASS_NAMES = ("background", "nucleus", "cytoplasm")


@pytest.fixture(scope="session")
def class_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny 3-class Unet-28 (base 4, depth 2, RGB + grey 32×32) whose head says class 2 everywhere.

    Untrained weights with the output layer's weights 0 and bias (0, 0, 8): the prediction is known without the
    model (every pixel class 2, stored as 255), whatever the image — a one-epoch model may predict nothing.
    """
    from hlfnet.models import create_model, save_model

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("serve_class_run")
    model = create_model("unet", in_channels=4, out_channels=3, base_channels=4, depth=2)
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.copy_(torch.tensor([0.0, 0.0, 8.0]))
    data = {
        "format": "folder",
        "root": str(root),
        "image_size": [32, 32],
        "in_channels": 4,
        "label_values": list(CLASS_VALUES),
        "class_names": list(CLASS_NAMES),
    }
    return save_model(model, root / "model.safetensors", extra={"data": data})


def class_truth(size: int) -> np.ndarray:
    """A ``size``×``size`` ground truth of class indices: a nucleus (1) beside a cytoplasm (2) block."""
    truth = np.zeros((size, size), np.uint8)
    truth[size // 8 : size * 9 // 16, size // 16 : size * 7 // 16] = 1
    truth[size * 7 // 16 : size * 29 // 32, size * 13 // 32 : size * 15 // 16] = 2
    return truth


def write_rgb_image(path: Path, size: int) -> Path:
    """A smooth RGB test picture (PNG), the same for every call."""
    from PIL import Image

    y, x = np.mgrid[0:size, 0:size] / max(1, size - 1)
    rgb = np.stack([x, y, 1 - x * y], axis=-1)
    Image.fromarray(np.rint(rgb * 200 + 30).astype(np.uint8), mode="RGB").save(path)
    return path


@dataclass(frozen=True)
class LesionImages:
    """Eight lesion images and their 0/255 masks: the shared real ISIC 2017 JPEGs, or synthetic stand-ins."""

    images: list[Path]
    truths: list[Path]
    real: bool


@pytest.fixture(scope="session")
def lesion_images(tmp_path_factory: pytest.TempPathFactory) -> LesionImages:
    """Real ISIC 2017 images where ``../shared/data`` exists; elsewhere (a clone without the data) eight
    256×256 synthetic lesion JPEGs with their masks, so that the server, load and browser tests still run."""
    folder = shared_data_root() / "isic2017"
    images = sorted((folder / "ISIC-2017_Training_Data").glob("ISIC_*.jpg"))[:8]
    if len(images) == 8:
        truths = [
            folder / "ISIC-2017_Training_Part1_GroundTruth" / f"{p.stem}_segmentation.png" for p in images
        ]
        return LesionImages(images, truths, real=True)
    from PIL import Image

    from hlfnet.data.synthetic import write_synthetic_folder

    out = write_synthetic_folder(tmp_path_factory.mktemp("lesions") / "synthetic", "test", 8, (256, 256))
    images = []
    for png in sorted((out / "images").glob("*.png")):
        jpeg = png.with_suffix(".jpg")
        Image.open(png).convert("RGB").save(jpeg, quality=92)
        images.append(jpeg)
    return LesionImages(images, [out / "masks" / f"{p.stem}.png" for p in images], real=False)


@pytest.fixture(scope="session")
def isic_images(lesion_images: LesionImages) -> list[Path]:
    """Eight real ISIC 2017 images (the shared 256×256 JPEGs), or synthetic stand-ins without the shared data."""
    return lesion_images.images


@pytest.fixture(scope="session")
def isic_image(isic_images: list[Path]) -> Path:
    """``ISIC_0000000.jpg``."""
    return isic_images[0]


@pytest.fixture(scope="session")
def isic_truth(lesion_images: LesionImages) -> Path:
    """The 0/255 mask of ``isic_image``."""
    return lesion_images.truths[0]


@pytest.fixture
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clean_exit(code: int) -> int:
    """0 for a graceful stop on SIGTERM: hlfnet's signal policy answers it with status 143 (128 + 15) and a
    line, after uvicorn has shut down cleanly (a process killed by the signal itself ends with -15)."""
    return 0 if code in (-signal.SIGTERM, 128 + signal.SIGTERM) else code


@dataclass
class Server:
    """A running ``hlfnet serve`` process."""

    process: subprocess.Popen[bytes]
    url: str
    port: int
    tmpdir: Path
    log: Path

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, then the exit status; 0 for a graceful stop (uvicorn re-raises the signal once it has shut
        down cleanly, so the process ends "killed by SIGTERM")."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return clean_exit(self.process.wait(timeout))

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def start_server(model: Path, folder: Path, *args: str, ready_timeout: float = 90) -> Server:
    """``python -m hlfnet serve --model MODEL --port FREE ARGS`` with ``TMPDIR=folder/tmp``; waits for /readyz.

    The server's private temporary folder therefore lies under ``folder/tmp``, where the tests can check it.
    """
    import httpx

    port = free_port()
    tmpdir = folder / "tmp"
    tmpdir.mkdir(parents=True, exist_ok=True)
    log = folder / f"server-{port}.log"
    env = {**os.environ, "TMPDIR": str(tmpdir), "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    command = [
        sys.executable,
        "-m",
        "hlfnet",
        "serve",
        "--model",
        str(model),
        "--port",
        str(port),
        "--threads",
        "1",
    ]
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [*command, "--log-level", "warning", *args], cwd=REPO_ROOT, env=env, stdout=out, stderr=out
        )
    server = Server(process, f"http://127.0.0.1:{port}", port, tmpdir, log)
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"hlfnet serve exited with {process.returncode}:\n{server.log_text()}")
        try:
            if httpx.get(f"{server.url}/readyz", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"hlfnet serve not ready after {ready_timeout} s:\n{server.log_text()}")


@pytest.fixture(scope="module")
def server(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``hlfnet serve`` on the tiny run with default settings, for the module."""
    srv = start_server(tiny_run, tmp_path_factory.mktemp("server"))
    yield srv
    assert srv.stop() == 0, srv.log_text()


def reference_masks(run: Path, images: list[Path], folder: Path) -> dict[str, bytes]:
    """What ``hlfnet predict`` writes for each image, predicted on its own (``Predictor.predict`` on a file)."""
    from hlfnet.evaluation import Predictor

    predictor = Predictor.from_path(run, workers=0)
    out = {}
    for image in images:
        target = folder / image.stem
        (written,) = predictor.predict(image, target)
        out[image.name] = written.read_bytes()
    return out
