"""The import graph of ``components/`` and ``policy/``: no cycle, and no import from a lower layer to a higher one.

Every ``import`` statement counts, wherever it is: at module level, inside a function (an import on
demand is still a dependency) and under ``if TYPE_CHECKING:`` (so is a type). The layers are those
docs/design.md describes, bottom up; a module may import from its own layer or a lower one, and
the graph has no cycle, also inside a layer. ``python tests/unit/test_imports.py`` prints the
figures (modules, edges, cycles, imports upward).
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]
ROOTS = {
    "components": REPOSITORY / "components",
    "service_lifecycle_policy": REPOSITORY / "policy" / "service_lifecycle_policy",
}

LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("policy", ("service_lifecycle_policy",)),
    ("base", ("components", "components.refs", "components.labels", "components.lifecycle")),
    ("config", ("components.config", "components.settings", "components.schema", "components.stack_config")),
    ("parts", ("components.image", "components.kube", "components.promotion", "components.environment",
               "components.workload", "components.exposure", "components.monitoring", "components.registry")),
    ("service", ("components.service",)),
    ("testing", ("components.testing",)),
    ("commands", ("components.commands", "components.__main__")),
)  # fmt: skip
"""Bottom up: a module belongs to the layer of the longest prefix that names it (a package holds its modules)."""


def module_files() -> dict[str, Path]:
    """Every module of the two packages by its dotted name (a package by its ``__init__``)."""
    found: dict[str, Path] = {}
    for root, folder in ROOTS.items():
        for path in sorted(folder.rglob("*.py")):
            parts = path.relative_to(folder).with_suffix("").parts
            name = ".".join((root, *parts)).removesuffix(".__init__")
            found[name] = path
    return found


def _imported(tree: ast.AST, name: str, is_package: bool) -> Iterator[str]:
    """The dotted names a module's import statements name (absolute, relative ones resolved)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if is_package else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def import_graph() -> dict[str, set[str]]:
    """Module → the modules of the two packages it imports (``from pkg import mod`` is an edge to ``pkg.mod``;
    ``from mod import name`` to ``mod``)."""
    files = module_files()
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        tree = ast.parse(path.read_text(), str(path))
        targets: set[str] = set()
        for dotted in _imported(tree, name, path.name == "__init__.py"):
            if dotted in files:
                targets.add(dotted)
        # ``from pkg import mod`` also names ``pkg``: keep only the most precise target of each statement
        graph[name] = {t for t in targets if not any(o.startswith(f"{t}.") for o in targets)} - {name}
    return graph


def layer(module: str) -> int:
    best, index = "", -1
    for position, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(f"{prefix}.")) and len(prefix) > len(best):
                best, index = prefix, position
    return index


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def upward(graph: dict[str, set[str]]) -> list[str]:
    """Imports from a lower layer to a higher one, and from the policy pack into ``components``."""
    return sorted(
        f"{source} ({LAYERS[layer(source)][0]}) -> {target} ({LAYERS[layer(target)][0]})"
        for source, targets in graph.items()
        for target in targets
        if layer(target) > layer(source) or (layer(source) == 0) != (layer(target) == 0)
    )


def test_every_module_has_a_layer() -> None:
    assert [m for m in module_files() if layer(m) < 0] == []
    assert len(module_files()) > 60


def test_the_walk_sees_imports_on_demand_and_for_types() -> None:
    graph = import_graph()
    # running.py imports Settings only under TYPE_CHECKING, the plugin imports the offline run on demand
    assert "components.config.settings" in graph["components.testing.running"]
    assert "components.testing.offline" in graph["components.testing.pytest_plugin"]


def test_the_import_graph_has_no_cycle() -> None:
    assert cycles(import_graph()) == []


def test_no_module_imports_from_a_higher_layer() -> None:
    """In particular no library module imports from ``components.commands`` or ``components.testing``,
    and the testing helpers import no command."""
    assert upward(import_graph()) == []


MAX_MODULE_LINES = 500
MAX_UNIT_LINES = 120


def oversized(root: Path) -> list[str]:
    """Modules below ``root`` over :data:`MAX_MODULE_LINES` lines, functions and classes over :data:`MAX_UNIT_LINES`."""
    found = []
    for path in sorted(root.rglob("*.py")):
        text = path.read_text()
        name = path.relative_to(root.parent)
        if len(text.splitlines()) > MAX_MODULE_LINES:
            found.append(f"{name}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                size = (node.end_lineno or node.lineno) - node.lineno + 1
                if size > MAX_UNIT_LINES:
                    found.append(f"{name}:{node.lineno} {node.name}: {size} lines")
    return found


def test_no_module_over_500_lines_and_no_unit_over_120() -> None:
    """The layout's size limits (docs/design.md): a module a reader holds whole, a unit one screenful or two."""
    assert oversized(ROOTS["components"]) == []


def test_the_size_check_finds_a_long_module_and_a_long_function(tmp_path: Path) -> None:
    package = tmp_path / "package"
    package.mkdir()
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_UNIT_LINES))
    (package / "long.py").write_text("def long():\n" + body + "\n" * (MAX_MODULE_LINES - MAX_UNIT_LINES + 1))
    (package / "short.py").write_text("def short():\n" + "\n".join(body.splitlines()[: MAX_UNIT_LINES - 1]) + "\n")
    assert oversized(package) == ["package/long.py: 501 lines", "package/long.py:1 long: 121 lines"]


if __name__ == "__main__":
    graph = import_graph()
    print(f"{len(graph)} modules, {sum(len(t) for t in graph.values())} imports between them")
    print(f"cycles: {len(cycles(graph))}")
    for component in cycles(graph):
        print("  " + " <-> ".join(component))
    print(f"upward imports: {len(upward(graph))}")
    print(f"over the size limits: {oversized(ROOTS['components'])}")
    for line in upward(graph):
        print("  " + line)
    sys.exit(0)
