"""The training losses (:mod:`hlfnet.engine.loss`), pinned by hand-worked values.

Per image and channel MONAI's Dice loss is ``1 - (2 Σ p·t + ε) / (Σ p + Σ t + ε)`` with ``ε = 1e-5`` in
numerator and denominator (``smooth_nr = smooth_dr = 1e-5``); ``p`` is the sigmoid (one channel) or softmax
(``K`` channels) of the logits, ``t`` the mask (one-hot for ``K``), and the mean runs over images × channels.
The logits are chosen so that ``p`` is exact: ``σ(ln 3) = 3/4``, ``σ(-ln 3) = 1/4``, ``softmax(ln 2, 0, 0) =
(1/2, 1/4, 1/4)``. Everything runs in float64 and is compared to 1e-12, so ``ε`` is part of every expected value
(leaving it out moves them by 1e-6 or more).
"""

from __future__ import annotations

import math

import pytest
import torch

from hlfnet.engine.loss import dice_loss
from hlfnet.engine.module import SegmentationModule

E = 1e-5  # MONAI DiceLoss's smooth_nr and smooth_dr
LN3, LN2 = math.log(3.0), math.log(2.0)


def _dice(intersection: float, predicted: float, truth: float) -> float:
    return 1 - (2 * intersection + E) / (predicted + truth + E)


def _binary_pair() -> tuple[torch.Tensor, torch.Tensor, list[float]]:
    """Two 2×2 images, one channel.

    * image 1: logits (ln 3, ln 3, -ln 3, -ln 3) -> p = (3/4, 3/4, 1/4, 1/4), mask (1, 0, 0, 0):
      Σ p t = 3/4, Σ p = 2, Σ t = 1;
    * image 2: logits ln 3 everywhere -> p = 3/4, mask all 1: Σ p t = 3, Σ p = 3, Σ t = 4.
    """
    logits = torch.tensor([[LN3, LN3], [-LN3, -LN3], [LN3, LN3], [LN3, LN3]], dtype=torch.float64)
    mask = torch.tensor([[1, 0], [0, 0], [1, 1], [1, 1]], dtype=torch.float64)
    per_image = [_dice(0.75, 2.0, 1.0), _dice(3.0, 3.0, 4.0)]  # 0.4999983..., 0.1428569...
    return logits.view(2, 1, 2, 2), mask.view(2, 1, 2, 2), per_image


def test_binary_dice_is_per_image_sigmoid_dice_then_the_mean() -> None:
    logits, mask, per_image = _binary_pair()
    loss = dice_loss(1)(logits, mask)
    assert loss.dtype == torch.float64 and loss.shape == ()
    assert float(loss) == pytest.approx(sum(per_image) / 2, rel=1e-12, abs=0)
    # One Dice over the whole batch would be 1 - (7.5 + ε) / (10 + ε) = 0.25, not 0.3214; without the sigmoid
    # p = ±ln 3 gives another value again.


def test_binary_dice_without_reduction_is_one_value_per_image() -> None:
    logits, mask, per_image = _binary_pair()
    losses = dice_loss(1, reduction="none")(logits, mask)
    assert losses.shape == (2, 1, 1, 1)
    assert losses.flatten().tolist() == pytest.approx(per_image, rel=1e-12, abs=0)


def test_binary_dice_of_a_perfect_and_a_hopeless_image() -> None:
    """p = 1 on the mask (logit 40: σ = 1 - 4e-18, 1 in float64), 0 elsewhere; then the complement."""
    mask = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64).view(1, 1, 2, 2)
    logits = 40 * (2 * mask - 1)
    loss = dice_loss(1, reduction="none")
    assert float(loss(logits, mask)) == pytest.approx(_dice(2.0, 2.0, 2.0), rel=0, abs=1e-15)  # ~0
    assert float(loss(-logits, mask)) == pytest.approx(_dice(0.0, 2.0, 2.0), rel=0, abs=1e-15)  # 1 - ε/4


def _three_class_pair() -> tuple[torch.Tensor, torch.Tensor]:
    """Two 1×2 images, K = 3 logits (class 0 = background):

    * image 1: pixel a (0, ln 2, 0) -> p = (1/4, 1/2, 1/4), label 1; pixel b (0, 0, ln 2) -> (1/4, 1/4, 1/2),
      label 2;
    * image 2: pixel a (ln 2, 0, 0) -> (1/2, 1/4, 1/4), label 0; pixel b (0, ln 2, 0) -> (1/4, 1/2, 1/4),
      label 1.
    """
    logits = torch.zeros(2, 3, 1, 2, dtype=torch.float64)
    logits[0, 1, 0, 0] = logits[0, 2, 0, 1] = logits[1, 0, 0, 0] = logits[1, 1, 0, 1] = LN2
    labels = torch.tensor([[[[1, 2]]], [[[0, 1]]]])
    return logits, labels


# Per image and class: (Σ p t, Σ p, Σ t), read off the docstring above.
_IMAGE1 = {0: (0.0, 0.5, 0.0), 1: (0.5, 0.75, 1.0), 2: (0.5, 0.75, 1.0)}
_IMAGE2 = {0: (0.5, 0.75, 1.0), 1: (0.5, 0.75, 1.0), 2: (0.0, 0.5, 0.0)}


def test_multiclass_dice_is_per_image_softmax_dice_over_the_foreground_classes() -> None:
    logits, labels = _three_class_pair()
    foreground = [_dice(*image[k]) for image in (_IMAGE1, _IMAGE2) for k in (1, 2)]
    expected = sum(foreground) / 4  # (3 (1 - (1 + ε)/(1.75 + ε)) + 1 - ε/(0.5 + ε)) / 4 = 0.5714...
    assert float(dice_loss(3)(logits, labels)) == pytest.approx(expected, rel=1e-12, abs=0)
    per_image = dice_loss(3, reduction="none")(logits, labels)
    assert per_image.shape == (2, 2, 1, 1)
    assert per_image.flatten().tolist() == pytest.approx(foreground, rel=1e-12, abs=0)
    # the mutations: the background included, or one Dice per class over the batch
    with_background = [_dice(*image[k]) for image in (_IMAGE1, _IMAGE2) for k in (0, 1, 2)]
    batch = [_dice(*(a + b for a, b in zip(_IMAGE1[k], _IMAGE2[k], strict=True))) for k in (1, 2)]
    assert abs(sum(with_background) / 6 - expected) > 0.04 and abs(sum(batch) / 2 - expected) > 0.07


def test_out_channels_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="^out_channels must be at least 1, got 0$"):
        dice_loss(0)


class _FixedLogits(torch.nn.Module):
    """A "network" whose logits are given, so the loss of a training step can be worked out by hand."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits = logits
        self.out_channels = logits.shape[1]
        self.anchor = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits + 0 * self.anchor


@pytest.mark.filterwarnings("ignore:You are trying to `self.log")
def test_binary_training_step_is_the_per_image_sigmoid_dice_of_the_integer_mask() -> None:
    logits, mask, per_image = _binary_pair()
    module = SegmentationModule(_FixedLogits(logits.float()))
    batch = {"image": torch.zeros(2, 4, 2, 2), "mask": mask.long()}  # masks arrive as int64
    loss = module.training_step(batch, 0)
    assert loss.requires_grad
    # float32 logits: σ(float32(ln 3)) is 3/4 to about 1e-7
    assert float(loss.detach()) == pytest.approx(sum(per_image) / 2, abs=1e-6)


def test_dice_ce_is_the_dice_loss_plus_the_cross_entropy():
    """train.loss=dice_ce: the pinned Dice term plus torch's own cross-entropy, equal weights."""
    import torch.nn.functional as F

    from hlfnet.engine.loss import dice_loss, training_loss

    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 5, 4, generator=generator)
    target = torch.randint(0, 3, (2, 1, 5, 4), generator=generator)
    expected = dice_loss(3)(logits, target) + F.cross_entropy(logits, target[:, 0])
    torch.testing.assert_close(training_loss("dice_ce", 3)(logits, target), expected)
    binary = torch.randn(2, 1, 5, 4, generator=generator)
    mask = (torch.rand(2, 1, 5, 4, generator=generator) > 0.5).float()
    expected = dice_loss(1)(binary, mask) + F.binary_cross_entropy_with_logits(binary, mask)
    torch.testing.assert_close(training_loss("dice_ce", 1)(binary, mask), expected)
    assert isinstance(training_loss("dice", 3), type(dice_loss(3)))
    with pytest.raises(ValueError, match="train.loss must be one of"):
        training_loss("dice_focal", 1)


# ---- cross-entropy and focal: -(1 - p_t)^γ ln p_t per pixel (γ = 0: the cross-entropy), from the exact p above


def _focal(p_t: float, gamma: float) -> float:
    return -((1 - p_t) ** gamma) * math.log(p_t)


def _binary_p_t() -> list[float]:
    """p_t of :func:`_binary_pair`'s 8 pixels: p where the mask is 1, 1 - p where it is 0.

    image 1: p = (3/4, 3/4, 1/4, 1/4), mask (1, 0, 0, 0) -> p_t = (3/4, 1/4, 3/4, 3/4); image 2: p = 3/4,
    mask 1 -> p_t = 3/4 four times.
    """
    return [0.75, 0.25, 0.75, 0.75, 0.75, 0.75, 0.75, 0.75]


def _three_class_p_t() -> list[float]:
    """p_t of :func:`_three_class_pair`'s 4 pixels: the softmax probability of each pixel's label: 1/2 each."""
    return [0.5, 0.5, 0.5, 0.5]


@pytest.mark.parametrize(("name", "gamma"), [("ce", 0.0), ("focal", 2.0)])
def test_cross_entropy_and_focal_are_the_per_pixel_means_worked_by_hand(name: str, gamma: float) -> None:
    from hlfnet.engine.loss import training_loss

    rel = 1e-12 if name == "ce" else 1e-6  # MONAI's FocalLoss computes in float32
    logits, mask, _ = _binary_pair()
    expected = sum(_focal(p, gamma) for p in _binary_p_t()) / 8  # ce: (7 ln 4/3 + ln 4) / 8 = 0.4250...
    assert float(training_loss(name, 1)(logits, mask)) == pytest.approx(expected, rel=rel, abs=0)
    logits, labels = _three_class_pair()
    expected = sum(_focal(p, gamma) for p in _three_class_p_t()) / 4  # ce: ln 2; focal: ln 2 / 4
    assert float(training_loss(name, 3)(logits, labels)) == pytest.approx(expected, rel=rel, abs=0)


def test_focal_scales_each_pixels_cross_entropy_by_one_minus_p_t_squared() -> None:
    """γ = 2: the cross-entropy ln(4/3) of the seven p_t = 3/4 pixels × 1/16, ln 4 of the p_t = 1/4 one × 9/16."""
    from hlfnet.engine.loss import training_loss

    logits, mask, _ = _binary_pair()
    by_hand = (7 * math.log(4 / 3) / 16 + 9 * math.log(4) / 16) / 8
    assert float(training_loss("focal", 1)(logits, mask)) == pytest.approx(by_hand, rel=1e-6, abs=0)


def test_auto_is_dice_for_one_channel_and_dice_ce_for_more() -> None:
    from monai.losses import DiceCELoss, DiceLoss

    from hlfnet.engine.loss import default_loss, training_loss

    assert (default_loss(1), default_loss(2), default_loss(5)) == ("dice", "dice_ce", "dice_ce")
    assert type(training_loss("auto", 1)) is DiceLoss and type(training_loss("auto", 3)) is DiceCELoss


@pytest.mark.filterwarnings("ignore:You are trying to `self.log")
@pytest.mark.parametrize("name", ["ce", "focal"])
def test_training_step_takes_the_integer_masks_the_data_gives(name: str) -> None:
    """Binary masks arrive as int64 (B, 1, H, W) and become float for the sigmoid; class maps stay indices."""
    gamma = 0.0 if name == "ce" else 2.0
    logits, mask, _ = _binary_pair()
    module = SegmentationModule(_FixedLogits(logits.float()), loss=name)
    loss = module.training_step({"image": torch.zeros(2, 4, 2, 2), "mask": mask.long()}, 0)
    assert float(loss.detach()) == pytest.approx(sum(_focal(p, gamma) for p in _binary_p_t()) / 8, abs=1e-6)
    logits, labels = _three_class_pair()
    module = SegmentationModule(_FixedLogits(logits.float()), loss=name)
    loss = module.training_step({"image": torch.zeros(2, 4, 1, 2), "mask": labels}, 0)
    assert float(loss.detach()) == pytest.approx(
        sum(_focal(p, gamma) for p in _three_class_p_t()) / 4, abs=1e-6
    )
