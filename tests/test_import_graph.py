"""The house: every import of ``core/`` and ``dashboard/`` points down the data flow.

Built from the source with ``ast`` (imports under ``if TYPE_CHECKING:`` are annotations, not
arrows, and are left out; imports inside functions count: they run). Fails on any cycle between
modules and on any import from a lower stage to a higher one, with the stage order written once,
here.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Lowest first: a module may import its own stage and the stages before it.
STAGES = (
    ("tinylogbert.errors", "tinylogbert"),  # the package root: version, lazy exports
    ("tinylogbert.io",),
    ("tinylogbert.sessions",),
    ("tinylogbert.model",),
    ("tinylogbert.scoring",),
    ("tinylogbert.pipeline",),
    ("tinylogbert.api", "tinylogbert.batch", "tinylogbert.live", "tinylogbert.reports"),
    ("tinylogbert.cli", "dashboard"),
)


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT)
    parts = list(rel.with_suffix("").parts)
    if parts[0] == "core":
        parts[0] = "tinylogbert"
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _type_checking_only(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """The project modules ``path`` imports at run time."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _type_checking_only(node):
            skip.update(id(n) for child in node.body for n in ast.walk(child))
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name:
                found.add(name)
    return found


def graph() -> dict[str, set[str]]:
    files = [p for folder in ("core", "dashboard") for p in (ROOT / folder).rglob("*.py")]
    modules = {module_name(p): p for p in files}
    names = set(modules)
    return {m: imports_of(p, names) - {m} for m, p in modules.items()}


def stage_of(module: str) -> int:
    best, rank = -1, -1
    for i, prefixes in enumerate(STAGES):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, rank = len(prefix), i
    return rank


def test_every_module_has_a_stage():
    assert [m for m in graph() if stage_of(m) < 0] == []


def test_no_import_points_up_the_data_flow():
    upward = sorted(f"{m} -> {t}" for m, targets in graph().items() for t in targets
                    if t != "tinylogbert" and stage_of(t) > stage_of(m))
    assert upward == []


def test_no_import_cycle():
    edges = {m: {t for t in ts if t != "tinylogbert"} for m, ts in graph().items()}
    cycles, state = [], {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(path[path.index(nxt):] + [node, nxt]) if nxt in path
                              else f"{node} -> {nxt}")
            elif nxt not in state:
                visit(nxt, path + [node])
        state[node] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m, [])
    assert cycles == []


def test_the_cli_imports_nothing_from_the_benchmarks():
    """``tinylogbert --help`` must not import the repository's benchmarks (or edit sys.path)."""
    import subprocess
    import sys

    code = ("import sys, runpy; sys.argv = ['tinylogbert', '--help']\n"
            "try:\n    runpy.run_module('tinylogbert.cli.main', run_name='__main__')\n"
            "except SystemExit:\n    pass\n"
            "print('BENCH' if any(m.startswith('benchmarks') for m in sys.modules) else 'CLEAN')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd="/", timeout=120)
    assert out.stdout.strip().splitlines()[-1] == "CLEAN", out.stdout + out.stderr
