"""The house's habits, part of the suite so that the README's one test command (and CI, which
runs it) keeps them: ruff's lint and format, and mypy over the package (settings in
pyproject.toml; the same checks as .pre-commit-config.yaml)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "check",
    [["ruff", "check", "."], ["ruff", "format", "--check", "."], ["mypy", "sweepq"]],
    ids=["ruff-check", "ruff-format", "mypy"],
)
def test_check_is_clean(check: list[str]) -> None:
    r = subprocess.run([sys.executable, "-m", *check], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
