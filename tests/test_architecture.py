"""The package's shape: no import cycles, and no stage importing a later one.

Every import counts, including those inside functions (the lazy imports that keep
``spotreview --help`` instant): a lazy import still ties the two modules together.
"""

from __future__ import annotations

import grimp
import pytest

# Stages from last to first: a package may import only from the packages below it.
LAYERS = (
    "cli",
    "rendering",
    "reviewing",
    "analysis",
    "training",
    "embedding",
    "rundir",
    "util",
    "defaults",
    "errors",
)


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("spotreview", cache_dir=None)


def import_cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Every cycle of module imports, each as the list of modules around it (depth-first search)."""
    edges = {m: sorted(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []
    cycles = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for imported in edges.get(module, ()):
            if state.get(imported) == 1:
                cycles.append(path[path.index(imported) :] + [imported])
            elif imported not in state:
                visit(imported)
        path.pop()
        state[module] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module)
    return cycles


def layer_violations(graph: grimp.ImportGraph) -> list[str]:
    """``module -> module`` for every import of a later stage by an earlier one (the first
    and last module of each chain of imports that leads there)."""
    illegal = graph.find_illegal_dependencies_for_layers(layers=LAYERS, containers={"spotreview"})
    return sorted(
        f"{head} -> {tail}" for d in illegal for route in d.routes for head in route.heads for tail in route.tails
    )


def test_every_stage_package_is_a_layer(graph):
    top = {m.split(".")[1] for m in graph.modules if m.count(".") >= 1}
    assert top - {"__main__"} == set(LAYERS)


def test_no_import_cycles(graph):
    assert import_cycles(graph) == []


def test_no_stage_imports_a_later_stage(graph):
    assert layer_violations(graph) == []


def test_the_checks_find_what_they_guard_against():
    """An import added against the order is both a layer violation and, here, a cycle."""
    graph = grimp.build_graph("spotreview", cache_dir=None)
    graph.add_import(importer="spotreview.rundir.run", imported="spotreview.reviewing.table")
    assert "spotreview.rundir.run -> spotreview.reviewing.table" in layer_violations(graph)
    assert any("spotreview.rundir.run" in cycle for cycle in import_cycles(graph))
