"""Data flows one way: no import circle inside src/sftkit, at module level or inside functions (an import inside a
function hides a circle, it does not remove it); entry modules (the commands) import libraries, never each other."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
# `python -m sftkit` is the CLI itself: its one line runs cli.main
ALLOWED_ENTRY_IMPORTS = {("sftkit.__main__", "sftkit.cli")}


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in SRC.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                targets = [base, *(f"{base}.{a.name}" for a in node.names)]
            else:
                continue
            graph[name] |= {t for t in targets if t in modules and t != name and t != "sftkit"}
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_import_circles_in_the_package():
    assert circles(import_graph()) == []


def test_the_check_finds_a_circle():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    graph = import_graph()
    assert "sftkit.checkpoint.size" in graph["sftkit.train"]  # an import inside a function is seen too


def is_entry(module: str) -> bool:
    """A command's module: run by a user, never a library of another module."""
    return module in ("sftkit.train", "sftkit.dry_run", "sftkit.cli", "sftkit.tiny", "sftkit.__main__") or (
        module.endswith(".command")
    )


def entry_imports(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    """(importer, entry module) for every import of an entry module inside the package."""
    found = [(name, target) for name, targets in graph.items() for target in targets if is_entry(target)]
    return sorted(edge for edge in found if edge not in ALLOWED_ENTRY_IMPORTS)


def test_no_module_imports_an_entry_module():
    graph = import_graph()
    assert {"sftkit.train", "sftkit.dry_run", "sftkit.evaluation.command", "sftkit.rounds.command"} <= set(graph)
    assert entry_imports(graph) == []


def test_the_check_finds_an_entry_module_imported():
    graph = {"sftkit.dry_run": {"sftkit.train", "sftkit.config.show"}, "sftkit.rounds.recipe": {"sftkit.x.command"}}
    assert entry_imports(graph) == [("sftkit.dry_run", "sftkit.train"), ("sftkit.rounds.recipe", "sftkit.x.command")]
