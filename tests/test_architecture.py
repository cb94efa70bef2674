"""The layering docs/architecture.md describes, held against the code: no import cycles,
and the forbidden arrows checked through any chain of imports (a layer that may not import
another may not reach it through a third). Every import counts: module level, function
level and type-only alike."""

from __future__ import annotations

import ast
from collections import deque
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
POLICIES = ("strategy", "selection", "compression", "scheduling", "adapt")

# (importer, what it must never reach, why)
NEVER = [
    ("report", "engine", "the report reads the ledger, never reruns the engine"),
    ("report", "api", "the report reads the ledger, never reruns the engine"),
    ("report", "config", "the report reads what the run wrote, not the config"),
    ("engine", "config", "the engine is handed objects, not the config"),
    ("engine", "factories", "the engine is handed objects; it does not compose them"),
    ("engine", "cli", "the core knows no CLI"),
    ("engine", "api", "the core knows no face"),
    ("accounting", "config", "accounting is handed objects"),
    ("footprint", "config", "the footprint model is pure"),
    ("footprint", "engine", "the footprint model is pure"),
    ("ledger", "engine", "storage does not drive the loop"),
] + [
    (p, t, why)
    for p in POLICIES
    for t, why in (
        ("config", "a policy owns its parameters"),
        ("engine", "a policy knows nothing of its calling loop"),
        ("deploy", "one policy runs in simulation and deployment"),
    )
]


def _modules() -> dict[str, Path]:
    out = {}
    for path in (SRC / "greenfl").rglob("*.py"):
        if "_pb2" in path.name:
            continue
        name = ".".join(path.relative_to(SRC).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = path
    return out


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    graph: dict[str, set[str]] = {}
    for mod, path in mods.items():
        package = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*parts, base] if base else parts)
                names = [f"{base}.{a.name}" for a in node.names] + [base]
            for name in names:
                while name and name not in mods:
                    name = name.rpartition(".")[0]
                if name.startswith("greenfl") and name != mod:
                    targets.add(name)
        # A package re-exporting its own submodules is not an arrow of design.
        graph[mod] = {t for t in targets if not t.startswith(mod + ".")}
    return graph


def _under(mod: str, layer: str) -> bool:
    full = f"greenfl.{layer}"
    return mod == full or mod.startswith(full + ".")


def _chain(graph: dict[str, set[str]], start: str, layer: str) -> list[str] | None:
    """The shortest import chain from ``start`` into ``layer``, or None."""
    prev: dict[str, str | None] = {start: None}
    todo = deque([start])
    while todo:
        v = todo.popleft()
        for w in sorted(graph[v]):
            if w in prev:
                continue
            prev[w] = v
            if _under(w, layer):
                chain = [w]
                while prev[chain[-1]] is not None:
                    chain.append(prev[chain[-1]])  # type: ignore[arg-type]
                return chain[::-1]
            todo.append(w)
    return None


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return _graph()


@pytest.mark.parametrize(("layer", "target", "why"), NEVER)
def test_no_forbidden_arrow_through_any_chain(graph, layer: str, target: str, why: str) -> None:
    for mod in sorted(m for m in graph if _under(m, layer)):
        chain = _chain(graph, mod, target)
        assert chain is None, f"{' -> '.join(chain)}: {why}"


def test_no_import_cycles(graph) -> None:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not cycles, cycles


def test_the_checker_finds_a_chain_when_there_is_one() -> None:
    fake = {
        "greenfl.report.a": {"greenfl.analysis.b"},
        "greenfl.analysis.b": {"greenfl.api"},
        "greenfl.api": set(),
    }
    assert _chain(fake, "greenfl.report.a", "api") == [
        "greenfl.report.a",
        "greenfl.analysis.b",
        "greenfl.api",
    ]
