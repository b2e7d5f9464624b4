"""The page in a real browser: headless Chromium (Debian's ``chromium``) driven by Playwright uploads a real ISIC
image to ``hlfnet serve``, waits for the overlay, downloads the mask and checks it equals ``hlfnet predict``'s."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import numpy as np
import pytest

from tests.serve.conftest import Server, reference_masks, start_server

pytestmark = pytest.mark.slow

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str:
    path = os.environ.get("HLFNET_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        pytest.skip("no Chromium on this machine (Debian: apt-get install chromium; .ci/run installs it)")
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    playwright = pytest.importorskip(
        "playwright.sync_api", reason="the browser test needs playwright (test extra)"
    )
    executable = chromium_path()
    with playwright.sync_playwright() as p:
        try:
            instance = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        except Exception as error:  # a Chromium that cannot start here (no shared libraries...): say why
            pytest.skip(f"Chromium at {executable} does not start: {str(error).splitlines()[0]}")
        yield instance
        instance.close()


@pytest.fixture(scope="module")
def lesion_run(tiny_run, tmp_path_factory: pytest.TempPathFactory):
    """A copy of the tiny run whose output layer says "lesion" everywhere (head bias +8, weights 0).

    A one-epoch model on synthetic data may predict nothing on a real ISIC image, and an empty mask would make the
    overlay and opacity checks vacuous; this mask is known without the model: every pixel is foreground.
    """
    from safetensors.torch import load_file, save_file

    run = tmp_path_factory.mktemp("lesion") / "run"
    shutil.copytree(tiny_run, run)
    weights = load_file(run / "model.safetensors")
    weights["head.weight"] = weights["head.weight"] * 0
    weights["head.bias"] = weights["head.bias"] * 0 + 8
    save_file(weights, run / "model.safetensors")
    return run


@pytest.fixture(scope="module")
def server(lesion_run, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``hlfnet serve`` on the lesion-everywhere run (overrides the package's tiny-run server for this module)."""
    srv = start_server(lesion_run, tmp_path_factory.mktemp("server"))
    yield srv
    assert srv.stop() == 0, srv.log_text()


@pytest.fixture
def page(browser, server) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    # the page must not reach anything but this server
    outside: list[str] = []
    page.on(
        "request",
        lambda request: (
            None if request.url.startswith((server.url, "data:", "blob:")) else outside.append(request.url)
        ),
    )
    page.goto(server.url + "/")
    page.wait_for_selector("#model:has-text('model: hlfnet')")
    yield page
    context.close()
    assert not outside, outside
    assert not [e for e in errors if "status of 4" not in e], errors


def test_upload_overlay_download_scores_screenshot(
    page, server, lesion_run, isic_image, isic_truth, tmp_path
) -> None:
    from PIL import Image

    from hlfnet.data import read_mask
    from hlfnet.evaluation import binary_scores

    expected = reference_masks(lesion_run, [isic_image], tmp_path / "predict")[isic_image.name]
    page.set_input_files("#truth", str(isic_truth))
    page.set_input_files("#files", str(isic_image))
    card = page.locator(".card[data-state='done']")
    card.wait_for(timeout=60_000)
    page.locator("#progress-text:has-text('done: 1 file')").wait_for(timeout=30_000)
    # the overlay: the canvas shows the image at its size, with red where the mask is
    assert page.eval_on_selector(".card canvas", "c => [c.width, c.height]") == [256, 256]
    with page.expect_download() as download_info:
        card.locator("a.download").click()
    downloaded = tmp_path / "downloaded.png"
    download_info.value.save_as(downloaded)
    assert download_info.value.suggested_filename == f"{isic_image.stem}_mask.png"
    assert downloaded.read_bytes() == expected
    mask = read_mask(downloaded)
    assert mask.all(), "the lesion-everywhere model must give a full mask"
    assert card.locator("dd.area").inner_text().startswith(f"{int(mask.sum()):,}")
    # the scores against the ground truth, as binary_scores
    page.wait_for_selector(".score-dice")
    import torch

    scores = binary_scores(torch.from_numpy(mask)[None], torch.from_numpy(read_mask(isic_truth))[None])
    assert float(card.locator(".score-dice").inner_text()) == pytest.approx(
        float(scores["dice"][0]), abs=1e-4
    )
    assert float(card.locator(".score-jaccard").inner_text()) == pytest.approx(
        float(scores["jaccard"][0]), abs=1e-4
    )
    # the attention maps of Fig. 4
    assert card.locator(".attention img").count() == 4
    # the opacity slider redraws the overlay
    before = page.eval_on_selector(".card canvas", "c => c.toDataURL()")
    page.fill("#opacity", "90")
    page.dispatch_event("#opacity", "input")
    assert page.eval_on_selector(".card canvas", "c => c.toDataURL()") != before
    shot = tmp_path / "serve.png"
    page.screenshot(path=str(shot), full_page=True)
    picture = np.asarray(Image.open(shot).convert("RGB"))
    assert picture.shape[1] == 1280 and picture.std() > 10  # a rendered page, not a blank one
    if os.environ.get("HLFNET_SCREENSHOT"):
        shutil.copy(shot, os.environ["HLFNET_SCREENSHOT"])


def test_errors_are_shown_in_words(page, tmp_path) -> None:
    fake = tmp_path / "notes.png"
    fake.write_bytes(b"these are notes, not an image")
    page.set_input_files("#files", str(fake))
    error = page.locator(".card[data-state='error'] .card-error")
    error.wait_for(timeout=30_000)
    assert "not an image" in error.inner_text() and "unsupported_file" in error.inner_text()


def test_docs_render_every_operation(page, server) -> None:
    """/docs is Swagger UI 5 reading FastAPI's OpenAPI 3.1 from this server (Swagger UI 4 could not)."""
    import httpx

    spec = httpx.get(server.url + "/openapi.json").json()
    assert spec["openapi"].startswith("3.1")
    expected = {(method.upper(), path) for path, item in spec["paths"].items() for method in item}
    page.goto(server.url + "/docs")
    page.locator(".opblock").first.wait_for(timeout=60_000)
    assert "Unable to render this definition" not in page.content()
    methods, paths = page.locator(".opblock-summary-method"), page.locator(".opblock-summary-path")
    shown = {
        (methods.nth(i).inner_text().strip(), paths.nth(i).get_attribute("data-path"))
        for i in range(paths.count())
    }
    assert shown == expected
    # an operation opens with its parameters and its multipart body
    page.locator(".opblock-summary-path[data-path='/api/v1/predict']").click()
    body = page.locator(".opblock.is-open")
    body.locator(".parameters .parameter__name").first.wait_for(timeout=30_000)
    names = {n.inner_text().split("\n")[0].strip(" *") for n in body.locator(".parameter__name").all()}
    assert {"format", "probabilities", "attention", "preview"} <= names
    assert "multipart/form-data" in body.inner_text()


@pytest.fixture(scope="module")
def class_server(class_run, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``hlfnet serve`` on the tiny 3-class run (class 2 everywhere; masks 0/128/255; named classes)."""
    srv = start_server(class_run, tmp_path_factory.mktemp("class_server"))
    yield srv
    assert srv.stop() == 0, srv.log_text()


def test_multiclass_colours_legend_outlines_and_scores(browser, class_server, tmp_path) -> None:
    import torch
    from monai.metrics import compute_hausdorff_distance
    from PIL import Image

    from tests.serve.conftest import CLASS_NAMES, CLASS_VALUES, class_truth, write_rgb_image

    size = 64
    image = write_rgb_image(tmp_path / "cells.png", size)
    truth = class_truth(size)
    truth_file = tmp_path / "cells_mask.png"
    Image.fromarray(np.asarray(CLASS_VALUES, np.uint8)[truth], mode="L").save(truth_file)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(class_server.url + "/")
    page.wait_for_selector("#model:has-text('model: unet')")
    # the legend: one entry per foreground class, named from the run's config, in distinct colours
    legend = page.locator("#legend .legend-item")
    assert [legend.nth(i).inner_text().strip() for i in range(legend.count())] == list(CLASS_NAMES[1:])
    assert page.locator("#show-attention").is_hidden()  # Unet-28: no attention maps to offer
    colours = page.evaluate(
        "() => Array.from(document.querySelectorAll('#legend .swatch:not(.outline)'))"
        ".map(s => getComputedStyle(s).backgroundColor)"
    )
    assert len(set(colours)) == 2
    page.fill("#opacity", "100")
    page.dispatch_event("#opacity", "input")
    page.set_input_files("#truth", str(truth_file))
    page.set_input_files("#files", str(image))
    card = page.locator(".card[data-scored='true']")
    card.wait_for(timeout=60_000)

    def pixel(y: int, x: int) -> str:
        r, g, b = page.eval_on_selector(
            ".card canvas",
            f"c => Array.from(c.getContext('2d').getImageData({x}, {y}, 1, 1).data.slice(0, 3))",
        )
        return f"rgb({r}, {g}, {b})"

    nucleus, cytoplasm = colours
    # the prediction (class 2 everywhere) is filled in the cytoplasm's colour, away from any outline
    assert pixel(2, size - 3) == cytoplasm
    # the ground truth's outlines: the nucleus' top edge in its colour, the cytoplasm's bottom edge in its own
    ys, xs = np.nonzero(truth == 1)
    assert pixel(int(ys.min()), int(xs.mean())) == nucleus
    ys, xs = np.nonzero(truth == 2)
    assert pixel(int(ys.max()), int(xs.mean())) == cytoplasm
    # per-class scores: the nucleus was missed (Dice 0, HD95 the image diagonal), the cytoplasm by hand / MONAI
    rows = card.locator("tr.class-row")
    assert rows.count() == 2
    assert rows.nth(0).inner_text().split("\t")[0].strip() == "nucleus"
    assert float(rows.nth(0).locator(".cs-dice").inner_text()) == 0.0
    assert float(rows.nth(0).locator(".cs-hd95").inner_text()) == pytest.approx(
        np.hypot(size, size), abs=0.01
    )
    t = truth == 2
    dice = 2 * t.sum() / (t.sum() + size * size)
    assert float(rows.nth(1).locator(".cs-dice").inner_text()) == pytest.approx(dice, abs=1e-4)
    assert float(rows.nth(1).locator(".cs-jaccard").inner_text()) == pytest.approx(
        t.sum() / size**2, abs=1e-4
    )
    hd95 = float(
        compute_hausdorff_distance(
            torch.ones(1, 1, size, size), torch.from_numpy(t)[None, None].float(), percentile=95
        )
    )
    assert float(rows.nth(1).locator(".cs-hd95").inner_text()) == pytest.approx(hd95, abs=0.01)
    assert float(card.locator(".score-dice").inner_text()) == pytest.approx(dice / 2, abs=1e-4)
    shot = tmp_path / "serve-multiclass.png"
    page.screenshot(path=str(shot), full_page=True)
    if os.environ.get("HLFNET_SCREENSHOT_MULTICLASS"):
        shutil.copy(shot, os.environ["HLFNET_SCREENSHOT_MULTICLASS"])
    context.close()
    assert not errors, errors
