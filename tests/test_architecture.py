"""The package layering that docs/architecture.md draws, checked on the source: no import circles between
modules, and no module importing from a layer above its own.

Every ``import`` counts, including the ones inside functions (a lazy import is still a dependency), except those
under ``if TYPE_CHECKING:``, which never run (annotations only). Importing
``a.b.c`` is an edge to the module ``a.b.c``, ``from a.b import c`` to ``a.b`` and, where ``c`` is a module,
to ``a.b.c``; parent packages are not edges (their ``__init__`` re-exports are the public API, not a layer).
"""

from __future__ import annotations

import ast
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[1] / "src"

#: Bottom to top, as docs/architecture.md lists them. A module belongs to the longest prefix that names it;
#: every ``cli`` module is a command (the top layer), whatever its package.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    (
        "foundation",
        (
            "hlfnet.errors",
            "hlfnet.limits",
            "hlfnet.atomic",
            "hlfnet.schema",
            "hlfnet.progress",
            "hlfnet.version",
        ),
    ),
    ("data and networks", ("hlfnet.data", "hlfnet.models")),
    ("pretrained store", ("hlfnet.pretrained",)),
    ("experiment", ("hlfnet.experiment",)),
    ("evaluation", ("hlfnet.evaluation",)),
    ("training", ("hlfnet.engine",)),
    ("serving", ("hlfnet.serve",)),
    ("commands", ("hlfnet", "hlfnet.cli", "hlfnet.__main__", "hlfnet.pretrained.publish")),
]


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted((SOURCE / "hlfnet").rglob("*.py")):
        parts = list(path.relative_to(SOURCE).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def executed_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node of ``tree`` except the bodies of ``if TYPE_CHECKING:`` blocks."""
    found, todo = [], [tree]
    while todo:
        node = todo.pop()
        found.append(node)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            todo.extend(node.orelse)
            continue
        todo.extend(ast.iter_child_nodes(node))
    return found


def import_graph() -> dict[str, set[str]]:
    known = modules()
    graph: dict[str, set[str]] = {name: set() for name in known}
    for name, path in known.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in executed_nodes(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                targets = [module, *(f"{module}.{alias.name}" for alias in node.names)]
            graph[name].update(t for t in targets if t in known and t != name)
    return graph


def layer_of(module: str) -> int:
    if module.rpartition(".")[2] == "cli":
        return len(LAYERS) - 1
    best, index = "", -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > len(best):
                best, index = prefix, i
    assert index >= 0, f"{module} is in no layer: add it to LAYERS and docs/architecture.md"
    return index


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_checker_finds_a_circle_and_an_upward_import() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    typed = ast.parse(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import x\nelse:\n    import y\nimport z"
    )
    imported = {a.name for n in executed_nodes(typed) if isinstance(n, ast.Import) for a in n.names}
    assert imported == {"y", "z"}
    assert cycles({"a": {"b"}, "b": set()}) == []
    assert layer_of("hlfnet.data.cli") == layer_of("hlfnet.cli") == len(LAYERS) - 1
    assert layer_of("hlfnet.pretrained.publish") > layer_of("hlfnet.experiment.run_folder")
    assert layer_of("hlfnet.experiment.run_folder") > layer_of("hlfnet.pretrained")
    assert layer_of("hlfnet.errors") == 0


def test_no_import_circles() -> None:
    assert cycles(import_graph()) == []


def test_no_module_imports_a_higher_layer() -> None:
    upward = [
        f"{module} ({LAYERS[layer_of(module)][0]}) imports {target} ({LAYERS[layer_of(target)][0]})"
        for module, targets in sorted(import_graph().items())
        for target in sorted(targets)
        if layer_of(target) > layer_of(module)
    ]
    assert upward == []
