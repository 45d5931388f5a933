"""The house rules of docs/design.md, checked: the pure core imports no outer layer, only the
store holds a Redis client, a training script's import pulls in neither the CLI nor the runner,
and no module reads the environment when it is imported."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "sweepq"
PURE = [
    "sweepq.model",
    "sweepq.errors",
    "sweepq.checks",
    "sweepq.params",
    "sweepq.conditions",
    "sweepq.config",
    "sweepq.search.grid",
    "sweepq.search.random",
    "sweepq.search.bayes",
    "sweepq.stopping.hyperband",
    "sweepq.stopping.asha",
    "sweepq.stopping.median",
    "sweepq.engine",
    "sweepq.command",
    "sweepq.protocol",
    "sweepq.ids",
]
OUTER = [
    "redis",
    "celery",
    "kombu",
    "flask",
    "werkzeug",
    "sweepq.store",
    "sweepq.controller",
    "sweepq.cli",
    "sweepq.web",
    "sweepq.worker",
    "sweepq.runner",
    "sweepq.executor",
    "sweepq.agents",
    "sweepq.dispatch",
]


def _loaded_after(modules: list[str]) -> set[str]:
    """The module names loaded by importing ``modules`` in a fresh interpreter."""
    code = (
        "import json, sys\n"
        + "".join(f"import {m}\n" for m in modules)
        + "print(json.dumps(sorted(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        cwd=PACKAGE.parent,
    )
    return set(json.loads(out.stdout))


def _outer(loaded: set[str], outer: list[str]) -> list[str]:
    return sorted(m for m in loaded for o in outer if m == o or m.startswith(o + "."))


def test_the_pure_core_imports_no_outer_layer() -> None:
    assert _outer(_loaded_after(PURE), OUTER) == []


def test_a_training_script_imports_neither_the_cli_nor_the_runner() -> None:
    """``import sweepq`` in every trial: it must stay cheap and free of the worker's machinery."""
    loaded = _loaded_after(["sweepq"])
    assert _outer(loaded, [*OUTER, "click", "sweepq.config", "sweepq.search"]) == []


def _sources() -> list[tuple[str, ast.Module]]:
    return [
        (str(p.relative_to(PACKAGE.parent)), ast.parse(p.read_text(), str(p)))
        for p in sorted(PACKAGE.rglob("*.py"))
    ]


def test_only_the_store_holds_a_redis_client() -> None:
    """Outside ``sweepq/store/`` Redis is seen only through its exceptions (to tell Redis's trouble
    from a sweep's); nobody imports the client or reaches into the store's private one."""
    bad = []
    for name, tree in _sources():
        if name.startswith("sweepq/store/"):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                bad += [
                    f"{name}:{node.lineno} import {a.name}"
                    for a in node.names
                    if a.name == "redis" or a.name.startswith("redis.")
                ]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                if (
                    node.module == "redis" or node.module.startswith("redis.")
                ) and node.module != "redis.exceptions":
                    bad.append(f"{name}:{node.lineno} from {node.module} import ...")
            elif isinstance(node, ast.Attribute) and node.attr == "_r":
                bad.append(f"{name}:{node.lineno} ._r")
    assert bad == []


@pytest.mark.parametrize("name", ["os.environ", "os.getenv", "os.environb"])
def test_no_module_reads_the_environment_when_imported(name: str) -> None:
    """Settings are read by entry points when they start (sweepq.settings), never at import: an
    import-time read fixes a value before the program (or a test) has set it."""
    bad = []
    for src, tree in _sources():
        for stmt in tree.body:
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                nodes: list[ast.AST] = list(stmt.decorator_list)
                if isinstance(stmt, ast.ClassDef):  # a class body runs at import too
                    nodes += [
                        s for s in stmt.body if not isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef))
                    ]
            else:
                nodes = [stmt]
            for n in nodes:
                bad += [f"{src}:{x.lineno}" for x in ast.walk(n) if ast.unparse(x) == name]
    assert bad == []
