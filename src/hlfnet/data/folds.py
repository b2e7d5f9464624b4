"""Cross-validation folds over the training cases (``data.fold``, ``data.num_folds``), as nnU-Net makes them.

The folds are made from the split in use (:func:`hlfnet.data.splits.resolve_split`), whatever the layout:
official ``train/ val/ test/`` folders, a ``train/`` + ``test/`` pair, a seeded split of a plain folder, MSD
or nnU-Net data. The **pool** is every case that is not in the test split (train + val); the test split stays
held out. The pool's ids, sorted, are permuted by ``numpy.random.default_rng(seed)`` and cut into
``num_folds`` consecutive parts whose sizes differ by at most one (``numpy.array_split``, the sizes of
scikit-learn's ``KFold``). Fold ``i`` validates on part ``i`` and trains on the others; fold ``"all"`` trains on
the whole pool and validates on it too (nnU-Net's fold ``all``).

Ids are cases: images for 2-D data, patients (volumes) for volume data, so the slices of one patient are
always in the same fold.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

__all__ = ["ALL_FOLDS", "fold_cases", "fold_split", "training_pool"]

#: ``data.fold`` value that trains on every training case (nnU-Net's ``all``).
ALL_FOLDS = "all"


def training_pool(split: Mapping[str, list[str]]) -> list[str]:
    """The cases cross-validation deals into folds: train + val of ``split``, sorted.

    Raises:
        ValueError: an id in both train and val.
    """
    pool = [*split["train"], *split["val"]]
    if len(set(pool)) != len(pool):
        twice = sorted({i for i in pool if pool.count(i) > 1})
        raise ValueError(
            f"case id(s) {twice[:5]} appear in both the train and the val split; cannot make folds"
        )
    return sorted(pool)


def fold_cases(pool: list[str], num_folds: int, seed: int) -> list[list[str]]:
    """The validation cases of each fold: ``num_folds`` disjoint sorted lists covering ``pool``.

    Raises:
        ValueError: fewer cases than folds (names ``data.num_folds``).
    """
    cases = sorted(pool)
    if len(cases) < num_folds:
        raise ValueError(
            f"data.num_folds={num_folds} needs at least {num_folds} training cases, the data has {len(cases)}"
        )
    order = np.random.default_rng(seed).permutation(len(cases))
    return [sorted(cases[i] for i in part) for part in np.array_split(order, num_folds)]


def fold_split(
    split: Mapping[str, list[str]], num_folds: int, fold: int | str, seed: int
) -> dict[str, list[str]]:
    """``{"train", "val", "test"}`` of one fold of ``split`` (see the module docstring).

    Args:
        split: the split in use.
        num_folds: folds.
        fold: ``0 … num_folds-1`` or :data:`ALL_FOLDS`.
        seed: the data seed.
    """
    pool = training_pool(split)
    test = sorted(split["test"])
    if fold == ALL_FOLDS:
        return {"train": pool, "val": list(pool), "test": test}
    val = fold_cases(pool, num_folds, seed)[int(fold)]
    held = set(val)
    return {"train": [c for c in pool if c not in held], "val": val, "test": test}
