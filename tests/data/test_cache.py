"""The on-disk preprocessing cache: hit without decoding, rebuilt on change, safe when runs race."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest
import torch

import hlfnet.data.cache as cache_mod
from hlfnet.data import DataConfig, build_dataset
from hlfnet.data.splits import split_pairs
from tests.data.helpers import write_folder


def _cfg(tmp_path, **kw):
    root = tmp_path / "f"
    if not root.exists():
        write_folder(root, n=4, size=(24, 32))
    settings = {"image_size": (16, 24), "cache_dir": str(tmp_path / "c"), "split_fractions": (1, 0, 0), **kw}
    return DataConfig(format="folder", root=str(root), **settings)


def _entries(tmp_path):
    return sorted(p.name for p in (tmp_path / "c" / "arrays").iterdir() if not p.name.startswith("."))


def test_second_build_reads_the_cache_without_decoding(tmp_path, monkeypatch):
    first = build_dataset(_cfg(tmp_path), "train", augment=False)
    assert len(_entries(tmp_path)) == 1
    monkeypatch.setattr(
        cache_mod, "read_image_channels", lambda *a: pytest.fail("decoded an image on a cache hit")
    )
    second = build_dataset(_cfg(tmp_path), "train", augment=False)
    assert isinstance(second.store.images, np.memmap)
    for i in range(len(first)):
        assert torch.equal(first[i]["image"], second[i]["image"])


def test_changed_settings_or_files_make_a_new_entry(tmp_path):
    build_dataset(_cfg(tmp_path), "train")
    build_dataset(_cfg(tmp_path, image_size=(32, 32)), "train")
    assert len(_entries(tmp_path)) == 2
    image = tmp_path / "f" / "images" / "case0.png"
    os.utime(image, ns=(image.stat().st_atime_ns, image.stat().st_mtime_ns + 10**9))
    build_dataset(_cfg(tmp_path), "train")
    assert len(_entries(tmp_path)) == 3
    build_dataset(_cfg(tmp_path, hflip=0.0), "train")  # augmentation settings do not change the arrays
    assert len(_entries(tmp_path)) == 3


def test_use_cache_false_writes_nothing(tmp_path):
    ds = build_dataset(_cfg(tmp_path, use_cache=False), "train")
    assert len(ds) == 4 and not (tmp_path / "c" / "arrays").exists()


def test_two_runs_building_the_same_entry_at_once(tmp_path, monkeypatch):
    cfg = _cfg(tmp_path)
    pairs = split_pairs(cfg, "train")
    barrier = threading.Barrier(2)
    original = cache_mod._build

    def racing_build(*args, **kwargs):
        barrier.wait(timeout=30)  # both runs have missed the cache before either finishes
        return original(*args, **kwargs)

    monkeypatch.setattr(cache_mod, "_build", racing_build)
    results, errors = [], []

    def run():
        try:
            results.append(cache_mod.load_or_build(cfg, "train", pairs))
        except Exception as error:  # noqa: BLE001 - reported by the assertion
            errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and len(results) == 2
    assert results[0].path == results[1].path
    assert np.array_equal(results[0].images, results[1].images)
    leftovers = [p for p in (tmp_path / "c" / "arrays").iterdir() if p.name.endswith(".tmp")]
    assert not leftovers and len(_entries(tmp_path)) == 1


def test_a_failed_build_leaves_no_entry(tmp_path):
    cfg = _cfg(tmp_path)
    bad = tmp_path / "f" / "masks" / "case3.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(ValueError, match="case3.png"):
        build_dataset(cfg, "train")
    assert _entries(tmp_path) == [] and not list((tmp_path / "c" / "arrays").iterdir())
