"""The import graph of the project's own modules (pipeline, models, flows), read from the source.

Used by tests/test_structure.py (no cycles; every stage's DVC deps equal its import closure) and,
run as a script, prints each stage's code deps in dvc.yaml's spelling, or writes them there:

    python tests/importgraph.py            # print
    python tests/importgraph.py --write    # replace the code-dep lines of every stage in dvc.yaml

Every import counts, also those inside functions (the project imports heavy libraries lazily), and
so do ``"module:function"`` entry strings (the registries of stages, sources, taggers, archs):
they are imports too, made by importlib. Importing ``a.b.c`` runs ``a/__init__.py`` and
``a/b/__init__.py``; those that hold nothing but a docstring cannot change an output and are left
out of the closures.
"""

from __future__ import annotations

import ast
import re
import sys
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("pipeline", "models", "flows")
ENTRY = re.compile(r"^((?:pipeline|models|flows)(?:\.\w+)+)(?::\w+)?$")
# DVC stage name -> the stage's own package (a dep as a whole directory)
STAGE_PACKAGES = {s: f"pipeline/{s}" for s in ("scrape", "crop", "tag", "labels", "train", "evaluate", "report")}


def module_files() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the project's packages."""
    out = {}
    for pkg in PACKAGES:
        for f in sorted((ROOT / pkg).rglob("*.py")):
            parts = f.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = f
    return out


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The longest prefix of ``name`` that is a module (``from a.b import c`` may name c in b)."""
    parts = name.split(".")
    for k in range(len(parts), 0, -1):
        candidate = ".".join(parts[:k])
        if candidate in modules:
            return candidate
    return None


@cache
def imports_of(module: str) -> frozenset[str]:
    """The project modules ``module`` imports (with the packages whose __init__ that runs)."""
    modules = module_files()
    tree = ast.parse(modules[module].read_text(), str(modules[module]))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.update(f"{node.module}.{a.name}" for a in node.names)
            names.add(node.module)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and ENTRY.match(node.value):
            names.add(ENTRY.match(node.value).group(1))
    found: set[str] = set()
    for n in names:
        target = _resolve(n, modules)
        if target is None:
            continue
        parts = target.split(".")
        found.update(".".join(parts[:k]) for k in range(1, len(parts) + 1))
    found.discard(module)
    return frozenset(m for m in found if m in modules)


def graph() -> dict[str, frozenset[str]]:
    return {m: imports_of(m) for m in module_files()}


def cycles() -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan), and self-imports."""
    g = graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(g[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    sys.setrecursionlimit(10_000)
    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def is_empty_init(path: Path) -> bool:
    """A package __init__ with nothing but a docstring: running it changes nothing."""
    body = ast.parse(path.read_text()).body
    return path.name == "__init__.py" and all(
        isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant) for n in body)


def closure(stage: str) -> set[Path]:
    """Files (relative to the repo) whose code a run of ``stage`` can execute: its package, and
    everything that imports, transitively."""
    modules = module_files()
    prefix = STAGE_PACKAGES[stage].replace("/", ".")
    todo = [m for m in modules if m == prefix or m.startswith(prefix + ".")]
    seen: set[str] = set()
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo.extend(imports_of(m))
    return {modules[m].relative_to(ROOT) for m in seen if not is_empty_init(modules[m])}


def code_deps(stage: str) -> list[str]:
    """The closure in dvc.yaml's spelling: the stage's package and ``models`` as directories
    (wholly inside the closure for train/evaluate), every other file by name."""
    dirs = [STAGE_PACKAGES[stage]]
    files = closure(stage)
    if any(f.parts[0] == "models" and f.name != "registry.py" for f in files):
        dirs.append("models")
    covered = {f for f in files if any(str(f).startswith(d + "/") for d in dirs)}
    return dirs + sorted(str(f) for f in files - covered)


def write_dvc_deps(path: Path = ROOT / "dvc.yaml") -> None:
    """Swap each stage's code-dep lines for its closure, leaving data deps, comments and layout alone."""
    out: list[str] = []
    stage, in_deps, written = None, False, False
    for line in path.read_text().splitlines():
        head = re.match(r"^  (\w+):\s*$", line)
        if head:
            stage = head.group(1)
        if re.match(r"^\s+deps:\s*$", line):
            in_deps, written = True, False
        elif in_deps:
            item = re.match(r"^(\s+)- (\S+)", line)
            if item and item.group(2).startswith(("pipeline/", "models", "flows/")):
                if not written:
                    out.extend(f"{item.group(1)}- {dep}" for dep in code_deps(stage))
                    written = True
                continue
            if not item and not line.strip().startswith("#"):
                in_deps = False
        out.append(line)
    path.write_text("\n".join(out) + "\n")


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        write_dvc_deps()
    for name in STAGE_PACKAGES:
        print(f"{name}:")
        for dep in code_deps(name):
            print(f"  - {dep}")
