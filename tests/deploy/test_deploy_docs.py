"""The deployment docs say what the smoke run does, and point nowhere outside the repository.

``scripts/compose_smoke.sh`` is the README's compose path run for real; these checks keep the two
from drifting apart: every command of the README's compose block (secrets, up, workers, the
sweep sent from the host) is one the script runs, and the docs' references resolve inside the
repository.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "scripts" / "compose_smoke.sh"


def readme_compose_block() -> list[str]:
    """The commands of the README's "Deploy with docker compose" code block, comments dropped."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Deploy with docker compose") :]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block, "the README's compose section has no sh block"
    return [line.split("  #")[0].strip() for line in block.group(1).splitlines() if line.strip()]


def test_the_smoke_run_runs_the_readme_compose_path() -> None:
    script = SMOKE.read_text()
    commands = readme_compose_block()
    assert commands[0] == "scripts/compose_env.sh" and '"$ROOT/scripts/compose_env.sh"' in script
    for cmd in commands[1:]:
        if cmd.startswith("docker compose "):
            # the script's `dc` is `docker compose` with its private .env and engine
            assert f"dc {cmd[len('docker compose ') :]}" in script, cmd
        elif cmd.startswith("set -a;"):
            assert 'set -a; . "$T/.env"; set +a' in script, cmd
        else:
            assert cmd in script, cmd
    assert any(c.startswith("sweepq sweep configs/") for c in commands)


def test_docs_point_inside_the_repository() -> None:
    docs = [ROOT / "README.md", ROOT / "workers" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    for doc in docs:
        text = doc.read_text()
        assert "ARCHITECTURE.md" not in text, f"{doc.relative_to(ROOT)} cites a file outside the repository"
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", text):
            assert (doc.parent / target).exists(), f"{doc.relative_to(ROOT)} links to missing {target}"
    from sweepq.web.openapi import openapi_spec

    assert "ARCHITECTURE" not in openapi_spec()["info"]["description"]


def test_readme_names_the_env_file_and_its_generator() -> None:
    text = (ROOT / "README.md").read_text()
    for name in (
        ".env.example",
        "scripts/compose_env.sh",
        "REDIS_PASSWORD",
        "SWEEPQ_API_TOKEN",
        "FLOWER_BASIC_AUTH",
        "docs/deploy.md",
    ):
        assert name in text, name
