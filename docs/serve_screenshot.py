"""Retake ``docs/serve.png``: ``hlfnet serve`` (the shipped hlfnet-isic2017) in headless Chromium with two held-out
ISIC 2017 images and their ground truths (``../shared/data``).

    python docs/serve_screenshot.py [OUTPUT.png]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from playwright.sync_api import sync_playwright  # noqa: E402
from tests.conftest import shared_data_root  # noqa: E402
from tests.serve.conftest import start_server  # noqa: E402
from tests.serve.test_browser import CHROMIUM_ARGS, chromium_path  # noqa: E402


def main(output: Path) -> None:
    data = shared_data_root() / "isic2017"
    ids = ["ISIC_0000001", "ISIC_0000003"]  # of the shipped model's test split: never used for training
    images = [str(data / "ISIC-2017_Training_Data" / f"{i}.jpg") for i in ids]
    truths = [str(data / "ISIC-2017_Training_Part1_GroundTruth" / f"{i}_segmentation.png") for i in ids]
    with tempfile.TemporaryDirectory() as folder:
        server = start_server("hlfnet-isic2017", Path(folder))
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.goto(server.url + "/")
                page.wait_for_selector("#model:has-text('model: hlfnet')")
                page.set_input_files("#truth", truths)
                page.set_input_files("#files", images)
                page.locator(".card[data-scored='true']").nth(len(ids) - 1).wait_for(timeout=120_000)
                page.screenshot(path=str(output), full_page=True)
                browser.close()
        finally:
            server.stop()


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "docs" / "serve.png")
