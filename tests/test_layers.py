"""The house rule: imports only point down the layers, and no module imports itself back.

Layers (low to high): bench.core (the kernel) < methods, metrics, leaderboard < tasks < bench.runner
< bench.cli. A module may import its own package, or a package of a lower layer; packages that share
a layer do not import each other. Every import statement counts, function-local ones included;
only `if TYPE_CHECKING:` blocks (never executed) are exempt. The `bench` package itself is the
public API for method files (lazy, by name), so project modules do not import it, except the
method files the runner loads by path as a user's would be.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("bench", "methods", "tasks", "metrics", "leaderboard")
LAYERS = {"bench.core": 0, "methods": 1, "metrics": 1, "leaderboard": 1, "tasks": 2, "bench.runner": 3, "bench.cli": 4}
METHOD_FILES = {"bench.runner.validity_reinit"}  # loaded by path like a user's method file: may use the public API


def project_modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    return skip


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Project modules that `module` imports anywhere (top level or inside functions)."""
    tree = ast.parse(path.read_text(), str(path))
    skip = _type_checking_nodes(tree)
    is_pkg = path.name == "__init__.py"
    found = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")[: len(module.split(".")) - node.level + is_pkg]
                node_module = ".".join(base + ([node.module] if node.module else []))
            else:
                node_module = node.module or ""
            names = [node_module] + [f"{node_module}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name and name != module:
                found.add(name)
    return found


def layer_of(module: str) -> tuple[str, int]:
    for prefix in sorted(LAYERS, key=len, reverse=True):
        if module == prefix or module.startswith(prefix + "."):
            return prefix, LAYERS[prefix]
    raise AssertionError(f"{module} belongs to no layer: add it to a layered package (LAYERS in {__file__})")


def graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {m: imports_of(m, p, modules) for m, p in modules.items()}


def upward_imports(edges: dict[str, set[str]]) -> list[str]:
    bad = []
    for a, targets in edges.items():
        if a == "bench":
            continue  # the public API: names only (lazy), checked by test_public_api_is_lazy
        pa, la = layer_of(a)
        for b in targets:
            if b == "bench":
                if a not in METHOD_FILES:
                    bad.append(f"{a} -> bench (the public API is for method files; import the defining module)")
                continue
            pb, lb = layer_of(b)
            if pa != pb and lb >= la:
                bad.append(f"{a} (layer {la}: {pa}) -> {b} (layer {lb}: {pb})")
    return sorted(bad)


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
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

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_imports_only_point_down():
    assert upward_imports(graph()) == []


def test_no_module_cycles():
    assert cycles(graph()) == []


def test_public_api_is_lazy():
    import bench

    tree = ast.parse((ROOT / "bench" / "__init__.py").read_text())
    skip = _type_checking_nodes(tree)
    runtime = [ast.unparse(n) for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom)) and id(n) not in skip]
    assert all(s.startswith(("from __future__", "import importlib", "from typing")) for s in runtime), runtime
    for name in bench.__all__:
        assert getattr(bench, name) is not None


# -- the checker itself: it must catch what it claims to ----------------------------------------------
def test_checker_catches_an_upward_import_and_a_cycle():
    edges = graph()
    edges["bench.core.errors"] = edges["bench.core.errors"] | {"bench.runner.plan"}
    assert upward_imports(edges) == ["bench.core.errors (layer 0: bench.core) -> bench.runner.plan (layer 3: bench.runner)"]
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(edges) == [["a", "b", "c"]]


def test_checker_sees_function_local_and_relative_imports(tmp_path):
    modules = {"methods.x": tmp_path / "x.py", "tasks.base": tmp_path / "b.py", "methods.y": tmp_path / "y.py", "methods": tmp_path / "i.py"}
    modules["methods.x"].write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import tasks.base\n"
                                    "def f():\n    from tasks.base import TASKS\n    from .y import z\n")
    assert imports_of("methods.x", modules["methods.x"], modules) == {"tasks.base", "methods.y"}
