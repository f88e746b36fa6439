"""The harness's floors, as harness/README.md draws them, hold in the code: every module sits on one
floor, imports only from its floor and those below, and no import loop exists (lazy imports inside
functions included: a loop held open by a deferred import is still a loop)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

HARNESS = Path(__file__).resolve().parent.parent / "harness"


def _module(path: Path) -> str:
    parts = path.relative_to(HARNESS).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts) or "__init__"


MODULES = {_module(p): p for p in sorted(HARNESS.rglob("*.py"))}


def floors() -> dict[str, int]:
    """module -> floor number (0 lowest), from the README's floor table; `detectors/` is every module
    of the detectors package."""
    text = (HARNESS / "README.md").read_text()
    table = text.split("## The floors", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith(("| floor", "| ---"))]
    found: dict[str, int] = {}
    for level, row in enumerate(rows):
        for name in re.findall(r"`([^`]+)`", row.split("|")[2]):
            if name.endswith("/"):
                package = name.rstrip("/")
                members = [m for m in MODULES if m == package or m.startswith(package + ".")]
            else:
                members = [_module(HARNESS / name)]
            for member in members:
                assert member not in found, f"{member} is on two floors"
                found[member] = level
    return found


def imports(path: Path) -> set[str]:
    """The harness modules a file imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "failbench":
            base = node.module[len("failbench") :].lstrip(".")
            if base.split(".")[0] == "cases":
                continue
            for alias in node.names:
                name = f"{base}.{alias.name}" if base else alias.name
                found.add(name if name in MODULES else base or "__init__")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "failbench" and len(parts) > 1 and parts[1] != "cases":
                    found.add(".".join(parts[1:]))
    return found - {_module(path)}


GRAPH = {name: imports(path) for name, path in MODULES.items()}


def test_every_module_is_on_one_floor():
    assert sorted(set(MODULES) - set(floors())) == []
    assert sorted(set(floors()) - set(MODULES)) == [], "the README names a module that does not exist"


def test_no_import_points_up_a_floor():
    level = floors()
    upward = [f"{a} -> {b}" for a, targets in GRAPH.items() for b in targets if level[b] > level[a]]
    assert upward == []


def test_no_import_loop():
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for target in sorted(GRAPH[node]):
            if state.get(target) == 1:
                return [*path, node, target]
            if target not in state and (loop := visit(target, [*path, node])):
                return loop
        state[node] = 2
        return None

    for start in sorted(GRAPH):
        if start not in state and (loop := visit(start, [])):
            raise AssertionError("import loop: " + " -> ".join(loop[loop.index(loop[-1]) :]))
