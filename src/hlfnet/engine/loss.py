"""The training losses (``train.loss``): the paper's Dice loss (§3.1), Dice + cross-entropy, cross-entropy, focal.

Kept apart from the training agent (:mod:`hlfnet.engine.module`) so that each loss is one small, separately tested
function (``tests/engine/test_loss.py`` pins them against hand-worked values; mutation testing covers the Dice
loss, ``docs/testing.md``).

Every loss takes logits ``(B, K, *spatial)`` and the mask as the data gives it: ``(B, 1, *spatial)``, a float
0/1 mask for one output channel (binary, sigmoid) and integer class indices for ``K > 1`` (softmax, one-hot
inside the loss). The Dice terms are MONAI's ``DiceLoss`` configured once, by :func:`dice_loss`: the paper's
loss keeps that one definition (pinned by hand-worked tests), and ``dice_ce`` adds the cross-entropy to exactly
that Dice term.
"""

from __future__ import annotations

from monai.losses import DiceCELoss, DiceLoss, FocalLoss
from torch import Tensor, nn
from torch.nn import functional as F

__all__ = ["FOCAL_GAMMA", "LOSSES", "CrossEntropy", "Focal", "default_loss", "dice_loss", "training_loss"]

#: ``train.loss`` choices; ``auto`` is :func:`default_loss` of the network's output channels.
LOSSES = ("auto", "dice", "dice_ce", "ce", "focal")

#: The focal loss's focusing parameter (Lin et al. 2017; their best value and MONAI's default).
FOCAL_GAMMA = 2.0

# MONAI's defaults, spelt out because they are the recipe: per image (not one Dice over the batch), and the
# smoothing that keeps an empty mask's loss finite.
_DICE = {"batch": False, "smooth_nr": 1e-5, "smooth_dr": 1e-5}


def default_loss(out_channels: int) -> str:
    """``train.loss: auto``: the paper's ``dice`` for one output channel (every task of the paper is binary),
    ``dice_ce`` (nnU-Net's) for ``K > 1`` classes, where small classes need the cross-entropy's gradient."""
    return "dice" if out_channels == 1 else "dice_ce"


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
    _check_channels(out_channels)
    if out_channels == 1:
        return DiceLoss(sigmoid=True, reduction=reduction, **_DICE)
    return DiceLoss(softmax=True, to_onehot_y=True, include_background=False, reduction=reduction, **_DICE)


class CrossEntropy(nn.Module):
    """Cross-entropy averaged over pixels: binary on the logit for one output channel, softmax over all ``K``
    classes (background included) otherwise -- the cross-entropy term of MONAI's ``DiceCELoss``, alone.

    ``(B, K, *spatial)`` logits and a ``(B, 1, *spatial)`` mask -> a scalar.
    """

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        if logits.shape[1] == 1:
            return F.binary_cross_entropy_with_logits(logits, target.to(logits.dtype))
        return F.cross_entropy(logits, target[:, 0].long())


class Focal(nn.Module):
    """The focal loss ``-(1 - p_t)^γ log p_t`` (Lin et al. 2017), averaged over pixels, through MONAI's
    ``FocalLoss``: sigmoid for one output channel, softmax over all ``K`` classes otherwise, no class
    weighting (``alpha``). With ``γ = 0`` it is :class:`CrossEntropy`.

    MONAI's ``mean`` also averages over the ``K`` channels, of which only the target's is non-zero with
    softmax; the channels are summed here instead, so that the value is the per-pixel focal loss for any ``K``.

    Args:
        out_channels: number of logit channels.
        gamma: the focusing parameter.
    """

    def __init__(self, out_channels: int, gamma: float = FOCAL_GAMMA) -> None:
        super().__init__()
        _check_channels(out_channels)
        softmax = out_channels > 1
        self.focal = FocalLoss(
            include_background=True, to_onehot_y=softmax, gamma=gamma, use_softmax=softmax, reduction="none"
        )

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return self.focal(logits, target).sum(1).mean()


def training_loss(name: str, out_channels: int) -> nn.Module:
    """The training loss ``train.loss`` names, for ``out_channels`` logits.

    * ``dice``: :func:`dice_loss`, the paper's.
    * ``dice_ce``: the sum, with equal weights, of :func:`dice_loss`'s Dice term and the cross-entropy (MONAI
      ``DiceCELoss``; the cross-entropy as :class:`CrossEntropy`), as nnU-Net trains: the cross-entropy gives
      every pixel a gradient from the first step, which small structures in large patches need.
    * ``ce``: :class:`CrossEntropy`.
    * ``focal``: :class:`Focal`, ``γ =`` :data:`FOCAL_GAMMA`.
    * ``auto``: :func:`default_loss`.

    Validation always reports the Dice loss (``val_loss``), whatever the training loss.

    Raises:
        ValueError: an unknown name or ``out_channels < 1``.
    """
    if name not in LOSSES:
        raise ValueError(f"train.loss must be one of {LOSSES}, got {name!r}")
    _check_channels(out_channels)
    if name == "auto":
        name = default_loss(out_channels)
    if name == "dice":
        return dice_loss(out_channels)
    if name == "ce":
        return CrossEntropy()
    if name == "focal":
        return Focal(out_channels)
    weights = {"lambda_dice": 1.0, "lambda_ce": 1.0}
    if out_channels == 1:
        return DiceCELoss(sigmoid=True, **_DICE, **weights)
    return DiceCELoss(softmax=True, to_onehot_y=True, include_background=False, **_DICE, **weights)


def _check_channels(out_channels: int) -> None:
    if out_channels < 1:
        raise ValueError(f"out_channels must be at least 1, got {out_channels}")
