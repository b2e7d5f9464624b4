"""Multi-channel nnU-Net datasets train, predict (``imagesTs/<case>_XXXX`` grouped into ``<case>``) and evaluate.

Tiny network, one epoch: this checks the plumbing (channel files in, one prediction per case out), not accuracy.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from hlfnet.engine import ExperimentConfig, train
from hlfnet.evaluation.evaluate import evaluate_run
from hlfnet.evaluation.predictor import Predictor
from tests.data.test_nnunet_multichannel import write_nnunet_2d_two_channels, write_nnunet_3d_two_channels


def _config(root: Path, cache: Path, size: list[int], fractions: list[float]) -> ExperimentConfig:
    return ExperimentConfig.from_dict(
        {
            "name": "mc",
            "model": {"name": "unet", "base_channels": 4, "depth": 2},
            "data": {
                "format": "nnunet",
                "root": str(root),
                "image_size": size,
                "cache_dir": str(cache),
                "split_fractions": fractions,
            },
            "train": {"max_epochs": 1, "batch_size": 2, "progress_bar": False, "log_every_n_steps": 1},
        }
    )


def test_two_channel_png_dataset_trains_predicts_one_mask_per_case_and_evaluates(tmp_path: Path) -> None:
    root, _ = write_nnunet_2d_two_channels(tmp_path / "Dataset002_Two", n=6)
    run = train(_config(root, tmp_path / "cache", [16, 16], [0.5, 0.25, 0.25]), tmp_path / "run").run_dir
    predictor = Predictor.from_path(run)
    assert predictor.in_channels == 2
    written = predictor.predict(root / "imagesTs", tmp_path / "pred")
    assert [p.name for p in written] == ["test0.png"]
    assert np.asarray(Image.open(written[0])).shape == (16, 20)
    result = evaluate_run(run, split="test")
    assert result.summary["dataset"] == "nnunet" and result.summary["cases"] >= 1


def test_two_channel_nifti_dataset_trains_and_predicts_one_volume_per_case(tmp_path: Path) -> None:
    root, _ = write_nnunet_3d_two_channels(tmp_path / "Dataset003_CtPet", n=4)
    run = train(_config(root, tmp_path / "cache", [16, 16], [0.5, 0.25, 0.25]), tmp_path / "run").run_dir
    written = Predictor.from_path(run).predict(root / "imagesTs", tmp_path / "pred")
    assert [p.name for p in written] == ["t0.nii.gz"]
    out = nib.load(str(written[0]))
    assert out.shape == (12, 10, 4)
    np.testing.assert_allclose(out.affine, nib.load(str(root / "imagesTs" / "t0_0000.nii.gz")).affine)
    result = evaluate_run(run, split="test")
    assert result.summary["dataset"] == "nnunet" and result.summary["cases"] == 1


def test_a_predict_folder_missing_a_channel_file_is_refused_naming_it(tmp_path: Path) -> None:
    from hlfnet.evaluation.predictor.discovery import find_inputs, group_channels

    folder = tmp_path / "imagesTs"
    folder.mkdir()
    for name in ("a_0000.png", "a_0001.png", "b_0000.png"):
        Image.fromarray(np.zeros((4, 4), np.uint8)).save(folder / name)
    files, kind = find_inputs(folder)
    with pytest.raises(ValueError, match=r"b_0001\.png: missing; .* 2 channel files") as error:
        group_channels(folder, files, kind)
    assert "\n" not in str(error.value)
