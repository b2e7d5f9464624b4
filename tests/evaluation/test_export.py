"""Optional dependencies of export and the ONNX backend fail with an error that says what to install."""

from __future__ import annotations

import importlib.util

import pytest

from hlfnet.evaluation.export import require


def test_missing_optional_dependency_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "onnxscript" else real(name, *a)
    )
    with pytest.raises(ImportError, match=r"ONNX export needs onnxscript.*pip install 'hlfnet\[export\]'"):
        require(("onnx", "onnxscript"), "ONNX export")
    require(("onnx",), "ONNX export")  # installed: no error
