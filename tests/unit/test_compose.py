"""docker-compose.yml, the Dockerfiles, .env.example and the systemd unit, checked without a
Docker engine (``tests/deploy/test_compose_smoke.py`` runs the stack on a real one).

Here the deployment files are checked statically, in milliseconds: the compose file parses, interpolates the way Compose does and validates against the Compose
specification's JSON schema (vendored under tests/data); every command a container or unit runs
parses with the installed CLI (sweepq's click group, Celery's worker/inspect commands, Flower's
options), so a renamed flag or subcommand breaks this test rather than a deployment; the images
and build contexts exist and contain what the Dockerfiles COPY; Redis persists and is health
checked; workers are non-root, shut down cold and hand their trials back; the secrets are
required; every variable the file reads is documented in .env.example; base images can be
substituted without editing a file; the GPU service asks for GPUs in the form compose honours.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
SCHEMA = Path(__file__).resolve().parents[1] / "data" / "compose-spec.json"
UNIT = ROOT / "workers" / "sweepq-worker@.service"
SWEEPQ_SERVICES = ("controller", "web", "flower", "worker", "worker-gpu")
REQUIRED = ("REDIS_PASSWORD", "SWEEPQ_API_TOKEN", "FLOWER_BASIC_AUTH")
ENV = {"FLOWER_BASIC_AUTH": "admin:secret", "REDIS_PASSWORD": "pw", "SWEEPQ_API_TOKEN": "tok"}
ENV_EXAMPLE = ROOT / ".env.example"


# -- Compose variable interpolation (the subset the spec defines) ------------------------------
class InterpolationError(ValueError):
    """A ``${VAR:?message}`` whose variable is missing: Compose refuses the whole file."""


def _expand(text: str, env: dict[str, str], i: int = 0, stop: str = "") -> tuple[str, int]:
    """Expand ``$$``, ``$VAR``, ``${VAR}`` and ``${VAR[:]-|?|+word}`` (word may nest) from ``i``
    up to an unmatched ``stop`` character; returns the text and the index after it."""
    out: list[str] = []
    while i < len(text):
        c = text[i]
        if stop and c == stop:
            return "".join(out), i + 1
        if c != "$":
            out.append(c)
            i += 1
            continue
        nxt = text[i + 1] if i + 1 < len(text) else ""
        if nxt == "$":
            out.append("$")
            i += 2
        elif nxt == "{":
            m = re.compile(r"[A-Za-z_][A-Za-z0-9_]*").match(text, i + 2)
            assert m, f"bad substitution in {text!r}"
            name, j = m.group(0), m.end()
            op_m = re.compile(r":?[-?+]").match(text, j)
            if op_m is None:
                assert text[j] == "}", f"bad substitution in {text!r}"
                out.append(env.get(name, ""))
                i = j + 1
                continue
            op = op_m.group(0)
            word, i = _expand(text, env, op_m.end(), "}")
            value = env.get(name)
            unset = value is None or (op.startswith(":") and value == "")
            if op.endswith("-"):
                out.append(word if unset else value)
            elif op.endswith("?"):
                if unset:
                    raise InterpolationError(f"{name}: {word}")
                out.append(value)
            else:  # "+": the word when set
                out.append("" if unset else word)
        else:
            m = re.compile(r"[A-Za-z_][A-Za-z0-9_]*").match(text, i + 1)
            assert m, f"a lone $ in {text!r} (write $$ for a literal dollar)"
            out.append(env.get(m.group(0), ""))
            i = m.end()
    assert not stop, f"unterminated ${{...}} in {text!r}"
    return "".join(out), i


def interpolate(node: Any, env: dict[str, str]) -> Any:
    if isinstance(node, str):
        return _expand(node, env)[0]
    if isinstance(node, list):
        return [interpolate(x, env) for x in node]
    if isinstance(node, dict):
        return {k: interpolate(v, env) for k, v in node.items()}
    return node


def raw() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def compose(env: dict[str, str] | None = None) -> dict[str, Any]:
    """The file as `docker compose config` would see it with this environment."""
    return interpolate(raw(), dict(ENV if env is None else env))


def services() -> dict[str, dict[str, Any]]:
    return compose()["services"]


def env_of(svc: dict[str, Any]) -> dict[str, str]:
    e = svc.get("environment") or {}
    if isinstance(e, list):
        e = dict(x.split("=", 1) if "=" in x else (x, "") for x in e)
    return {k: "" if v is None else str(v) for k, v in e.items()}


# -- commands: parse them with the real CLIs ---------------------------------------------------
def _celery_obj() -> Any:
    from celery.bin.base import CLIContext

    from sweepq.worker import app

    return CLIContext(app=app, no_color=True, workdir=None, quiet=True)


def check_command(argv: list[str]) -> None:
    """Fail unless ``argv`` is a command the installed package (or Celery/Flower) accepts."""
    assert argv, "empty command"
    prog = os.path.basename(argv[0])
    if prog == "sweepq":
        from sweepq.cli import main

        sub = argv[1]
        if sub not in main.commands:
            try:
                import sweepq.cli.server_cmds  # noqa: F401
            except ModuleNotFoundError:
                pytest.xfail(
                    f"`sweepq {sub}` is not registered yet (sweepq/cli/server_cmds.py is work in progress)"
                )
            raise AssertionError(f"`sweepq {sub}` is not a sweepq command: {sorted(main.commands)}")
        main.commands[sub].make_context(sub, list(argv[2:]))
        return
    assert prog == "celery", f"unexpected program {argv[0]!r}"
    assert argv[1:3] == ["-A", "sweepq.worker"], f"celery must load sweepq's app: {argv}"
    import importlib

    assert hasattr(importlib.import_module("sweepq.worker"), "app")
    from celery.bin.celery import celery as celery_group

    sub, rest = argv[3], list(argv[4:])
    assert sub in celery_group.commands, f"celery has no {sub!r} command (flower not installed?)"
    if sub == "flower":
        # Flower hands its argv to tornado's option parser: check each name is a Flower option
        from flower.options import options

        for a in rest:
            assert a.startswith("--"), a
            name = a[2:].split("=", 1)[0]
            assert {name, name.replace("_", "-")} & set(options._options), f"flower has no --{name}"
        return
    celery_group.commands[sub].make_context(sub, rest, obj=_celery_obj())


def shell_celery_argv(cmd: str) -> list[str]:
    """The first celery/sweepq command of a CMD-SHELL string (up to a redirect, pipe or ;)."""
    words = shlex.split(cmd.replace(";", " ; "))
    start = next(i for i, w in enumerate(words) if w in ("celery", "sweepq"))
    end = next(
        (i for i, w in enumerate(words[start:], start) if w in ("|", ";", "&&", "||") or w.startswith(">")),
        len(words),
    )
    return words[start:end]


# -- the tests ---------------------------------------------------------------------------------
def test_parses_and_validates_against_the_compose_spec() -> None:
    schema = json.loads(SCHEMA.read_text())
    validator = jsonschema.Draft7Validator(schema)
    for doc in (raw(), compose()):
        errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.path))
        assert not errors, "\n".join(f"{'.'.join(map(str, e.path))}: {e.message}" for e in errors)


def test_the_schema_check_is_not_vacuous() -> None:
    validator = jsonschema.Draft7Validator(json.loads(SCHEMA.read_text()))
    bad = compose()
    bad["services"]["redis"]["restart_policy"] = "always"  # not a service key
    bad["services"]["controller"]["healthcheck"]["interval"] = 15  # must be a duration string
    bad["volumes"]["redis-data"] = 3
    assert len(list(validator.iter_errors(bad))) >= 3


def test_interpolation_defaults_and_required_secrets() -> None:
    svc = compose()["services"]
    assert env_of(svc["controller"])["SWEEPQ_REDIS_URL"] == "redis://:pw@redis:6379/0"
    assert env_of(svc["web"])["SWEEPQ_API_TOKEN"] == "tok"
    svc = compose({**ENV, "SWEEPQ_REDIS_URL": "rediss://:x@r.internal:6380/1"})["services"]
    assert env_of(svc["controller"])["SWEEPQ_REDIS_URL"] == "rediss://:x@r.internal:6380/1"
    for name in REQUIRED:
        for missing in ({k: v for k, v in ENV.items() if k != name}, {**ENV, name: ""}):
            with pytest.raises(InterpolationError, match=name) as err:
                compose(missing)
            assert "compose_env.sh" in str(err.value), "the message says how to get the value"


def test_the_token_reaches_only_the_dashboard() -> None:
    """Only `sweepq web` needs the API token; workers run users' code and must not get it."""
    for name, svc in services().items():
        assert ("SWEEPQ_API_TOKEN" in env_of(svc)) == (name == "web"), name
    web = services()["web"]
    assert web["command"][:4] == ["sweepq", "web", "--host", "0.0.0.0"] and "--open-api" not in web["command"]


def _variables(text: str) -> set[str]:
    """The variables a compose file interpolates (``$$`` escapes are the container's own)."""
    return set(re.findall(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)", text.replace("$$", "")))


def env_example() -> dict[str, bool]:
    """.env.example's variables: name -> required (an uncommented assignment)."""
    out: dict[str, bool] = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        m = re.match(r"^(#?)([A-Z][A-Z0-9_]*)=", line)
        if m:
            out[m.group(2)] = not m.group(1)
    return out


def test_env_example_documents_every_variable_the_file_reads() -> None:
    # `VAR:` without a value in an environment block: passed from the host's (or .env's) VAR
    passed = {
        k
        for s in raw()["services"].values()
        if isinstance(s.get("environment"), dict)
        for k, v in s["environment"].items()
        if v is None
    }
    read = _variables(COMPOSE.read_text()) | passed
    documented = env_example()
    assert read - set(documented) == set(), "read by docker-compose.yml, missing from .env.example"
    assert set(documented) - read == set(), "in .env.example, read nowhere"
    assert {k for k, req in documented.items() if req} == set(REQUIRED)


def test_compose_env_writes_a_usable_env(tmp_path: Path) -> None:
    import subprocess

    out = tmp_path / ".env"
    r = subprocess.run(
        [str(ROOT / "scripts" / "compose_env.sh"), str(out)], capture_output=True, text=True, timeout=30
    )
    assert r.returncode == 0, r.stderr
    assert out.stat().st_mode & 0o777 == 0o600
    env = dict(
        line.split("=", 1) for line in out.read_text().splitlines() if line and not line.startswith("#")
    )
    assert set(env) == set(REQUIRED)
    assert re.fullmatch(r"[0-9a-f]{48}", env["REDIS_PASSWORD"]) and re.fullmatch(
        r"[0-9a-f]{48}", env["SWEEPQ_API_TOKEN"]
    )
    assert re.fullmatch(r"admin:[0-9a-f]{24}", env["FLOWER_BASIC_AUTH"])
    assert env["REDIS_PASSWORD"] != env["SWEEPQ_API_TOKEN"]
    compose(env)  # no required variable is missing
    again = subprocess.run(
        [str(ROOT / "scripts" / "compose_env.sh"), str(out)], capture_output=True, text=True, timeout=30
    )
    assert again.returncode == 2 and "exists" in again.stderr, "an existing .env (secrets in use) is kept"


def test_workers_run_the_example_configs_from_the_project_dir() -> None:
    """The workers' working directory is the mounted project dir, which defaults to the directory
    of docker-compose.yml: the example configs' ``program:`` paths resolve there, as they do for
    `sweepq run` from the repository root."""
    for name in ("worker", "worker-gpu"):
        svc = services()[name]
        mount = [v for v in svc["volumes"] if v.endswith(":/work")]
        assert mount == ["./:/work"] or mount == [".:/work"], mount
        assert svc["working_dir"] == "/work" and env_of(svc)["SWEEPQ_WORKDIR"] == "/work"
    programs = 0
    for cfg in sorted((ROOT / "configs").glob("*/sweep.yaml")):
        program = yaml.safe_load(cfg.read_text()).get("program")
        if program:
            assert (ROOT / program).is_file(), (
                f"{cfg}: program {program} is not relative to the repository root"
            )
            programs += 1
    assert programs >= 4


def test_gpu_service_requests_devices_the_way_compose_honours() -> None:
    gpu = raw()["services"]["worker-gpu"]
    assert "gpus" not in gpu, "`gpus:` is silently dropped by compose 2.26"
    [dev] = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert dev == {"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}


def test_base_images_are_build_arguments() -> None:
    """Each image's base is an ``ARG BASE_IMAGE`` (default pinned) that compose passes from a
    documented variable, and Redis's image is a variable: a mirror or a local base needs no edit."""
    for name in ("controller", "worker-gpu"):
        build = services()[name]["build"]
        lines = dockerfile_lines(ROOT / build.get("dockerfile", "Dockerfile"))
        first_from = next(i for i, line in enumerate(lines) if line.startswith("FROM "))
        assert lines[first_from] == "FROM ${BASE_IMAGE}"
        default = next(
            line.split("=", 1)[1] for line in lines[:first_from] if line.startswith("ARG BASE_IMAGE=")
        )
        assert build["args"]["BASE_IMAGE"] == default, (
            f"{name}: compose and the Dockerfile disagree on the base"
        )
        substituted = compose({**ENV, "SWEEPQ_BASE_IMAGE": "b:1", "SWEEPQ_GPU_BASE_IMAGE": "g:1"})
        assert substituted["services"][name]["build"]["args"]["BASE_IMAGE"] == (
            "g:1" if name == "worker-gpu" else "b:1"
        )
    assert compose({**ENV, "SWEEPQ_REDIS_IMAGE": "r:1"})["services"]["redis"]["image"] == "r:1"


@pytest.mark.parametrize("name", ["controller", "web", "flower", "worker", "worker-gpu"])
def test_every_service_command_exists(name: str) -> None:
    svc = services()[name]
    assert isinstance(svc["command"], list), "exec form: no shell between docker and the process"
    check_command(svc["command"])


def test_healthcheck_commands_exist() -> None:
    for name, svc in services().items():
        test = (svc.get("healthcheck") or {}).get("test")
        if not test:
            continue
        kind, *rest = test
        if kind == "CMD" and rest[:2] == ["python", "-c"]:
            ast.parse(rest[2])
        elif kind == "CMD-SHELL" and ("celery" in rest[0] or "sweepq" in rest[0]):
            check_command(shell_celery_argv(rest[0]))
        else:
            assert kind in ("CMD", "CMD-SHELL"), f"{name}: {test}"


def test_dockerfile_default_commands_exist() -> None:
    for df in (ROOT / "Dockerfile", ROOT / "workers" / "Dockerfile.gpu"):
        cmd = [json.loads(line[len("CMD") :]) for line in dockerfile_lines(df) if line.startswith("CMD ")]
        assert cmd, f"{df} has no CMD"
        check_command(cmd[-1])


def dockerfile_lines(path: Path) -> list[str]:
    """Instructions with continuations joined and comments dropped."""
    out, cur = [], ""
    for line in path.read_text().splitlines():
        if line.strip().startswith("#"):
            continue
        cur += line.rstrip("\\").strip() + " " if line.rstrip().endswith("\\") else line.strip()
        if not line.rstrip().endswith("\\"):
            if cur.strip():
                out.append(cur.strip())
            cur = ""
    return out


def resolve_args(text: str, lines: list[str]) -> str:
    """``${NAME}`` in a FROM line replaced by the default of the ``ARG NAME=...`` before it."""
    defaults = dict(line[4:].split("=", 1) for line in lines if line.startswith("ARG ") and "=" in line)
    return re.sub(r"\$\{(\w+)\}", lambda m: defaults[m.group(1)], text)


def dockerignore(context: Path) -> list[str]:
    f = context / ".dockerignore"
    if not f.exists():
        return []
    return [p.strip().rstrip("/") for p in f.read_text().splitlines() if p.strip() and not p.startswith("#")]


def test_images_dockerfiles_and_build_contexts() -> None:
    built = 0
    for name, svc in services().items():
        image = svc.get("image", "")
        if "build" not in svc:
            repo, _, tag = image.partition(":")
            assert tag and tag != "latest", f"{name}: pin the image tag ({image!r})"
            assert "/" not in repo, f"{name}: use the official image, not {image!r}"
            continue
        build = svc["build"]
        context = (ROOT / build["context"]).resolve()
        dockerfile = context / build.get("dockerfile", "Dockerfile")
        assert context.is_dir() and dockerfile.is_file(), f"{name}: {dockerfile} missing"
        ignored = dockerignore(context)
        lines = dockerfile_lines(dockerfile)
        for line in lines:
            op, _, args = line.partition(" ")
            if op == "FROM":
                base = resolve_args(args.split()[0], lines)
                assert ":" in base and not base.endswith(":latest"), f"{dockerfile}: unpinned {base}"
            if op in ("COPY", "ADD"):
                words = [w for w in shlex.split(args) if not w.startswith("--")]
                for src in words[:-1]:
                    assert (context / src).exists(), f"{dockerfile}: COPY source {src} not in {context}"
                    assert not any(fnmatch(src, pat) for pat in ignored), f"{src} is .dockerignored"
            if op == "RUN" and "pip install ." in args:
                assert (context / "pyproject.toml").exists()
        built += 1
    assert built >= 4
    gpu = dockerfile_lines(ROOT / "workers" / "Dockerfile.gpu")
    gpu_from = next(line for line in gpu if line.startswith("FROM "))
    assert re.match(r"nvidia/cuda:[\d.]+-(cudnn\d*-)?runtime-", resolve_args(gpu_from.split()[1], gpu)), (
        gpu_from
    )
    assert any(line.startswith("USER ") and "root" not in line for line in gpu)
    assert any(
        line.startswith("USER ") and "root" not in line for line in dockerfile_lines(ROOT / "Dockerfile")
    )


def test_redis_persists_and_is_health_checked() -> None:
    doc = compose()
    redis_svc = doc["services"]["redis"]
    cmd = " ".join(redis_svc["command"])
    assert "--appendonly yes" in cmd and "--dir /data" in cmd  # any Redis image: the AOF is on the volume
    assert '--requirepass "$REDIS_PASSWORD"' in cmd  # always: REDIS_PASSWORD is required
    named = [v.split(":")[0] for v in redis_svc["volumes"] if v.split(":")[1] == "/data"]
    assert named and named[0] in doc["volumes"], "AOF must live on a named volume at /data"
    assert "redis-cli ping" in " ".join(redis_svc["healthcheck"]["test"])
    assert redis_svc["restart"] in ("always", "unless-stopped")
    for name in SWEEPQ_SERVICES:
        dep = doc["services"][name]["depends_on"]["redis"]
        assert dep["condition"] == "service_healthy", name


def test_restart_policies_healthchecks_and_environment() -> None:
    for name, svc in services().items():
        assert svc.get("restart") in ("always", "unless-stopped", "on-failure"), name
        if name != "worker-gpu":  # no engine-side check for it: nvidia-smi in a probe is costly
            assert svc.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    for name in SWEEPQ_SERVICES:
        e = env_of(raw()["services"][name])
        for var in ("SWEEPQ_REDIS_URL", "SWEEPQ_BROKER_URL", "SWEEPQ_NAMESPACE"):
            assert var in e and var in e[var], f"{name}: {var} not passed through from the host"


def test_ports_are_loopback_by_default_and_documented() -> None:
    header = COMPOSE.read_text().split("\nname:")[0]
    for name, svc in services().items():
        for p in svc.get("ports", []):
            host_ip, host_port, _ = str(p).rsplit(":", 2)
            assert host_ip == "127.0.0.1", f"{name} publishes {p} beyond loopback by default"
            assert re.search(rf"^#\s+{host_port}\s", header, re.M), f"port {host_port} undocumented"
    assert services()["flower"]["ports"] == ["127.0.0.1:5555:5555"]
    assert "FLOWER_BASIC_AUTH" in env_of(services()["flower"])
    from flower.options import options

    # what Flower's apply_env_options maps FLOWER_BASIC_AUTH to (tornado stores it dashed)
    assert "basic-auth" in options._options or "basic_auth" in options._options


@pytest.mark.parametrize("name", ["worker", "worker-gpu"])
def test_workers_scale_shut_down_cold_and_run_unprivileged(name: str) -> None:
    svc = services()[name]
    assert svc["profiles"], "the broker host must be able to leave workers out"
    assert "container_name" not in svc, "a fixed container name prevents --scale"
    assert svc["init"] is True
    user = svc["user"].split(":")[0]
    assert user not in ("", "0", "root")
    assert env_of(svc)["REMAP_SIGTERM"] == "SIGQUIT"
    assert "--disable-prefetch" in svc["command"] and "-E" in svc["command"]
    assert "-Q" in svc["command"]
    m = re.fullmatch(r"(\d+)s|(\d+)m", svc["stop_grace_period"])
    seconds = int(m.group(1)) if m.group(1) else 60 * int(m.group(2))
    assert seconds >= 30, "the runner needs its shutdown grace + the hand-back write"
    assert not any(str(p) for p in svc.get("ports", [])), "workers publish nothing"


def unit_entries(path: Path) -> dict[str, list[tuple[str, str]]]:
    """A systemd unit as {section: [(key, value), ...]} (keys repeat; continuations joined)."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current, pending = "", ""
    for line in path.read_text().splitlines():
        if pending:
            line, pending = pending + " " + line.strip(), ""
        if not line.strip() or line.lstrip().startswith(("#", ";")):
            continue
        if line.rstrip().endswith("\\"):
            pending = line.rstrip()[:-1].rstrip()
            continue
        if line.startswith("["):
            current = line.strip("[] ")
            sections[current] = []
            continue
        key, _, value = line.partition("=")
        sections[current].append((key.strip(), value.strip()))
    return sections


def test_systemd_unit() -> None:
    unit = unit_entries(UNIT)
    svc = dict(unit["Service"])
    env = dict(v.split("=", 1) for k, v in unit["Service"] if k == "Environment")
    assert env["REMAP_SIGTERM"] == "SIGQUIT"
    assert env["SWEEPQ_GPUS"] == "%i"  # one unit per GPU by default
    assert svc["User"] not in ("root", "0") and svc["KillMode"] == "mixed"
    assert int(svc["TimeoutStopSec"]) >= 30 and svc["Restart"] in ("always", "on-failure")
    # systemd expands its specifiers (%i instance, %H host) and ${VAR}s before exec
    start = svc["ExecStart"].replace("%i", "0").replace("%H", "gpubox").replace("%%", "%")
    argv = shlex.split(re.sub(r"\$\{(\w+)\}", lambda m: env[m.group(1)], start))
    assert argv[0].endswith("/celery")
    check_command(["celery", *argv[1:]])
    assert unit["Install"] == [("WantedBy", "multi-user.target")]


def test_workers_readme_names_the_files() -> None:
    text = (ROOT / "workers" / "README.md").read_text()
    for f in ("Dockerfile.gpu", "sweepq-worker@.service", "SWEEPQ_REDIS_URL", "CUDA_VISIBLE_DEVICES"):
        assert f in text
