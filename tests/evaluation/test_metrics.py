"""Metrics against ISIC's own scorer (``isic-challenge-scoring`` 5.6.0) on real ISIC 2017 masks."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from hlfnet.evaluation.metrics import (
    BINARY_METRICS,
    binary_confusion,
    binary_scores,
    foreground_mean,
    mean_scores,
    multiclass_scores,
    scores_from_logits,
)

isic_metrics = pytest.importorskip("isic_challenge_scoring.metrics")
isic_confusion = pytest.importorskip("isic_challenge_scoring.confusion")
isic_segmentation = pytest.importorskip("isic_challenge_scoring.segmentation")

# our key -> the scorer's function
SCORER = {
    "dice": isic_metrics.binary_dice,
    "jaccard": isic_metrics.binary_jaccard,
    "accuracy": isic_metrics.binary_accuracy,
    "sensitivity": isic_metrics.binary_sensitivity,
    "specificity": isic_metrics.binary_specificity,
    "thresholded_jaccard": isic_metrics.binary_threshold_jaccard,
}


def _perturbations(mask: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    """Predictions of every kind for one real mask: exact, shifted, grown, shrunk, noisy, empty, full."""
    m = mask.astype(bool)
    grown = m.copy()
    shrunk = m.copy()
    for axis in (0, 1):
        for step in (-3, 3):
            grown |= np.roll(m, step, axis=axis)
            shrunk &= np.roll(m, step, axis=axis)
    noisy = m ^ (rng.random(m.shape) < 0.05)
    return [
        m,
        np.roll(m, (9, -14), axis=(0, 1)),
        grown,
        shrunk,
        noisy,
        np.zeros_like(m),
        np.ones_like(m),
        m[::-1],
    ]


def _real_masks(isic_root: Path, count: int) -> list[tuple[str, np.ndarray]]:
    files = sorted((isic_root / "ISIC-2017_Training_Part1_GroundTruth").glob("ISIC_*_segmentation.png"))[
        :count
    ]
    assert files, f"no masks under {isic_root}"
    return [(f.stem.split("_segmentation")[0], np.asarray(Image.open(f).convert("L")) > 128) for f in files]


@pytest.mark.realdata
def test_per_image_scores_equal_isic_scorer_on_real_masks(isic_root: Path) -> None:
    rng = np.random.default_rng(0)
    checked = 0
    for _, mask in _real_masks(isic_root, 12):
        # also an empty and a full ground truth, for the scorer's "freebie" rules
        for truth in (mask, np.zeros_like(mask), np.ones_like(mask)):
            preds = _perturbations(mask, rng)
            ours = binary_scores(
                torch.from_numpy(np.stack(preds)), torch.from_numpy(np.stack([truth] * len(preds)))
            )
            for i, pred in enumerate(preds):
                cm = isic_confusion.create_binary_confusion_matrix(truth, pred)
                for key, fn in SCORER.items():
                    assert float(ours[key][i]) == pytest.approx(float(fn(cm)), abs=1e-6), (key, i)
                    checked += 1
    assert checked == 12 * 3 * 8 * len(SCORER)


@pytest.mark.realdata
def test_macro_average_equals_segmentation_score(isic_root: Path) -> None:
    rng = np.random.default_rng(1)
    pairs, preds, truths = [], [], []
    for image_id, mask in _real_masks(isic_root, 20):
        pred = _perturbations(mask, rng)[int(rng.integers(0, 8))]
        pairs.append(
            SimpleNamespace(
                image_id=image_id,
                truth_image=mask.astype(np.uint8) * 255,
                prediction_image=pred.astype(np.uint8) * 255,
            )
        )
        preds.append(pred)
        truths.append(mask)
    official = isic_segmentation.SegmentationScore(pairs).macro_average
    ours = mean_scores(binary_scores(torch.from_numpy(np.stack(preds)), torch.from_numpy(np.stack(truths))))
    for key in BINARY_METRICS:
        theirs = official["threshold_jaccard" if key == "thresholded_jaccard" else key]
        assert ours[key] == pytest.approx(float(theirs), abs=1e-6), key


def test_confusion_counts_and_edge_cases() -> None:
    pred = torch.tensor([[[1, 1], [0, 0]], [[0, 0], [0, 0]], [[0, 0], [0, 0]]])
    target = torch.tensor([[[1, 0], [1, 0]], [[0, 0], [0, 0]], [[1, 1], [1, 1]]])
    tp, fp, fn, tn = binary_confusion(pred, target)
    assert tp.tolist() == [1, 0, 0] and fp.tolist() == [1, 0, 0]
    assert fn.tolist() == [1, 0, 4] and tn.tolist() == [1, 4, 0]
    s = binary_scores(pred.bool(), target.float())
    assert s["dice"].tolist() == pytest.approx([0.5, 1.0, 0.0])
    assert s["jaccard"].tolist() == pytest.approx([1 / 3, 1.0, 0.0])
    assert s["thresholded_jaccard"].tolist() == pytest.approx([0.0, 1.0, 0.0])
    assert s["sensitivity"].tolist() == pytest.approx([0.5, 1.0, 0.0])
    assert s["specificity"].tolist() == pytest.approx([0.5, 1.0, 1.0])  # no negatives in image 3: freebie
    assert s["accuracy"].tolist() == pytest.approx([0.5, 1.0, 0.0])


def test_volume_scores_any_spatial_dims() -> None:
    vol = torch.zeros(1, 3, 4, 4, dtype=torch.bool)
    vol[0, 1, 1:3, 1:3] = True
    assert binary_scores(vol, vol)["dice"].tolist() == [1.0]
    half = vol.clone()
    half[0, 1, 1] = False
    assert binary_scores(half, vol)["dice"].tolist() == pytest.approx([2 * 2 / (2 + 4)])


@pytest.mark.parametrize(
    "pred, target, match",
    [
        (torch.zeros(2, 3, 3), torch.zeros(2, 3, 4), "same shape"),
        (torch.zeros(5), torch.zeros(5), "spatial"),
        (torch.full((1, 2, 2), 0.7), torch.zeros(1, 2, 2), "0 and 1"),
        (torch.zeros(1, 2, 2), torch.full((1, 2, 2), 255, dtype=torch.uint8), "0 and 1"),
    ],
)
def test_bad_inputs_raise(pred: torch.Tensor, target: torch.Tensor, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        binary_scores(pred, target)


def test_multiclass_one_vs_rest_and_foreground_mean() -> None:
    target = torch.tensor([[[0, 1], [2, 2]]])
    pred = torch.tensor([[[0, 1], [2, 1]]])
    scores = multiclass_scores(pred, target, 3)
    assert scores["dice"].shape == (1, 3)
    assert scores["dice"][0].tolist() == pytest.approx([1.0, 2 / 3, 2 / 3])
    assert foreground_mean(scores)["dice"].tolist() == pytest.approx([2 / 3])
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        multiclass_scores(pred + 1, target, 3)
    with pytest.raises(ValueError, match="at least 2"):
        multiclass_scores(pred, target, 1)


def test_scores_from_logits_binary_and_multiclass() -> None:
    target = torch.tensor([[[[1, 0], [0, 0]]]])
    logits = torch.tensor([[[[3.0, -1.0], [-2.0, 0.5]]]])
    assert scores_from_logits(logits, target)["dice"].tolist() == pytest.approx([2 / 3])
    multi = torch.stack([-logits[:, 0], logits[:, 0]], dim=1)  # class 1 wins where logit > 0
    assert scores_from_logits(multi, target)["dice"].tolist() == pytest.approx([2 / 3])
