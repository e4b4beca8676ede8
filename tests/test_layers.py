"""The import layers: every import of the project (lazy ones included) runs down the layers, and no two
modules import each other, directly or round a circle.

lsnet < baselines < suites.core < suites.engines < the suites (suites/*.py) < suites.sweep <
suites.executors < suites.gate (the A/B gate) < suites.cli (the command, which also renders reports);
reports read only the schema (suites.core.schema, suites.core.published), the files (suites.core.resultfiles)
and the statistics of rounds (suites.core.measurement).
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("lsnet", "baselines", "suites", "reports")
LAYERS = ("lsnet", "baselines", "suites.core", "suites.engines", "suites", "suites.sweep", "suites.executors",
          "suites.gate", "suites.cli")
SCHEMA = ("suites.core.schema", "suites.core.published", "suites.core.resultfiles",   # and the files
          "suites.core.measurement")   # the statistics of rounds (pure Python)
SUBPACKAGES = tuple(layer for layer in LAYERS if layer.startswith("suites."))


def modules(root: Path = ROOT) -> dict[str, Path]:
    """``dotted name -> file`` of every module of the project's packages."""
    out = {}
    for pkg in PACKAGES:
        for path in sorted((root / pkg).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def imports(mods: dict[str, Path]) -> dict[str, set[str]]:
    """``module -> the project's modules it imports`` (every ``import`` statement, at any depth)."""
    out: dict[str, set[str]] = {}
    for name, path in mods.items():
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                targets = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in mods else node.module
                           for a in node.names]
            else:
                continue
            found |= {t for t in targets if t in mods and t != name}
        out[name] = found
    return out


def layer(module: str) -> str:
    """The layer a module belongs to (``reports`` for the reports)."""
    for sub in SUBPACKAGES:
        if module == sub or module.startswith(sub + "."):
            return sub
    return module.split(".")[0]


def upward(graph: dict[str, set[str]]) -> list[str]:
    """``a -> b`` for every import that runs up the layers or out of what the reports may read."""
    bad = []
    for a, targets in graph.items():
        for b in sorted(targets):
            la, lb = layer(a), layer(b)
            if b == "suites":   # the package's docstring (it imports nothing: see below)
                ok = True
            elif la == "reports":
                ok = lb == "reports" or b in SCHEMA
            elif lb == "reports":
                ok = la == "suites.cli"
            else:
                ok = LAYERS.index(lb) <= LAYERS.index(la)
            if not ok:
                bad.append(f"{a} -> {b}")
    return bad


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected set of two or more modules (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_runs_up_the_layers():
    assert upward(imports(modules())) == []


def test_no_circles_of_imports():
    assert circles(imports(modules())) == []


def test_package_docstrings_import_nothing():
    graph = imports(modules())
    for pkg in ("suites", "suites.core", "suites.sweep", "suites.gate"):
        assert graph[pkg] == set(), pkg


def test_no_generic_top_level_packages():
    """The installed top-level names are the asked-for ones only (no ``schema``, ``engines``, ``executors``)."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert 'include = ["lsnet*", "baselines*", "suites*", "reports*"]' in text
    for generic in ("schema", "engines", "executors"):
        assert not (ROOT / generic).exists(), generic


@pytest.mark.parametrize("source, expected", [
    ("import suites.sweep.plan\n", ["suites.core.x -> suites.sweep.plan"]),
    ("from suites.engines import base\n", ["suites.core.x -> suites.engines.base"]),
    ("def f():\n    from reports import render\n", ["suites.core.x -> reports"]),
    ("from suites.core import cell\n", []),
])
def test_the_checker_finds_an_upward_import(tmp_path, source, expected):
    for pkg in PACKAGES:
        (tmp_path / pkg).mkdir()
        (tmp_path / pkg / "__init__.py").write_text("")
    for sub in ("core", "engines", "sweep"):
        (tmp_path / "suites" / sub).mkdir()
        (tmp_path / "suites" / sub / "__init__.py").write_text("")
    (tmp_path / "suites" / "core" / "cell.py").write_text("")
    (tmp_path / "suites" / "engines" / "base.py").write_text("")
    (tmp_path / "suites" / "sweep" / "plan.py").write_text("import suites.core.x\n")
    (tmp_path / "suites" / "core" / "x.py").write_text(source)
    graph = imports(modules(tmp_path))
    assert upward(graph) == expected
    assert circles(graph) == ([["suites.core.x", "suites.sweep.plan"]] if "sweep" in source else [])
