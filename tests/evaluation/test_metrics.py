"""Metrics against ISIC's own scorer (``isic-challenge-scoring`` 5.6.0) on synthetic masks and on real ISIC
2017 masks, plus hand-worked cases.

The scorer is imported by the ``isic`` fixture, so that only the comparisons with it skip when it is missing;
the comparisons on synthetic masks need no data and always run where the scorer is installed (it is a test
dependency).
"""

from __future__ import annotations

from fractions import Fraction
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
    scores_from_confusion,
    scores_from_logits,
)


@pytest.fixture(scope="module")
def isic() -> SimpleNamespace:
    """The official scorer's modules and our key -> its function; skips only the tests that use it."""
    metrics = pytest.importorskip("isic_challenge_scoring.metrics")
    confusion = pytest.importorskip("isic_challenge_scoring.confusion")
    segmentation = pytest.importorskip("isic_challenge_scoring.segmentation")
    scorer = {
        "dice": metrics.binary_dice,
        "jaccard": metrics.binary_jaccard,
        "accuracy": metrics.binary_accuracy,
        "sensitivity": metrics.binary_sensitivity,
        "specificity": metrics.binary_specificity,
        "thresholded_jaccard": metrics.binary_threshold_jaccard,
    }
    return SimpleNamespace(confusion=confusion, segmentation=segmentation, scorer=scorer)


def _synthetic_masks(
    count: int, rng: np.random.Generator, shape: tuple[int, int] = (48, 64)
) -> list[np.ndarray]:
    """Lesion-like masks: one or two ellipses of random size and place (some touching the border)."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    masks = []
    for _ in range(count):
        mask = np.zeros(shape, dtype=bool)
        for _ in range(int(rng.integers(1, 3))):
            cy, cx = rng.uniform(0, shape[0]), rng.uniform(0, shape[1])
            ry, rx = rng.uniform(3, shape[0] / 2), rng.uniform(3, shape[1] / 2)
            mask |= ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
        masks.append(mask)
    return masks


def _check_per_image(isic: SimpleNamespace, masks: list[np.ndarray], rng: np.random.Generator) -> int:
    """Every perturbation of every mask (and of an empty and a full truth): ours == the scorer's, per image."""
    checked = 0
    for mask in masks:
        # also an empty and a full ground truth, for the scorer's "freebie" rules
        for truth in (mask, np.zeros_like(mask), np.ones_like(mask)):
            preds = _perturbations(mask, rng)
            ours = binary_scores(
                torch.from_numpy(np.stack(preds)), torch.from_numpy(np.stack([truth] * len(preds)))
            )
            for i, pred in enumerate(preds):
                cm = isic.confusion.create_binary_confusion_matrix(truth, pred)
                for key, fn in isic.scorer.items():
                    assert float(ours[key][i]) == pytest.approx(float(fn(cm)), abs=1e-12), (key, i)
                    checked += 1
    return checked


def _check_macro_average(
    isic: SimpleNamespace, masks: list[tuple[str, np.ndarray]], rng: np.random.Generator
) -> None:
    """The mean of our per-image scores == ``SegmentationScore(pairs).macro_average`` on 0/255 images."""
    pairs, preds, truths = [], [], []
    for image_id, mask in masks:
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
    official = isic.segmentation.SegmentationScore(pairs).macro_average
    ours = mean_scores(binary_scores(torch.from_numpy(np.stack(preds)), torch.from_numpy(np.stack(truths))))
    for key in BINARY_METRICS:
        theirs = official["threshold_jaccard" if key == "thresholded_jaccard" else key]
        assert ours[key] == pytest.approx(float(theirs), abs=1e-12), key


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


def test_per_image_scores_equal_isic_scorer_on_synthetic_masks(isic: SimpleNamespace) -> None:
    rng = np.random.default_rng(0)
    checked = _check_per_image(isic, _synthetic_masks(12, rng), rng)
    assert checked == 12 * 3 * 8 * len(isic.scorer)


def test_per_image_scores_equal_isic_scorer_on_tiny_random_masks(isic: SimpleNamespace) -> None:
    """Tiny noise masks hit every corner: one pixel, thresholded Jaccard near 0.65, empty and full."""
    rng = np.random.default_rng(2)
    preds = rng.random((400, 3, 4)) < rng.random((400, 1, 1))
    truths = rng.random((400, 3, 4)) < rng.random((400, 1, 1))
    ours = binary_scores(torch.from_numpy(preds), torch.from_numpy(truths))
    for i in range(len(preds)):
        cm = isic.confusion.create_binary_confusion_matrix(truths[i], preds[i])
        for key, fn in isic.scorer.items():
            assert float(ours[key][i]) == pytest.approx(float(fn(cm)), abs=1e-12), (key, i)
    # the thresholded Jaccard was exercised on both sides of 0.65, and the empty-mask rules were reached
    jaccard = ours["jaccard"].numpy()
    assert ((jaccard > 0) & (jaccard < 0.65)).any() and (jaccard >= 0.65).any()
    assert (~truths.reshape(400, -1).any(1)).any() or (truths.reshape(400, -1).all(1)).any()


def test_macro_average_equals_segmentation_score_on_synthetic_masks(isic: SimpleNamespace) -> None:
    rng = np.random.default_rng(1)
    masks = [(f"ISIC_{i:07d}", m) for i, m in enumerate(_synthetic_masks(20, rng))]
    _check_macro_average(isic, masks, rng)


@pytest.mark.realdata
def test_per_image_scores_equal_isic_scorer_on_real_masks(isic: SimpleNamespace, isic_root: Path) -> None:
    rng = np.random.default_rng(0)
    checked = _check_per_image(isic, [mask for _, mask in _real_masks(isic_root, 12)], rng)
    assert checked == 12 * 3 * 8 * len(isic.scorer)


@pytest.mark.realdata
def test_macro_average_equals_segmentation_score(isic: SimpleNamespace, isic_root: Path) -> None:
    _check_macro_average(isic, _real_masks(isic_root, 20), np.random.default_rng(1))


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


def test_thresholded_jaccard_keeps_exactly_065_and_zeroes_below() -> None:
    """13 / 20 = 0.65 is kept (ISIC: ``jaccard >= 0.65``); 12 / 19 < 0.65 scores 0."""
    target = torch.zeros(2, 1, 20, dtype=torch.bool)
    pred = torch.zeros(2, 1, 20, dtype=torch.bool)
    target[0, 0, :13] = True  # TP 13
    pred[0, 0, :20] = True  # FP 7
    target[1, 0, :12] = True  # TP 12
    pred[1, 0, :19] = True  # FP 7
    scores = binary_scores(pred, target)
    assert scores["jaccard"].tolist() == [13 / 20, 12 / 19]
    assert scores["thresholded_jaccard"].tolist() == [0.65, 0.0]


def test_scores_are_float64_and_per_image() -> None:
    pred = torch.tensor([[1, 0, 0], [1, 1, 1]], dtype=torch.uint8)
    target = torch.tensor([[1, 1, 0], [0, 0, 0]], dtype=torch.uint8)
    scores = binary_scores(pred, target)
    assert list(scores) == list(BINARY_METRICS)
    for value in scores.values():
        assert value.dtype == torch.float64 and value.shape == (2,)
    # image 2: empty truth, full prediction: sensitivity is the freebie 1, the rest 0
    assert scores["dice"].tolist() == [2 / 3, 0.0]
    assert scores["sensitivity"].tolist() == [0.5, 1.0]
    assert scores["specificity"].tolist() == [1.0, 0.0]
    assert scores["accuracy"].tolist() == [2 / 3, 0.0]
    means = mean_scores(scores)
    assert means["dice"] == 1 / 3 and isinstance(means["dice"], float)


def test_value_errors_name_the_values() -> None:
    with pytest.raises(ValueError, match=r"found values such as \[2, 3, 4, 5, 6\]$"):
        binary_scores(torch.arange(8).view(1, 8), torch.zeros(1, 8, dtype=torch.long))
    with pytest.raises(ValueError, match=r"^target must be boolean.*found values such as \[-1\]$"):
        binary_scores(torch.zeros(1, 2, dtype=torch.long), torch.tensor([[0, -1]]))
    with pytest.raises(ValueError, match=r"^pred must be boolean"):
        binary_scores(torch.tensor([[0.5, 1.0]]), torch.zeros(1, 2))
    with pytest.raises(
        ValueError, match=r"^pred and target must have the same shape, got \(1, 2\) and \(1, 3\)$"
    ):
        binary_confusion(torch.zeros(1, 2), torch.zeros(1, 3))
    with pytest.raises(ValueError, match=r"^expected \(B, \*spatial\) .* got shape \(4,\)$"):
        binary_confusion(torch.zeros(4), torch.zeros(4))
    # 0.0 and 1.0 floats are fine, and so is a bool tensor against an integer one
    assert binary_scores(torch.tensor([[0.0, 1.0]]), torch.tensor([[False, True]]))["dice"].tolist() == [1.0]


def test_multiclass_and_logits_errors() -> None:
    labels = torch.zeros(1, 2, 2, dtype=torch.long)
    with pytest.raises(
        ValueError, match=r"^labels must be integers, got dtypes torch.float32 and torch.int64$"
    ):
        multiclass_scores(labels.float(), labels, 2)
    with pytest.raises(
        ValueError, match=r"^pred and target must have the same shape, got \(1, 2, 2\) and \(1, 4\)$"
    ):
        multiclass_scores(labels, labels.view(1, 4), 2)
    with pytest.raises(ValueError, match=r"^target labels must lie in \[0, 2\), found -1\.\.-1$"):
        multiclass_scores(labels, labels - 1, 2)
    with pytest.raises(ValueError, match=r"^pred labels must lie in \[0, 2\), found 0\.\.2$"):
        multiclass_scores(torch.tensor([[[0, 2]]]), torch.tensor([[[0, 1]]]), 2)
    with pytest.raises(ValueError, match=r"^num_classes must be at least 2 .* got 1$"):
        multiclass_scores(labels, labels, 1)
    with pytest.raises(ValueError, match=r"^expected logits \(B, K, \*S\), got shape \(1, 4\)$"):
        scores_from_logits(torch.zeros(1, 4), torch.zeros(1, 4))
    with pytest.raises(
        ValueError, match=r"^target must be \(B, 1, \*S\) or \(B, \*S\), got shape \(1, 2, 2, 2\)$"
    ):
        scores_from_logits(torch.zeros(1, 3, 2, 2), torch.zeros(1, 2, 2, 2, dtype=torch.long))
    # an empty label map is valid (nothing to range-check)
    empty = torch.zeros(1, 0, dtype=torch.long)
    assert multiclass_scores(empty, empty, 2)["dice"].tolist() == [[1.0, 1.0]]


def test_scores_from_logits_target_with_channel_and_foreground_mean_excludes_background() -> None:
    # 3 classes; class 2 never predicted nor present: its Dice is the freebie 1
    logits = torch.full((1, 3, 2, 2), -5.0)
    logits[0, 0, 0, 0] = 5.0  # background
    logits[0, 1, 0, 1] = logits[0, 1, 1, 0] = logits[0, 1, 1, 1] = 5.0  # class 1 at three pixels
    target = torch.tensor([[[[0, 1], [1, 0]]]])  # (B, 1, H, W)
    # class 1: TP 2, FP 1, FN 0 -> Dice 4/5; class 2: 1; foreground mean 0.9 (background Dice 2/3 excluded)
    assert scores_from_logits(logits, target)["dice"].tolist() == pytest.approx([0.9], abs=1e-12)
    # binary logits: foreground exactly where the logit is > 0 (0 itself is background)
    binary = torch.tensor([[[[0.0, 1e-6], [-1e-6, 2.0]]]])
    assert scores_from_logits(binary, torch.tensor([[[0, 1], [0, 1]]]))["dice"].tolist() == [1.0]


def test_scores_from_logits_one_spatial_dimension_and_float_labels() -> None:
    """``(B, K, N)`` logits are valid (one spatial axis); 0/1 float targets are fine for binary logits."""
    logits = torch.tensor([[[2.0, -2.0, 2.0, -2.0]]])
    target = torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    assert scores_from_logits(logits, target)["dice"].tolist() == [2 / 3]
    assert scores_from_logits(logits, target[:, None])["jaccard"].tolist() == [0.5]


def test_scores_are_exact_for_counts_beyond_float32() -> None:
    """A 512×512×100 CT volume has 26 M voxels, past float32's exact integers (2**24 = 16.8 M): every ratio is the
    exact fraction rounded once to float64 (J = 1 / (2**24 + 1), not the 1 / 2**24 of a float32 denominator)."""
    big = 2**24
    tp, fp, fn, tn = (torch.tensor([v]) for v in (1, big, 0, 3))
    scores = scores_from_confusion(tp, fp, fn, tn)
    exact = {
        "dice": Fraction(2, 2 + big),
        "jaccard": Fraction(1, 1 + big),
        "accuracy": Fraction(1 + 3, 1 + 3 + big),
        "sensitivity": Fraction(1, 1),
        "specificity": Fraction(3, 3 + big),
    }
    for key, value in exact.items():
        assert scores[key].dtype == torch.float64 and scores[key].item() == float(value), key


def test_confusion_counts_are_int64() -> None:
    tp, fp, fn, tn = binary_confusion(torch.tensor([[1, 1, 0, 0]]), torch.tensor([[1, 0, 1, 0]]))
    assert [t.dtype for t in (tp, fp, fn, tn)] == [torch.int64] * 4
    assert [t.item() for t in (tp, fp, fn, tn)] == [1, 1, 1, 1]


def test_mean_scores_average_in_float64_whatever_the_input_dtype() -> None:
    """float32 scores are averaged in float64 (a float32 mean of 0.1, 0.2, 0.4 is off by about 1e-8); integer
    and boolean per-image values average too."""
    f32 = torch.tensor([0.1, 0.2, 0.4], dtype=torch.float32)
    exact = sum(Fraction(v) for v in f32.tolist()) / 3  # the float32 values, exactly
    assert mean_scores({"dice": f32})["dice"] == pytest.approx(float(exact), rel=1e-15, abs=0)
    means = mean_scores({"hits": torch.tensor([1, 0, 0]), "passed": torch.tensor([True, True, False])})
    assert means["hits"] == pytest.approx(1 / 3, rel=1e-15) and means["passed"] == pytest.approx(
        2 / 3, rel=1e-15
    )
