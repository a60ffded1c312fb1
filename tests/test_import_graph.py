"""The layers as a checked contract: import-linter's contracts from pyproject.toml hold, and no
two files of the application import each other, directly or round a longer circle."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ["gateway", "export", "loadtest"]


def import_cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), each sorted."""
    edges = {m: sorted(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(module: str) -> None:  # recursion depth is bounded by the module count
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in edges[module]:
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for module in sorted(edges):
        if module not in index:
            visit(module)
    return cycles


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_cycle_between_files(package: str) -> None:
    # Imports under TYPE_CHECKING count too: a circle the type checker follows is still one.
    graph = grimp.build_graph(package, exclude_type_checking_imports=False)
    assert import_cycles(graph) == []


def test_cycle_finder_finds_a_circle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The check above could fail: a two-file circle and a three-file one are both found."""
    package = tmp_path / "circles"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from circles import b\n")
    (package / "b.py").write_text("from circles import a\n")
    (package / "c.py").write_text("from circles import d\n")
    (package / "d.py").write_text("from circles import e\n")
    (package / "e.py").write_text("from circles import c\n")
    (package / "f.py").write_text("from circles import a\n")  # imports a circle, not in one
    monkeypatch.syspath_prepend(str(tmp_path))
    cycles = import_cycles(grimp.build_graph("circles"))
    assert sorted(cycles) == [["circles.a", "circles.b"], ["circles.c", "circles.d", "circles.e"]]


def test_layer_contracts_hold() -> None:
    """lint-imports with the contracts in pyproject.toml (nothing below gateway.api imports it,
    the store imports nothing from gateway.memory, domain types at the bottom, ...)."""
    lint_imports = Path(sys.executable).with_name("lint-imports")  # the venv's console script
    result = subprocess.run([str(lint_imports), "--no-cache"],
                            cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout
