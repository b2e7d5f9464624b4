"""The loss every experiment trains with: the paper's Dice loss (§3.1), computed per image.

Kept apart from the training agent (:mod:`hlfnet.engine.module`) so that the recipe's loss is one small,
separately tested function (``tests/engine/test_loss.py`` pins it against hand-worked values; mutation testing
covers it, ``docs/testing.md``).
"""

from __future__ import annotations

from monai.losses import DiceCELoss, DiceLoss
from torch import nn

__all__ = ["LOSSES", "dice_loss", "training_loss"]

#: ``train.loss`` choices: the paper's Dice loss, or Dice + cross-entropy (nnU-Net's default loss).
LOSSES = ("dice", "dice_ce")


def dice_loss(out_channels: int, reduction: str = "mean") -> DiceLoss:
    """The paper's Dice loss for ``out_channels`` logits.

    One output channel: sigmoid Dice on the foreground. ``K > 1`` channels: softmax Dice against the one-hot
    label map, averaged over the foreground classes (background excluded, as nnU-Net does, so that the large
    easy background does not dilute the loss). Dice is computed per image and then averaged (``batch=False``).

    Per image and channel the loss is ``1 - (2 Σ p·t + 1e-5) / (Σ p + Σ t + 1e-5)``.

    Args:
        out_channels: number of logit channels of the network.
        reduction: ``"mean"`` (a scalar) or ``"none"`` (``(B, C', 1, 1)``).

    Raises:
        ValueError: ``out_channels < 1``.
    """
    if out_channels < 1:
        raise ValueError(f"out_channels must be at least 1, got {out_channels}")
    # MONAI's defaults, spelt out because they are the recipe: per image (not one Dice over the batch), and
    # the smoothing that keeps an empty mask's loss finite.
    recipe = {"batch": False, "smooth_nr": 1e-5, "smooth_dr": 1e-5, "reduction": reduction}
    if out_channels == 1:
        return DiceLoss(sigmoid=True, **recipe)
    return DiceLoss(softmax=True, to_onehot_y=True, include_background=False, **recipe)


def training_loss(name: str, out_channels: int) -> nn.Module:
    """The training loss ``train.loss`` names: ``dice`` (:func:`dice_loss`, the paper's) or ``dice_ce``.

    ``dice_ce`` is the sum, with equal weights, of :func:`dice_loss`'s Dice term and the cross-entropy
    (binary cross-entropy on the logit for one output channel; softmax cross-entropy over all classes, background
    included, for ``K > 1``), as nnU-Net trains: the cross-entropy gives every voxel a gradient from the first
    step, which small structures in large 3-D patches need. Validation always reports the Dice loss.

    Raises:
        ValueError: an unknown name or ``out_channels < 1``.
    """
    if name not in LOSSES:
        raise ValueError(f"train.loss must be one of {LOSSES}, got {name!r}")
    if name == "dice" or out_channels < 1:
        return dice_loss(out_channels)
    recipe = {"batch": False, "smooth_nr": 1e-5, "smooth_dr": 1e-5, "lambda_dice": 1.0, "lambda_ce": 1.0}
    if out_channels == 1:
        return DiceCELoss(sigmoid=True, **recipe)
    return DiceCELoss(softmax=True, to_onehot_y=True, include_background=False, **recipe)
