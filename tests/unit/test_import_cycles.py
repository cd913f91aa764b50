"""jsweep's modules form no import cycle (the layers stay layers: schema below data, data below
validation, planning below the job code). Like the test that planning imports no torch, this reads
the source: every import counts, at module level and inside functions, since a lazy import only
hides a cycle until the day someone moves it to the top."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.support.paths import ROOT

PACKAGE = ROOT / "jsweep"


def _modules(package: Path) -> dict[str, Path]:
    root = package.parent
    out = {}
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(root).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        out[".".join(parts)] = path
    return out


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """Module -> the package's modules it imports (``from a import b`` counts a, and a.b when b is a
    module). Relative imports are resolved."""
    modules = _modules(package)
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = name.split(".") if is_package else name.split(".")[:-1]
                    parts = parts[: len(parts) - node.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                targets = [base] + [f"{base}.{alias.name}" for alias in node.names]  # the package runs too
            else:
                continue
            for target in targets:
                while target and target not in modules:  # jsweep.data.load.x -> jsweep.data.load
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def describe(comp: list[str], graph: dict[str, set[str]]) -> str:
    inside = set(comp)
    return "; ".join(f"{m} -> {', '.join(sorted(graph[m] & inside))}" for m in comp)


def test_the_cycle_finder_finds_cycles_through_lazy_and_relative_imports(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from pkg.sub import b\n")  # a -> sub.b
    (pkg / "sub" / "b.py").write_text("def f():\n    from ..c import g\n")  # lazy, relative: b -> c
    (pkg / "c.py").write_text("import pkg.a\ng = 1\n")  # c -> a: a cycle of three
    (pkg / "d.py").write_text("from pkg.a import x\nimport os\n")  # into the cycle, not part of it
    graph = import_graph(pkg)
    assert graph["pkg.sub.b"] == {"pkg.c"} and graph["pkg.d"] == {"pkg.a"}
    assert graph["pkg.a"] == {"pkg.sub", "pkg.sub.b"}
    assert cycles(graph) == [["pkg.a", "pkg.c", "pkg.sub.b"]]
    (pkg / "c.py").write_text("g = 1\n")
    assert cycles(import_graph(pkg)) == []


def test_jsweep_has_no_import_cycle():
    graph = import_graph()
    assert "jsweep.schema" in graph and "jsweep.data.load" in graph
    found = cycles(graph)
    assert not found, "import cycles in jsweep:\n" + "\n".join(
        f"  {len(c)} modules: {describe(c, graph)}" for c in found
    )


def test_the_schema_is_the_bottom_layer():
    """jsweep.schema imports nothing of the data layer or validation (only errors, and the executor
    registry that types the launcher's own keys)."""
    graph = import_graph()
    seen, todo = set(), ["jsweep.schema"]
    while todo:
        for dep in graph[todo.pop()] - seen:
            seen.add(dep)
            todo.append(dep)
    assert not {
        m
        for m in seen
        if m.startswith(
            (
                "jsweep.data",
                "jsweep.validate",
                "jsweep.spec",
                "jsweep.eval",
                "jsweep.compose",
                "jsweep.sweep",
                "jsweep.job",
            )
        )
    }, sorted(seen)
