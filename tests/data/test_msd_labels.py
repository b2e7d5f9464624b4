"""An MSD dataset.json's ``labels`` ({"0": "background", "1": "spleen", ...}) give the classes and their names."""

from __future__ import annotations

import json

import pytest

from hlfnet.data import DataConfig
from hlfnet.data.msd import read_msd_labels
from tests.data.helpers import write_msd


def _relabel(root, labels):
    path = root / "dataset.json"
    meta = json.loads(path.read_text())
    if labels is None:
        meta.pop("labels")
    else:
        meta["labels"] = labels
    path.write_text(json.dumps(meta))
    return root


def _cfg(tmp_path, root, **kw):
    return DataConfig(format="msd", root=str(root), cache_dir=str(tmp_path / "cache"), **kw)


def test_seven_organs_declared_give_eight_classes_and_their_names(tmp_path):
    organs = ["spleen", "kidney_right", "kidney_left", "gallbladder", "liver", "stomach", "pancreas"]
    labels = {"0": "background", **{str(k): name for k, name in enumerate(organs, start=1)}}
    root = _relabel(write_msd(tmp_path / "msd", n=1), labels)
    cfg = _cfg(tmp_path, root)
    assert cfg.num_classes == 8 and cfg.label_values is None
    assert cfg.class_names == ("background", *organs)
    # the paper's spleen dataset keeps its two classes, now named
    binary = _cfg(tmp_path, write_msd(tmp_path / "spleen", n=1))
    assert binary.num_classes == 2 and binary.class_names == ("background", "spleen")


def test_sparse_values_become_label_values_and_a_selection_keeps_its_own(tmp_path):
    root = _relabel(write_msd(tmp_path / "msd", n=1), {"0": "background", "1": "spleen", "6": "liver"})
    cfg = _cfg(tmp_path, root)
    assert cfg.num_classes == 3 and cfg.label_values == (0, 1, 6)
    picked = _cfg(tmp_path, root, label_values=(0, 6))
    assert picked.num_classes == 2 and picked.class_names == ("background", "liver")


def test_no_labels_keeps_the_configured_classes(tmp_path):
    root = _relabel(write_msd(tmp_path / "msd", n=1), None)
    assert read_msd_labels(root) is None
    assert _cfg(tmp_path, root, num_classes=3).num_classes == 3


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ({"0": "background", "one": "spleen"}, r"dataset\.json: labels entry 'one'"),
        ({"0": "background", "1": 5}, r"dataset\.json: labels entry '1'"),
        ({"1": "spleen", "2": "liver"}, r"dataset\.json: 'labels' needs the background value"),
        ({"0": "background"}, r"dataset\.json: 'labels' must map at least two"),
        (["background", "spleen"], r"dataset\.json: 'labels' must map at least two"),
    ],
)
def test_bad_labels_are_one_line_naming_the_file(tmp_path, labels, message):
    root = _relabel(write_msd(tmp_path / "msd", n=1), labels)
    with pytest.raises(ValueError, match=message):
        _cfg(tmp_path, root)


def test_an_explicit_class_count_that_disagrees_is_refused(tmp_path):
    root = _relabel(write_msd(tmp_path / "msd", n=1), {"0": "background", "1": "a", "2": "b"})
    with pytest.raises(ValueError, match=r"num_classes is 5 but .*dataset\.json declares 3 labels"):
        _cfg(tmp_path, root, num_classes=5)
