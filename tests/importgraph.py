"""The import graph of the project's own modules (pipeline, models, flows), read from the source.

Used by tests/test_structure.py (no cycles; every stage's DVC deps equal its import closure) and,
run as a script, prints each stage's code deps in dvc.yaml's spelling, or writes them there:

    python tests/importgraph.py            # print
    python tests/importgraph.py --write    # replace the code-dep lines of every stage in dvc.yaml

Every import counts, also inside functions, but not under ``if TYPE_CHECKING:`` (never run).
Package __init__ files holding only a docstring are left out. A stage's deps: its package, the
settings modules of the params sections it reads (``Stage.reads``, pipeline/stages.py), what those
import, and the loader pipeline/params.py itself but not what it imports (every stage's settings).
"""

from __future__ import annotations

import ast
import re
import sys
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("pipeline", "models", "flows")
LOADER = "pipeline.params"
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))


def stage_table() -> dict[str, tuple[str, tuple[str, ...]]]:
    """DVC stage name -> (its own package as a directory, the params sections it reads), from the one
    table (pipeline/stages.py), read at call time."""
    from pipeline import stages

    return {s.name: (s.package.replace(".", "/"), s.reads) for s in stages.STAGES}


def section_module(section: str) -> str:
    """The module that defines the settings model of a params section."""
    from pipeline.params import Params

    return Params.model_fields[section].annotation.__module__


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
    for node in _runtime_nodes(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.update(f"{node.module}.{a.name}" for a in node.names)
            names.add(node.module)
    found: set[str] = set()
    for n in names:
        target = _resolve(n, modules)
        if target is None:
            continue
        parts = target.split(".")
        found.update(".".join(parts[:k]) for k in range(1, len(parts) + 1))
    found.discard(module)
    return frozenset(m for m in found if m in modules)


def _runtime_nodes(tree: ast.AST):
    """Every node, except the bodies of ``if TYPE_CHECKING:`` (imports for annotations only)."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        if isinstance(node, ast.If) and getattr(node.test, "id", getattr(node.test, "attr", None)) == "TYPE_CHECKING":
            todo.extend(node.orelse)
            continue
        todo.extend(ast.iter_child_nodes(node))


def graph() -> dict[str, frozenset[str]]:
    return {m: imports_of(m) for m in module_files()}


def reachable(starts, stop: frozenset[str] = frozenset()) -> set[str]:
    """``starts`` and every module they import, transitively; a module in ``stop`` is kept but not followed."""
    seen: set[str] = set()
    todo = list(starts)
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo.extend(() if m in stop else imports_of(m))
    return seen


def cycles() -> list[list[str]]:
    """Every group of modules that import each other, directly or through others."""
    reach = {m: reachable(imports_of(m)) for m in module_files()}
    groups = {tuple(sorted({m} | {n for n in reach[m] if m in reach[n]})) for m in reach if m in reach[m]}
    return [list(c) for c in sorted(groups)]


def is_empty_init(path: Path) -> bool:
    """A package __init__ with nothing but a docstring: running it changes nothing."""
    body = ast.parse(path.read_text()).body
    return path.name == "__init__.py" and all(
        isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant) for n in body)


def closure(stage: str) -> set[Path]:
    """Files (relative to the repo) whose code a run of ``stage`` can execute: its package, the
    settings modules of the sections it reads, what those import, and the loader's own file."""
    modules = module_files()
    package, reads = stage_table()[stage]
    prefix = package.replace("/", ".")
    starts = [m for m in modules if m == prefix or m.startswith(prefix + ".")]
    seen = reachable([*starts, *map(section_module, reads), LOADER], stop=frozenset({LOADER}))
    return {modules[m].relative_to(ROOT) for m in seen if not is_empty_init(modules[m])}


def code_deps(stage: str) -> list[str]:
    """The closure in dvc.yaml's spelling: the stage's package and ``models`` as directories
    (wholly inside the closure for train/evaluate), every other file by name."""
    dirs = [stage_table()[stage][0]]
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
    for name in stage_table():
        print(f"{name}:")
        for dep in code_deps(name):
            print(f"  - {dep}")
