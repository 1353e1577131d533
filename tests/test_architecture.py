"""The folder tree is the architecture: arrows point down, no circles, no module past 400 lines."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 400
# The folders of gateway/, lowest first: a module imports only from its own folder or from
# those before it. `clock` is one module everything below the command line may use;
# `__main__` runs the command line.
LAYERS = ["clock", "store", "config", "sla", "outbox", "intake", "portal", "tickets", "trackers",
          "http", "daemon", "cli", "__main__"]


@dataclass(frozen=True)
class Edge:
    """One import statement: who imports what, on which line, and whether only for types."""

    importer: str
    imported: str
    line: int
    type_checking: bool


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def sources(package: str) -> dict[str, Path]:
    """Every module of PACKAGE (Alembic's generated migrations aside) by dotted name."""
    return {module_name(p): p for p in sorted((ROOT / package).rglob("*.py"))
            if "versions" not in p.relative_to(ROOT).parts}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports_of(name: str, path: Path, known: set[str]) -> list[Edge]:
    """The imports of one module at any depth (inside functions too), resolved to modules:
    `from a.b import c` names the module a.b.c when there is one, else a.b."""
    edges: list[Edge] = []

    def visit(node: ast.AST, type_checking: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for stmt in child.body:
                    visit_stmt(stmt, True)
                for stmt in child.orelse:
                    visit_stmt(stmt, type_checking)
            else:
                visit_stmt(child, type_checking)

    def visit_stmt(node: ast.AST, type_checking: bool) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                edges.append(Edge(name, alias.name, node.lineno, type_checking))
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                target = submodule if submodule in known else node.module
                edges.append(Edge(name, target, node.lineno, type_checking))
        visit(node, type_checking)

    visit(ast.parse(path.read_text(encoding="utf-8")), False)
    return edges


GATEWAY = sources("gateway")
PURE = {**sources("parsers"), **sources("rules")}
KNOWN = set(GATEWAY) | set(PURE)
GATEWAY_EDGES = [edge for name, path in GATEWAY.items() for edge in imports_of(name, path, KNOWN)]


def layer_of(module: str) -> int:
    """The position in LAYERS of a gateway module's folder (or top-level module)."""
    parts = module.split(".")
    if len(parts) == 1:  # the package itself
        return 0
    return LAYERS.index(parts[1])


def test_parsers_and_rules_import_nothing_from_gateway() -> None:
    """parsers/ and rules/ are pure: no import of gateway, not even a lazy or typing-only one."""
    upward = [f"{edge.importer}:{edge.line} imports {edge.imported}"
              for name, path in PURE.items() for edge in imports_of(name, path, KNOWN)
              if edge.imported == "gateway" or edge.imported.startswith("gateway.")]
    assert upward == []


def test_every_gateway_module_sits_in_a_known_layer() -> None:
    """A new folder of gateway/ is placed in LAYERS (and so in the architecture) on purpose."""
    unplaced = [name for name in GATEWAY if "." in name
                and name.split(".")[1] not in LAYERS]
    assert unplaced == []


def test_gateway_imports_point_down() -> None:
    """A module imports only from its own folder or a lower one (LAYERS), typing included."""
    upward = [f"{edge.importer}:{edge.line} imports {edge.imported}" for edge in GATEWAY_EDGES
              if edge.imported.startswith("gateway.")
              and layer_of(edge.imported) > layer_of(edge.importer)]
    assert upward == []


def find_circle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle of GRAPH, as the modules along it, or None."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def walk(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state and (found := walk(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := walk(start)):
            return found
    return None


def test_find_circle_finds_one() -> None:
    """The circle finder itself: a -> b -> c -> a is found, a tree is not a circle."""
    assert find_circle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_circle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_no_import_circle_between_gateway_modules() -> None:
    """No circle among gateway's modules, counting lazy imports inside functions and
    TYPE_CHECKING imports alike: a circle that only typing closes still says two modules
    depend on each other, and there are none to excuse."""
    graph: dict[str, set[str]] = {name: set() for name in GATEWAY}
    for edge in GATEWAY_EDGES:
        if edge.imported in GATEWAY and edge.imported != edge.importer:
            graph[edge.importer].add(edge.imported)
    assert find_circle(graph) is None


def test_no_private_name_crosses_a_module() -> None:
    """A module never imports another module's private (_underscored) names."""
    private = [f"{name}:{node.lineno} imports {node.module}.{alias.name}"
               for name, path in GATEWAY.items()
               for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
               if isinstance(node, ast.ImportFrom) and node.module
               and node.module.startswith("gateway")
               for alias in node.names if alias.name.startswith("_")]
    assert private == []


def test_no_gateway_module_passes_400_lines() -> None:
    """Modules stay small enough to read in one sitting; split one that grows past 400."""
    long = {name: lines for name, path in GATEWAY.items()
            if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert long == {}
