"""The package's import graph: no import circles, and imports flow platform -> search -> simulator only.

Read statically (every ``import`` statement, lazy ones and ``TYPE_CHECKING`` ones included), so a circle hidden
inside a function body is found too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parents[1] / "rnc"
LAYERS = {"rnc.simulator": 0, "rnc.search": 1, "rnc.platform": 2}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(module: str, path: Path, node: ast.AST, modules: set[str]) -> set[str]:
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names if alias.name in modules}
    if not isinstance(node, ast.ImportFrom):
        return set()
    base = node.module or ""
    if node.level:
        package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        package = package[: len(package) - (node.level - 1)]
        base = ".".join([*package, *([node.module] if node.module else [])])
    found = set()
    for alias in node.names:
        if f"{base}.{alias.name}" in modules:
            found.add(f"{base}.{alias.name}")
        elif base in modules:
            found.add(base)
    return found


def import_graph() -> nx.DiGraph:
    """Directed graph of ``rnc`` modules: an edge ``a -> b`` where ``a`` imports ``b``."""
    paths = {_module_name(p): p for p in ROOT.rglob("*.py")}
    graph = nx.DiGraph()
    graph.add_nodes_from(paths)
    for module, path in paths.items():
        for node in ast.walk(ast.parse(path.read_text())):
            for target in _imported(module, path, node, set(paths)):
                if target != module:
                    graph.add_edge(module, target)
    return graph


def _layer(module: str) -> int | None:
    return next((rank for prefix, rank in LAYERS.items() if module.startswith(prefix)), None)


def test_the_graph_is_read() -> None:
    graph = import_graph()
    assert graph.has_edge("rnc.search.supernet.imc_supernet", "rnc.search.spaces.imc_net")
    assert graph.has_edge("rnc.search.spaces.imc_blocks", "rnc.search.supernet.imc_supernet")  # the lazy import


def test_no_import_circles() -> None:
    circles = [sorted(c) for c in nx.strongly_connected_components(import_graph()) if len(c) > 1]
    assert circles == [], f"import circles: {circles}"


@pytest.mark.parametrize("lower", ["rnc.simulator", "rnc.search"])
def test_imports_flow_downwards_only(lower: str) -> None:
    graph = import_graph()
    upward = [
        (a, b)
        for a, b in graph.edges
        if a.startswith(lower) and (_layer(b) or 0) > LAYERS[lower]
    ]
    assert upward == [], f"{lower} imports a higher layer: {upward}"
