"""Issue 21: no import cycle inside tap_jira_safe (TYPE_CHECKING imports count too: a
cycle there is still two modules that each need the other) and no module over 500 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import tap_jira_safe

PACKAGE = Path(tap_jira_safe.__file__).parent


def imports_of(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "tap_jira_safe":
                found |= {f"tap_jira_safe.{alias.name}" for alias in node.names}
            elif node.module.startswith("tap_jira_safe."):
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("tap_jira_safe.")}
    return found


def test_no_import_cycle_inside_the_package() -> None:
    graph = {f"tap_jira_safe.{p.stem}": imports_of(p) for p in PACKAGE.glob("*.py")}
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, " -> ".join((*path[path.index(module) :], module))
        if module in done:
            return
        for imported in sorted(graph.get(module, ())):
            visit(imported, (*path, module))
        done.add(module)

    for module in sorted(graph):
        visit(module, ())


def test_no_module_over_500_lines() -> None:
    sizes = {p.name: len(p.read_text().splitlines()) for p in PACKAGE.glob("*.py")}
    assert not {name: n for name, n in sizes.items() if n > 500}
