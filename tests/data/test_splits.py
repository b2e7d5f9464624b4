"""The one split-file reader and writer (``hlfnet.data.read_split`` / ``write_split``): round trip and bad files."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from hlfnet.data import read_split, write_split

SPLIT = {"train": ["b", "a"], "val": ["c"], "test": []}


def test_write_then_read_round_trips_in_file_order_and_leaves_out_the_recorded_facts(tmp_path: Path) -> None:
    path = write_split(tmp_path / "split.json", SPLIT, {"seed": 3, "source": "official folders"})
    assert json.loads(path.read_text()) == {"seed": 3, "source": "official folders", **SPLIT}
    assert read_split(path) == SPLIT
    assert [p.name for p in tmp_path.iterdir()] == ["split.json"]  # atomic: no temporary left behind


def test_numeric_ids_are_read_as_strings(tmp_path: Path) -> None:
    (tmp_path / "s.json").write_text(json.dumps({"train": [1, "2"], "val": [], "test": []}))
    assert read_split(tmp_path / "s.json")["train"] == ["1", "2"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", r"s\.json: split file is not valid JSON"),
        ("[1, 2]", r"s\.json: a split maps 'train', 'val' and 'test' to lists of ids"),
        ('{"train": [], "val": []}', r"s\.json: a split maps"),
        ('{"train": "a", "val": [], "test": []}', r"s\.json: a split maps"),
        ('{"train": [["a"]], "val": [], "test": []}', r"s\.json: a split maps"),
        ('{"train": [null], "val": [], "test": []}', r"s\.json: a split maps"),
    ],
)
def test_a_bad_split_file_is_a_one_line_error_naming_it(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "s.json").write_text(text)
    with pytest.raises(ValueError, match=message) as error:
        read_split(tmp_path / "s.json")
    assert "\n" not in str(error.value)


def test_a_missing_or_undecodable_split_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"gone\.json: split file not found"):
        read_split(tmp_path / "gone.json")
    (tmp_path / "bin.json").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ValueError, match=r"bin\.json: unreadable split file"):
        read_split(tmp_path / "bin.json")


def test_against_the_data_ids_must_exist_once_and_unlisted_ones_are_ignored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_split(tmp_path / "s.json", SPLIT)
    with caplog.at_level(logging.WARNING):
        assert read_split(path, {"a", "b", "c", "d"}) == SPLIT
    assert "1 sample(s) in the data are not in the saved split" in caplog.text
    with pytest.raises(
        ValueError, match=r"s\.json: split lists 1 id\(s\) not found in the data, e.g. \['c'\]"
    ):
        read_split(path, {"a", "b"})
    write_split(path, {"train": ["a"], "val": ["a"], "test": []})
    assert read_split(path)["val"] == ["a"]  # without the data's ids only the shape is checked
    with pytest.raises(ValueError, match=r"s\.json: an id appears twice"):
        read_split(path, {"a"})


def test_writing_a_malformed_split_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"s\.json: a split maps"):
        write_split(tmp_path / "s.json", {"train": ["a"], "val": ["b"]})
    assert not (tmp_path / "s.json").exists()
