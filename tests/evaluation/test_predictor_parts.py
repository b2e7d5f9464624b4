"""The parts of ``hlfnet.evaluation.predictor`` through their own public interfaces (the Predictor is tested in
``test_predictor.py``, the CLI's refusals in ``tests/hostile/test_predict.py``)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from hlfnet.atomic import folder_lock
from hlfnet.errors import OutputRefused
from hlfnet.evaluation.predictor.discovery import find_inputs, output_stems, refuse_input_folder
from hlfnet.evaluation.predictor.inference import activate, flip_averaged, resize_probabilities, to_labels
from hlfnet.evaluation.predictor.output_folder import MANIFEST_NAME, prediction_signature, prepare_output
from hlfnet.evaluation.predictor.preprocessing import batched, prefetch
from hlfnet.evaluation.predictor.writers import probability_names, write_probability_maps


def test_prefetch_keeps_the_input_order_and_reads_in_background_threads() -> None:
    threads: set[str] = set()

    def slow_square(x: int) -> int:
        threads.add(threading.current_thread().name)
        time.sleep(0.01 * (5 - x % 5))  # later inputs finish first
        return x * x

    assert list(prefetch(slow_square, range(12), workers=3, ahead=4)) == [x * x for x in range(12)]
    assert threads and all(name.startswith("hlfnet-read") for name in threads)
    threads.clear()
    assert list(prefetch(slow_square, range(3), workers=0, ahead=4)) == [0, 1, 4]
    assert threads == {threading.current_thread().name}


def test_batched_keeps_a_short_last_batch() -> None:
    assert list(batched(range(7), 3)) == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(batched([], 3)) == []


def test_flip_tta_of_a_flip_equivariant_function_is_that_function() -> None:
    x = torch.rand(2, 1, 5, 7)
    assert torch.allclose(flip_averaged(torch.sigmoid, x), torch.sigmoid(x), atol=1e-6)
    # a function that is not equivariant: the mean over the four flips, each flipped back
    ramp = torch.arange(7).float()  # added along the width: horizontal flips see it reversed

    def add_ramp(t: torch.Tensor) -> torch.Tensor:
        return t + ramp

    expected = x + (ramp + ramp.flip(0)) / 2  # two of the four flips are horizontal
    assert torch.allclose(flip_averaged(add_ramp, x), expected, atol=1e-6)


def test_activation_labels_and_resizing() -> None:
    logits = torch.tensor([[[[-1.0, 0.5]]]])
    assert to_labels(activate(logits, 1), 0.5).tolist() == [[[0, 1]]]
    multi = activate(torch.tensor([[[[0.0]], [[2.0]], [[1.0]]]]), 3)
    assert torch.allclose(multi.sum(1), torch.ones(1, 1, 1)) and to_labels(multi, 0.5).tolist() == [[[1]]]
    assert resize_probabilities(torch.rand(2, 3, 8, 8), (5, 11)).shape == (2, 3, 5, 11)


def test_inputs_and_their_output_names(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("x")
    assert find_inputs(tmp_path / "a.png") == ([tmp_path / "a.png"], "image")
    with pytest.raises(ValueError, match=r"notes\.txt: not an image"):
        find_inputs(tmp_path / "notes.txt")
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        find_inputs(tmp_path / "missing")
    files = [tmp_path / "case.png", tmp_path / "case.jpg"]
    with pytest.raises(ValueError, match="several inputs share the name 'case'"):
        output_stems(tmp_path, files, "image")
    assert output_stems(tmp_path, [tmp_path / "ct_1.nii.gz"], "volume") == ["ct_1"]
    with pytest.raises(OutputRefused, match="is the input folder"):
        refuse_input_folder(tmp_path / "a.png", tmp_path)


def test_probability_files_are_named_as_planned(tmp_path: Path) -> None:
    write_probability_maps(np.random.default_rng(0).random((3, 4, 5)), tmp_path, "x", tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == probability_names("x", "image", 3)
    assert probability_names("x", "image", 1) == ["x.png"] and probability_names("x", "volume", 3) == [
        "x.nii.gz"
    ]


def test_an_output_folder_is_claimed_then_refused_then_resumed(tmp_path: Path) -> None:
    out = tmp_path / "out"
    planned = ["a.png", "b.png", MANIFEST_NAME]
    signature = prediction_signature({"input": "in", "tta": False})
    assert signature == prediction_signature({"tta": False, "input": "in"}) and len(signature) == 16
    with folder_lock(out):  # prepare_output runs under the folder's lock, as predict_to_folder holds it
        assert prepare_output(out, planned, overwrite=False, signature=signature) == set()
        (out / "a.png").write_bytes(b"mask")
        # killed after a.png: the same signature resumes and keeps it, another is refused without --overwrite
        assert prepare_output(out, planned, overwrite=False, signature=signature) == {"a.png"}
        with pytest.raises(FileExistsError, match="already holds predictions"):
            prepare_output(out, planned, overwrite=False, signature=prediction_signature({"tta": True}))
        assert prepare_output(out, planned, overwrite=True, signature=signature) == set()
