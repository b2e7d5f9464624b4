"""No module reaches into another module's private names (``from hlfnet.x import _y`` or ``obj._y`` across files).

Checked on the syntax tree of every file under ``src/hlfnet`` and ``benchmarks``: imports of underscore names
from another hlfnet module, and attribute access to an underscore name on anything but ``self`` / ``cls``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

FILES = sorted([*(REPO_ROOT / "src" / "hlfnet").rglob("*.py"), *(REPO_ROOT / "benchmarks").glob("*.py")])
# names that are private by convention but part of Python or a library's public protocol
ALLOWED_ATTRIBUTES = {
    "_asdict",
    "_replace",
    "_fields",
    "_make",
    "_SubParsersAction",
    "_ArgumentGroup",
    "_get_name",
}


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _violations(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("hlfnet"):
            found += [
                f"{path.name}:{node.lineno} imports {a.name} from {node.module}"
                for a in node.names
                if _private(a.name)
            ]
        elif isinstance(node, ast.Attribute) and _private(node.attr) and node.attr not in ALLOWED_ATTRIBUTES:
            owner = node.value
            if isinstance(owner, ast.Name) and owner.id in ("self", "cls"):
                continue
            found.append(f"{path.name}:{node.lineno} uses .{node.attr}")
    return found


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_no_private_name_of_another_module(path: Path) -> None:
    assert not _violations(path)


def test_the_check_catches_a_private_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from hlfnet.data.io import _secret\nx = predictor._bar(3)\n")
    assert len(_violations(bad)) == 2
