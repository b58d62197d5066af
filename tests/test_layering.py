"""The import graph of kerasvk/ runs one way (DESIGN.md, "Which way imports run") and has no cycle.

Levels, bottom first; a module may import only modules of its own level or below::

    0  io, registry, layers           (nothing of kerasvk above them)
    1  data, preprocessing, plots
    2  models
    3  training, evaluation, export
    4  cli, the top-level package

Every ``import``/``from ... import`` in the source counts, also those inside functions (a lazy import is
still a dependency). ``from pkg import name`` where ``pkg.name`` is a module counts as importing that
module, so a package's ``__init__`` re-exporting its submodules is no cycle.
"""

import ast
import subprocess
import sys
from pathlib import Path

import kerasvk

ROOT = Path(kerasvk.__file__).parent
LEVELS = {
    "io": 0, "registry": 0, "layers": 0,
    "data": 1, "preprocessing": 1, "plots": 1,
    "models": 2,
    "training": 3, "evaluation": 3, "export": 3,
    "cli": 4, "": 4,
}


def _modules():
    mods = {}
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


def _imports(path, modules):
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module for a in node.names]
        else:
            continue
        out.update(n for n in names if n == "kerasvk" or n.startswith("kerasvk."))
    return out


def _level(module):
    parts = module.split(".")
    return LEVELS[parts[1] if len(parts) > 1 else ""]


def _graph():
    modules = _modules()
    return {m: {i for i in _imports(p, modules) if i != m} for m, p in modules.items()}


def test_no_import_runs_uphill():
    uphill = [
        f"{m} (level {_level(m)}) imports {i} (level {_level(i)})"
        for m, deps in sorted(_graph().items())
        for i in sorted(deps)
        if _level(i) > _level(m)
    ]
    assert not uphill, "\n".join(uphill)


def test_import_graph_has_no_cycle():
    graph = _graph()
    # a package importing its own submodules (re-exports) is the one allowed back edge
    graph = {m: {d for d in deps if not d.startswith(m + ".")} for m, deps in graph.items()}
    state, stack, cycles = {}, [], []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for d in sorted(graph.get(m, ())):
            if state.get(d) == "open":
                cycles.append(" -> ".join(stack[stack.index(d):] + [d]))
            elif d not in state:
                visit(d)
        stack.pop()
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m)
    assert not cycles, "\n".join(cycles)


def test_importing_the_registry_or_io_pulls_in_no_model_or_tensorflow():
    code = (
        "import sys, kerasvk.registry, kerasvk.io; "
        "print(sorted(m for m in sys.modules if m.startswith('kerasvk.models') or m == 'tensorflow'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
