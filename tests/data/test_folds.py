"""Cross-validation folds (``data.fold``, ``data.num_folds``): case-level, deterministic, over the training cases
of any layout, the test split held out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hlfnet.data import DataConfig, build_dataset, resolve_split
from hlfnet.data.folds import fold_cases, fold_split
from tests.data.helpers import write_folder, write_msd


def test_fold_cases_by_hand() -> None:
    # 7 cases, 3 folds: the sorted ids permuted by default_rng(seed), cut into parts of 3, 2, 2
    pool = [f"c{i}" for i in (6, 0, 5, 1, 4, 2, 3)]
    order = np.random.default_rng(4).permutation(7)  # the documented rule, applied by hand
    ids = sorted(pool)
    expected = [
        sorted(ids[i] for i in order[:3]),
        sorted(ids[i] for i in order[3:5]),
        sorted(ids[i] for i in order[5:]),
    ]
    assert fold_cases(pool, 3, seed=4) == expected
    assert [len(f) for f in expected] == [3, 2, 2]
    assert sorted(c for f in expected for c in f) == ids  # a partition
    assert fold_cases(list(reversed(pool)), 3, seed=4) == expected  # input order does not matter
    assert fold_cases(pool, 3, seed=5) != expected


def test_fold_split_keeps_test_and_all_trains_on_everything() -> None:
    split = {"train": ["a", "b", "c"], "val": ["d"], "test": ["t1", "t2"]}
    folds = [fold_split(split, 2, k, seed=0) for k in (0, 1)]
    assert all(f["test"] == ["t1", "t2"] for f in folds)
    assert sorted(folds[0]["val"] + folds[1]["val"]) == ["a", "b", "c", "d"]
    for f in folds:
        assert not set(f["train"]) & set(f["val"])
        assert sorted(f["train"] + f["val"]) == ["a", "b", "c", "d"]
    everything = fold_split(split, 2, "all", seed=0)
    assert everything == {"train": ["a", "b", "c", "d"], "val": ["a", "b", "c", "d"], "test": ["t1", "t2"]}
    with pytest.raises(ValueError, match="data.num_folds=5 needs at least 5"):
        fold_split(split, 5, 0, seed=0)


def test_folds_of_a_plain_folder(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "data", n=10)
    base = {"format": "folder", "root": str(root), "cache_dir": str(tmp_path / "cache"), "num_folds": 4}
    plain = resolve_split(DataConfig.from_dict(base))
    folds = [resolve_split(DataConfig.from_dict({**base, "fold": k})) for k in range(4)]
    pool = sorted(plain["train"] + plain["val"])
    assert sorted(c for f in folds for c in f["val"]) == pool
    assert all(f["test"] == plain["test"] for f in folds)
    assert all(sorted(f["train"] + f["val"]) == pool for f in folds)
    again = resolve_split(DataConfig.from_dict({**base, "fold": 2}))
    assert again == folds[2]  # deterministic


def test_folds_carve_validation_out_of_a_train_and_test_layout(tmp_path: Path) -> None:
    # train/ + test/ folders and no val/: without folds the validation split is empty
    write_folder(tmp_path / "data" / "train", n=6)
    write_folder(tmp_path / "data" / "test", n=2)
    for i in range(2):  # test cases named apart from the training ones
        for sub in ("images", "masks"):
            (tmp_path / "data" / "test" / sub / f"case{i}.png").rename(
                tmp_path / "data" / "test" / sub / f"test{i}.png"
            )
    base = {"format": "folder", "root": str(tmp_path / "data"), "use_cache": False, "num_folds": 3}
    assert resolve_split(DataConfig.from_dict(base))["val"] == []
    cfg = DataConfig.from_dict({**base, "fold": 1})
    split = resolve_split(cfg)
    assert len(split["val"]) == 2 and len(split["train"]) == 4 and split["test"] == ["test0", "test1"]
    assert build_dataset(cfg, "val", augment=False).ids == split["val"]


def test_volume_folds_keep_a_patients_slices_together(tmp_path: Path) -> None:
    root = write_msd(tmp_path / "Task09", n=4)
    cfg = DataConfig.from_dict(
        {
            "format": "msd",
            "root": str(root),
            "image_size": [16, 16],
            "use_cache": False,
            "cache_dir": str(tmp_path / "cache"),
            "split_fractions": [1.0, 0.0, 0.0],
            "num_folds": 2,
            "fold": 0,
            "drop_background_slices": [],
        }
    )
    split = resolve_split(cfg)
    assert len(split["val"]) == 2 and len(split["train"]) == 2
    volumes = {
        name: {item["volume"] for item in build_dataset(cfg, name, augment=False)}
        for name in ("train", "val")
    }
    assert volumes["train"] == set(split["train"]) and volumes["val"] == set(split["val"])
    assert not volumes["train"] & volumes["val"]


@pytest.mark.parametrize(
    ("values", "match"),
    [
        ({"fold": 5}, r"data.fold must be 0..4"),
        ({"fold": "last"}, r"data.fold must be 0..4 .* or 'all'"),
        ({"fold": 0, "num_folds": 1}, r"data.num_folds must be an integer ≥ 2"),
        ({"fold": 0, "format": "synthetic", "root": None}, r"data.fold: the synthetic data set"),
    ],
)
def test_bad_fold_settings_name_the_key(values: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        DataConfig.from_dict({"format": "folder", "root": "x", **values})


def test_one_training_case_is_trained_and_validated_on(tmp_path: Path, caplog) -> None:
    # one patient's volume (the shared abdominal CT is one): nothing can be held out, so fold "all" by default
    one = write_msd(tmp_path / "one", n=1)
    cfg = {"format": "msd", "root": str(one), "use_cache": False, "cache_dir": str(tmp_path / "cache")}
    with caplog.at_level("WARNING", logger="hlfnet.data.splits"):
        split = resolve_split(DataConfig.from_dict(cfg))
        resolve_split(DataConfig.from_dict(cfg))
    (case,) = split["train"]
    assert split == {"train": [case], "val": [case], "test": []}
    assert sum("one training case" in r.getMessage() for r in caplog.records) == 1  # said once
    # two cases, one for validation: the seeded split as before (the rule is only for a one-case pool)
    two = write_msd(tmp_path / "two", n=2)
    split = resolve_split(DataConfig.from_dict({**cfg, "root": str(two), "split_fractions": [0.5, 0.5, 0.0]}))
    assert len(split["train"]) == len(split["val"]) == 1 and split["train"] != split["val"]
