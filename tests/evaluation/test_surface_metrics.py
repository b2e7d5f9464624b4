"""Boundary metrics (HD95, ASSD, NSD), per-class scores, field-of-view masks and ``hlfnet score``'s new options.

Expected values are worked by hand on masks of one or two pixels (every pixel of such a mask is a boundary
pixel, so the distances are plain pixel distances), and checked against MONAI's functions on random masks.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hlfnet.evaluation.evaluate import score_labels
from hlfnet.evaluation.metrics import surface_scores
from hlfnet.evaluation.score import score_folders


def labels(shape, *pixels, value=1):
    out = np.zeros(shape, np.uint8)
    for p in pixels:
        out[p] = value
    return out


def test_one_pixel_three_columns_apart_by_hand() -> None:
    pred = torch.from_numpy(labels((8, 8), (2, 5)))
    truth = torch.from_numpy(labels((8, 8), (2, 2)))
    s = surface_scores(pred, truth, 2)
    assert s["hd95"].tolist() == [3.0] and s["assd"].tolist() == [3.0]
    assert s["nsd"].tolist() == [0.0]  # both boundary pixels 3 > 1 pixel from the other mask
    assert surface_scores(pred, truth, 2, tolerance=3.0)["nsd"].tolist() == [1.0]
    # 2 mm rows, 0.5 mm columns: the three columns are 1.5 mm
    spaced = surface_scores(pred, truth, 2, spacing=(2.0, 0.5))
    assert spaced["hd95"].tolist() == [1.5] and spaced["assd"].tolist() == [1.5]


def test_two_pixels_against_one_by_hand() -> None:
    # truth (2,2),(2,3); prediction (2,2). Prediction→truth distances [0]; truth→prediction [0, 1].
    pred = torch.from_numpy(labels((6, 6), (2, 2)))
    truth = torch.from_numpy(labels((6, 6), (2, 2), (2, 3)))
    s = surface_scores(pred, truth, 2, tolerance=0.5)
    # HD95: the larger of the two directed 95th percentiles, np.percentile([0, 1], 95) = 0.95
    assert s["hd95"].item() == pytest.approx(0.95)
    assert s["assd"].item() == pytest.approx(1 / 3)  # mean of all three distances 0, 0, 1
    assert s["nsd"].item() == pytest.approx(2 / 3)  # 2 of the 3 boundary pixels within 0.5


def test_empty_masks_follow_the_stated_rules() -> None:
    empty = torch.zeros((4, 6), dtype=torch.int64)
    one = torch.from_numpy(labels((4, 6), (1, 1)).astype(np.int64))
    both = surface_scores(empty, empty, 2)
    assert all(math.isnan(both[m].item()) for m in ("hd95", "assd", "nsd"))
    missed = surface_scores(empty, one, 2, spacing=(3.0, 4.0))
    diagonal = math.hypot(4 * 3.0, 6 * 4.0)
    assert missed["hd95"].item() == pytest.approx(diagonal) and missed["assd"].item() == pytest.approx(
        diagonal
    )
    assert missed["nsd"].item() == 0.0
    assert surface_scores(one, empty, 2)["nsd"].item() == 0.0


@pytest.mark.parametrize("dims", [2, 3])
def test_equal_to_monai_on_random_multiclass_masks(dims: int) -> None:
    from monai.metrics import (
        compute_average_surface_distance,
        compute_hausdorff_distance,
        compute_surface_dice,
    )

    rng = np.random.default_rng(dims)
    shape = (24, 20) if dims == 2 else (12, 10, 8)
    spacing = (0.7, 1.3) if dims == 2 else (0.7, 1.3, 2.5)
    truth = torch.from_numpy(rng.integers(0, 3, shape))
    pred = torch.where(
        torch.from_numpy(rng.random(shape) < 0.2), torch.from_numpy(rng.integers(0, 3, shape)), truth
    )
    ours = surface_scores(pred, truth, 3, spacing=spacing, tolerance=1.5)
    one_hot = lambda x: torch.nn.functional.one_hot(x, 3).movedim(-1, 0)[None].float()  # noqa: E731
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hd = compute_hausdorff_distance(one_hot(pred), one_hot(truth), percentile=95, spacing=spacing)[0]
        asd = compute_average_surface_distance(
            one_hot(pred), one_hot(truth), symmetric=True, spacing=spacing
        )[0]
        nsd = compute_surface_dice(one_hot(pred), one_hot(truth), [1.5, 1.5], spacing=spacing)[0]
    np.testing.assert_allclose(ours["hd95"].numpy(), hd.numpy(), atol=1e-6)
    np.testing.assert_allclose(ours["assd"].numpy(), asd.numpy(), atol=1e-6)
    np.testing.assert_allclose(ours["nsd"].numpy(), nsd.numpy(), atol=1e-6)


def test_score_labels_gives_per_class_scores_by_hand() -> None:
    truth = np.zeros((4, 4), np.uint8)
    truth[0, :2] = 1  # class 1: 2 pixels
    truth[3, :] = 2  # class 2: 4 pixels
    pred = truth.copy()
    pred[0, 2] = 1  # class 1: TP 2, FP 1 → Dice 4/5, Jaccard 2/3
    pred[3, 3] = 0  # class 2: TP 3, FN 1 → Dice 6/7, Jaccard 3/4
    s = score_labels(pred, truth, 3, surface=True)
    assert s["dice_class1"] == pytest.approx(4 / 5) and s["jaccard_class1"] == pytest.approx(2 / 3)
    assert s["dice_class2"] == pytest.approx(6 / 7) and s["jaccard_class2"] == pytest.approx(3 / 4)
    assert s["dice"] == pytest.approx((4 / 5 + 6 / 7) / 2)
    # class 1: truth→pred [0, 0], pred→truth [0, 0, 1] → HD95 = percentile([0,0,1], 95) = 0.9
    assert s["hd95_class1"] == pytest.approx(0.9)
    assert s["hd95"] == pytest.approx((s["hd95_class1"] + s["hd95_class2"]) / 2)


def test_field_of_view_limits_the_overlap_metrics() -> None:
    truth = labels((4, 4), (0, 0), value=1)
    pred = labels((4, 4), (0, 0), (3, 3), value=1)  # one false positive at (3, 3)
    fov = np.ones((4, 4), np.uint8)
    fov[3, 3] = 0  # … outside the field of view
    scored = score_labels(pred, truth, 2, fov=fov)
    assert scored["dice"] == 1.0 and scored["specificity"] == 1.0
    assert scored["accuracy"] == 1.0  # over the 15 pixels inside only
    assert score_labels(pred, truth, 2)["dice"] == pytest.approx(2 / 3)


def test_score_folders_with_gt_suffix_label_values_and_surface_metrics(tmp_path: Path) -> None:
    pred, truth, fov = tmp_path / "pred", tmp_path / "gt", tmp_path / "fov"
    for folder in (pred, truth, fov):
        folder.mkdir()
    t = np.zeros((6, 6), np.uint8)
    t[1, 1] = 128
    t[4, 1:3] = 255
    p = t.copy()
    p[1, 4] = 128  # class 1 gets a second pixel 3 columns away: pred→truth [0, 3], truth→pred [0]
    Image.fromarray(t).save(truth / "IMD002_lesion.bmp")
    Image.fromarray(p).save(pred / "IMD002.png")
    Image.fromarray(np.full((6, 6), 255, np.uint8)).save(fov / "IMD002_fov.png")
    result = score_folders(
        pred, truth, gt_suffix="_lesion", label_values=(0, 128, 255), output=tmp_path / "out", fov=fov
    )
    (case,) = result.cases
    assert case["dice_class1"] == pytest.approx(2 / 3) and case["dice_class2"] == 1.0
    assert case["hd95_class1"] == pytest.approx(np.percentile([0, 3], 95))
    assert case["assd_class1"] == pytest.approx(1.0)  # (0 + 3 + 0) / 3
    assert case["nsd_class1"] == pytest.approx(2 / 3) and case["nsd_class2"] == 1.0
    assert "thresholded_jaccard" not in case
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["label_values"] == [0, 128, 255] and summary["surface_units"] == "pixels"
    table = (tmp_path / "out" / "summary.md").read_text()
    assert "| Class | Dice | Jaccard | HD95 | ASSD | NSD |" in table


def test_score_cli_takes_the_new_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from hlfnet.cli import main

    pred, truth = tmp_path / "pred", tmp_path / "gt"
    pred.mkdir()
    truth.mkdir()
    mask = labels((5, 5), (2, 2), value=255)
    Image.fromarray(mask).save(pred / "ISIC_0000001.png")
    Image.fromarray(mask).save(truth / "ISIC_0000001_lesion.png")
    assert (
        main(
            [
                "score",
                "--pred",
                str(pred),
                "--gt",
                str(truth),
                "--gt-suffix",
                "_lesion",
                "--spacing",
                "0.5",
                "0.5",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "thresholded jaccard" in out  # ISIC ids: ISIC's column is kept
    assert "HD95" in out and "HD95/ASSD in mm" in out


def test_predictions_of_nnunet_channel_files_pair_with_their_case(tmp_path: Path) -> None:
    pred, truth = tmp_path / "pred", tmp_path / "labelsTs"
    pred.mkdir()
    truth.mkdir()
    mask = labels((5, 5), (2, 2), value=1)
    Image.fromarray(mask).save(pred / "cell_007_0000.png")  # `hlfnet predict --input imagesTs` names it so
    Image.fromarray(mask).save(truth / "cell_007.png")
    (case,) = score_folders(pred, truth).cases
    assert case["id"] == "cell_007" and case["dice"] == 1.0
