"""Optimisers (``train.optimizer``) and learning-rate schedules (``train.schedule``) of the training recipe.

* Optimisers: ``adam`` (the paper, §3.1), ``adamw`` (decoupled weight decay), ``sgd`` (momentum 0.99 with
  Nesterov's update, as nnU-Net trains; ``train.momentum``).
* Schedules, stepped once per epoch: ``step`` (the paper: × ``lr_gamma`` every ``lr_step_epochs`` epochs),
  ``poly`` (nnU-Net: ``lr · (1 − epoch / max_epochs)^0.9`` during epoch ``epoch``, counted from 0), ``constant``.

Example:
    >>> [round(poly_factor(e, 4), 4) for e in range(5)]
    [1.0, 0.7719, 0.5359, 0.2872, 0.0]
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

import torch
from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, StepLR

__all__ = ["OPTIMIZERS", "POLY_POWER", "SCHEDULES", "build_optimizer", "build_schedule", "poly_factor"]

#: ``train.optimizer`` choices.
OPTIMIZERS = ("adam", "adamw", "sgd")
#: ``train.schedule`` choices.
SCHEDULES = ("step", "poly", "constant")
#: The exponent of the poly schedule (nnU-Net's ``PolyLRScheduler``).
POLY_POWER = 0.9


def build_optimizer(
    name: str,
    parameters: Iterable[nn.Parameter],
    lr: float,
    weight_decay: float = 0.0,
    momentum: float = 0.99,
) -> Optimizer:
    """The optimiser ``train.optimizer`` names.

    Args:
        name: ``adam``, ``adamw`` or ``sgd``.
        parameters: the network's parameters.
        lr: the initial learning rate.
        weight_decay: L2 penalty (``adam``, ``sgd``) or decoupled decay (``adamw``).
        momentum: ``sgd`` only; Nesterov momentum when positive, plain SGD at 0.

    Raises:
        ValueError: an unknown name.
    """
    if name == "adam":
        return torch.optim.Adam(parameters, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(parameters, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(
            parameters, lr=lr, momentum=momentum, nesterov=momentum > 0, weight_decay=weight_decay
        )
    raise ValueError(f"train.optimizer must be one of {OPTIMIZERS}, got {name!r}")


def poly_factor(epoch: int, max_epochs: int, power: float = POLY_POWER) -> float:
    """``(1 − epoch / max_epochs)^power``, 0 from ``max_epochs`` on: the poly schedule's multiple of ``lr``."""
    return max(0.0, 1.0 - epoch / max_epochs) ** power


def build_schedule(
    name: str,
    optimizer: Optimizer,
    *,
    max_epochs: int,
    step_epochs: int = 15,
    gamma: float = 0.1,
) -> LRScheduler | None:
    """The per-epoch schedule ``train.schedule`` names (``None`` for ``constant``).

    The poly schedule is a function of the configured ``max_epochs`` (not stored in checkpoints), so a finished
    run extended on resume (``--set train.max_epochs=N``) continues on the curve for ``N`` epochs.

    Args:
        name: ``step``, ``poly`` or ``constant``.
        optimizer: the optimiser whose rate it sets.
        max_epochs: the run's length (``poly``).
        step_epochs: epochs between two steps (``step``).
        gamma: the factor of each step (``step``).

    Raises:
        ValueError: an unknown name.
    """
    if name == "step":
        return StepLR(optimizer, step_size=step_epochs, gamma=gamma)
    if name == "poly":
        return LambdaLR(optimizer, functools.partial(poly_factor, max_epochs=max_epochs))
    if name == "constant":
        return None
    raise ValueError(f"train.schedule must be one of {SCHEDULES}, got {name!r}")
