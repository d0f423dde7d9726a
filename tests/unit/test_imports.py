"""Import rules of the package (DESIGN.md, "The flow" and "Layout"; issue 18, item 3).

Every module of ``kgzoo/`` is parsed with :mod:`ast` (nothing is imported), function-local
imports included; in a module that imports by name (``importlib.import_module``, or the deferred
imports of :func:`kgzoo.lazy.lazy_exports` and ``kgzoo.cli._Lazy``), every string literal that
names a kgzoo module below the root package counts as an import of it. The module graph has an edge ``a -> b`` for each import of ``b`` by ``a``
(``from kgzoo.x import y`` is an edge to ``kgzoo.x.y`` where that is a module, else to
``kgzoo.x``; a parent package imported implicitly is no edge). Checked:

(a) no import cycle in ``kgzoo/``;
(b) ``kgzoo/models/**`` imports nothing of kgzoo but ``kgzoo.models``, ``kgzoo.ops``,
    ``kgzoo.tasks``, ``kgzoo.registry``, ``kgzoo.metrics`` and ``kgzoo.version``;
(c) no function-local import of a kgzoo module (such imports only hid cycles; function-local
    imports stay for optional heavy dependencies such as transformers or peft).
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[2] / "kgzoo"
MODELS_MAY_IMPORT = ("kgzoo.models", "kgzoo.ops", "kgzoo.tasks", "kgzoo.registry", "kgzoo.metrics", "kgzoo.version")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _resolve(module: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    if not _is_package(module):
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _target(name: str) -> str | None:
    """The kgzoo module ``name`` refers to (itself, else its longest module prefix)."""
    while name and name.startswith("kgzoo"):
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def _imports(module: str) -> list[tuple[str, int, bool]]:
    """``(imported kgzoo module, line, function-local)`` of every import in ``module``."""
    source = MODULES[module].read_text()
    tree = ast.parse(source, filename=str(MODULES[module]))
    dynamic = any(s in source for s in ("import_module", "lazy_exports(", "_Lazy("))
    out: list[tuple[str, int, bool]] = []

    def visit(node: ast.AST, local: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = local or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            names: list[str] = []
            if isinstance(child, ast.Import):
                names = [a.name for a in child.names]
            elif isinstance(child, ast.ImportFrom):
                src = _resolve(module, child)
                names = [f"{src}.{a.name}" if f"{src}.{a.name}" in MODULES else src for a in child.names]
            elif dynamic and isinstance(child, ast.Constant) and isinstance(child.value, str):
                names = [child.value] if child.value in MODULES and child.value != "kgzoo" else []
            for n in names:
                t = _target(n)
                if t is not None and t != module:
                    out.append((t, getattr(child, "lineno", 0), local))
            visit(child, inner)

    visit(tree, False)
    return out


GRAPH = {m: _imports(m) for m in MODULES}


def _cycles() -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def strong(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w, _, _ in GRAPH[v]:
            if w not in index:
                strong(w)
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

    for v in sorted(GRAPH):
        if v not in index:
            strong(v)
    return out


def test_the_parser_sees_every_kind_of_import():
    """The checks below can fail: the graph holds known edges of each import form."""
    edges = {m: {t for t, _, _ in GRAPH[m]} for m in GRAPH}
    assert "kgzoo.models.base" in edges["kgzoo.models.kge"]  # from .base import ...
    assert "kgzoo.ops.grouped" in edges["kgzoo.models.kgat"]  # from ..ops.grouped import ...
    assert "kgzoo.api" in edges["kgzoo"]  # from .api import ... in a package __init__
    assert {"kgzoo.models.layers.propagation", "kgzoo.models.layers.text_tower"} <= edges["kgzoo.models.kgplm"]
    assert _target("kgzoo.models.kge.TransE") == "kgzoo.models.kge" and _target("torch") is None
    assert {"kgzoo.bench.cli", "kgzoo.cli.hub", "kgzoo.cli.plugins"} <= edges["kgzoo.cli"]  # _Lazy("kgzoo.cli.hub", ...)
    assert {"kgzoo.metrics.ranking", "kgzoo.metrics.names"} <= edges["kgzoo.metrics"]  # lazy_exports; from .names import
    assert "kgzoo.hub.checkpoint" in edges["kgzoo"] or "kgzoo.hub" in edges["kgzoo"]


def test_no_import_cycle_anywhere():
    assert _cycles() == []


def test_models_import_only_models_ops_tasks_registry_metrics():
    bad = [f"{m}:{line} imports {t}" for m in GRAPH if m == "kgzoo.models" or m.startswith("kgzoo.models.")
           for t, line, _ in GRAPH[m]
           if not any(t == ok or t.startswith(ok + ".") for ok in MODELS_MAY_IMPORT)]
    assert bad == [], "\n".join(bad)


def test_no_function_local_kgzoo_import():
    bad = [f"{m}:{line} imports {t} inside a function" for m in sorted(GRAPH) for t, line, local in GRAPH[m] if local]
    assert bad == [], "\n".join(bad)


def test_help_the_catalogue_and_the_weights_list_import_neither_lightning_nor_the_models():
    """``kgzoo --help`` imports no torch, ``kgzoo data list`` and ``kgzoo pretrained`` neither
    Lightning nor a model (each imported every model and Lightning before: several seconds of a
    command that prints a list), in a fresh interpreter."""
    import subprocess
    import sys

    probe = (
        "import contextlib, io, sys\n"
        "from kgzoo.cli import main\n"
        "def run(*argv):\n"
        "    with contextlib.redirect_stdout(io.StringIO()):\n"
        "        try:\n"
        "            code = main(list(argv))\n"
        "        except SystemExit as e:\n"
        "            code = e.code\n"
        "    heavy = sorted(m for m in ('torch', 'lightning', 'kgzoo.models', 'transformers') if m in sys.modules)\n"
        "    print(' '.join(argv), code, ','.join(heavy) or '-')\n"
        "run('--help'); run('pretrained'); run('data', 'list')\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == ["--help 0 -", "pretrained 0 torch", "data list 0 torch"]
