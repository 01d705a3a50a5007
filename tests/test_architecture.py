"""Imports point one way (see ARCHITECTURE.md): the CLI over the application modules over the
per-record pipeline over its parts over the data types, and no part reaching into another's
internals. A new upward or sideways import fails here, with the route that makes it."""

from __future__ import annotations

import ast
from pathlib import Path

import grimp
import pytest

PACKAGE = "vqa_gen"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE

LAYERS = [
    grimp.Layer("cli", "__main__", independent=False),
    # the application: the batch run, the importable API, the author's and auditor's tools
    grimp.Layer("runner", "generator", "refilter", "authoring", "audit", "report", "rundiff",
                "export", "batch", "distributed", "preflight", "workers", independent=False),
    # one record: prompt -> LLM -> QA -> verdicts
    grimp.Layer("pipeline", independent=False),
    # its parts
    grimp.Layer("templates", "grounding", "llm", "cache", "output", "embedded", "ordered",
                independent=False),
    # data types and answer formats
    grimp.Layer("records", "formats", "answers", independent=False),
    grimp.Layer("errors"),
]

FORBIDDEN = [
    ("generator", "runner", "the public API must not depend on the batch runner's internals"),
    ("templates", "grounding", "templates share caption analysis through a neutral module, not "
                               "the filter's internals"),
    ("llm", "cache", "the client knows nothing of caching"),
    ("llm", "templates", "the client knows nothing of prompts"),
    ("llm", "grounding", "the client knows nothing of grounding"),
    ("output", "grounding", "writing output is not grading it"),
]

PENDING: set[str] = set()
"""Known violations, each to be removed with its fix; an entry that no longer occurs fails the
test too, so this list can only shrink."""


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph(PACKAGE, cache_dir=None)


def _short(module: str) -> str:
    return module.removeprefix(PACKAGE + ".").split(".")[0]


def _layer_violations(graph: grimp.ImportGraph) -> dict[str, str]:
    found = {}
    for dep in graph.find_illegal_dependencies_for_layers(LAYERS, containers={PACKAGE}):
        route = min(dep.routes, key=lambda r: (len(r.middle), r.heads)) if dep.routes else None
        how = " -> ".join((*route.heads, *route.middle, *route.tails)) if route else "?"
        found[f"{_short(dep.importer)} -> {_short(dep.imported)}"] = how
    return found


def _forbidden(graph: grimp.ImportGraph) -> dict[str, str]:
    found = {}
    for importer, imported, why in FORBIDDEN:
        a, b = f"{PACKAGE}.{importer}", f"{PACKAGE}.{imported}"
        if graph.chain_exists(a, b, as_packages=True):
            found[f"{importer} -> {imported}"] = why
    return found


def _refilter_builds_a_context() -> dict[str, str]:
    tree = ast.parse((ROOT / "refilter.py").read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id == "GenerationContext"):
            return {"refilter builds a GenerationContext":
                    "refilter grades stored replies: it needs no client and no context"}
    return {}


def test_layers_are_every_module_of_the_package(graph):
    placed = {name for layer in LAYERS for name in layer.module_tails}
    modules = {_short(m) for m in graph.modules if m != PACKAGE}
    assert modules - placed <= {"testing"}, modules - placed


def test_imports_point_one_way(graph):
    found = {**_layer_violations(graph), **_forbidden(graph), **_refilter_builds_a_context()}
    new = {k: v for k, v in found.items() if k not in PENDING}
    assert not new, "imports against the layering:\n" + "\n".join(
        f"  {k}: {v}" for k, v in sorted(new.items()))
    fixed = PENDING - set(found)
    assert not fixed, f"fixed, remove from PENDING: {sorted(fixed)}"


def test_the_checks_catch_an_upward_import():
    # the package's graph with one upward and one sideways import added: both must be seen
    graph = grimp.build_graph(PACKAGE, cache_dir=None)
    graph.add_import(importer=f"{PACKAGE}.records", imported=f"{PACKAGE}.pipeline")
    assert "records -> pipeline" in _layer_violations(graph)
    graph.add_import(importer=f"{PACKAGE}.llm", imported=f"{PACKAGE}.cache")
    assert "llm -> cache" in _forbidden(graph)
