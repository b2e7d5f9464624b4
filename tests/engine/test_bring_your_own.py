"""Acceptance of issue 17: a user's own data trains, predicts and evaluates with no conversion.

An nnU-Net v2 raw 2-D dataset (``dataset.json`` + ``imagesTr/<case>_0000.png`` + ``labelsTr/<case>.png``) and a
folder of 0/128/255 masks with ``data.label_values``; the network is tiny and trained for one short epoch,
so these tests check the plumbing (files in, files out, the user's encoding kept), not accuracy.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from hlfnet.engine import ExperimentConfig, train
from hlfnet.evaluation.evaluate import evaluate_run
from hlfnet.evaluation.predictor import Predictor
from tests.data.test_bring_your_own import write_nnunet_2d, write_three_class_folder


def _config(data: dict, cache: Path) -> ExperimentConfig:
    return ExperimentConfig.from_dict(
        {
            "name": "byo",
            "model": {"name": "unet", "base_channels": 4},
            "data": {
                "image_size": [16, 16],
                "cache_dir": str(cache),
                "split_fractions": [0.5, 0.25, 0.25],
                **data,
            },
            "train": {"max_epochs": 1, "batch_size": 2, "progress_bar": False, "log_every_n_steps": 1},
        }
    )


def test_nnunet_2d_dataset_trains_predicts_and_evaluates(tmp_path: Path) -> None:
    root = write_nnunet_2d(tmp_path / "Dataset001_Cells", n=8)
    run = train(
        _config({"format": "nnunet", "root": str(root)}, tmp_path / "cache"), tmp_path / "run"
    ).run_dir
    saved = json.loads((run / "split.json").read_text())
    assert sorted(saved["train"] + saved["val"] + saved["test"]) == [f"case{i}" for i in range(8)]
    written = Predictor.from_path(run).predict(root / "imagesTs", tmp_path / "pred")
    assert [p.name for p in written] == ["test0_0000.png"]
    result = evaluate_run(run, split="test")
    assert result.summary["dataset"] == "nnunet" and result.summary["cases"] == len(saved["test"])
    assert {"dice_class1", "dice_class2", "hd95", "nsd"} <= set(result.summary["levels"]["original"])
    assert "thresholded_jaccard" not in result.summary["levels"]["original"]


def test_label_values_folder_predicts_in_the_users_encoding(tmp_path: Path) -> None:
    root = write_three_class_folder(tmp_path / "wbc")
    data = {"format": "folder", "root": str(root), "label_values": [0, 128, 255]}
    run = train(_config(data, tmp_path / "cache"), tmp_path / "run").run_dir
    images = root / "images"
    (mask,) = Predictor.from_path(run).predict(images / "wbc0.png", tmp_path / "pred")
    assert set(np.unique(np.asarray(Image.open(mask))).tolist()) <= {0, 128, 255}
    (indices,) = Predictor.from_path(run, class_indices=True).predict(images / "wbc0.png", tmp_path / "idx")
    np.testing.assert_array_equal(
        np.asarray(Image.open(indices)), np.searchsorted([0, 128, 255], np.asarray(Image.open(mask)))
    )


def test_mask_writer_encodes_classes_as_label_values(tmp_path: Path) -> None:
    from hlfnet.evaluation.predictor import write_mask_png

    classes = np.array([[0, 1], [2, 1]], np.uint8)
    write_mask_png(classes, tmp_path / "a.png", 3, label_values=(0, 128, 255))
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "a.png")), [[0, 128], [255, 128]])
    write_mask_png(classes, tmp_path / "b.png", 3, label_values=(0, 300, 1000))  # 16-bit when needed
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "b.png")), [[0, 300], [1000, 300]])
