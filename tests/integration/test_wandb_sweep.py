"""An unmodified W&B training script (tests/programs/wandb_train.py: imports wandb, never sweepq)
swept by sweepq with bayes search and hyperband, with the real wandb package and no network.

The worker, the controller and therefore every trial and its wandb process run inside a network
namespace that has nothing but loopback, so any call to W&B's servers would fail. They reach a
private Redis through its unix socket, which crosses network namespaces. The sweep must end with
each trial's own parameters in its ``wandb.config``, every row it logged in sweepq (values,
steps, order; a stopped trial's rows up to wandb's last flush), hyperband having stopped some,
and each trial's wandb run directory kept for ``wandb sync``.

Needs root and iproute2 (as the fault tests); a missing prerequisite fails with the fix named.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PROGRAMS, ROOT, pid_alive, wait_for
from tests.netns import (
    PREFIX,
    _kill_netns_processes,
    _netns_names,
    _run,
    prerequisite_problem,
    reap_abandoned,
)

pytestmark = [pytest.mark.redis, pytest.mark.slow]

PROGRAM = str(PROGRAMS / "wandb_train.py")
DEFAULT_MOMENTUM = 0.9  # wandb_train.py's default, which the sweep does not set


class LoopbackHost:
    """A network namespace with only a loopback interface; processes started in it are killed,
    and the namespace deleted, by :meth:`close`. Named like tests/netns.py's labs, so a test run
    killed midway leaves nothing that the next one does not reap."""

    def __init__(self) -> None:
        reap_abandoned()
        self.netns = f"{PREFIX}-{os.getpid()}-{secrets.token_hex(2)}-wb"
        self.procs: list[subprocess.Popen] = []
        _run(["ip", "netns", "add", self.netns])
        try:
            _run(["ip", "-n", self.netns, "link", "set", "lo", "up"])
        except Exception:
            self.close()
            raise

    def links(self) -> list[str]:
        return [
            link["ifname"] for link in json.loads(_run(["ip", "-n", self.netns, "-j", "link", "show"]).stdout)
        ]

    def popen(self, argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                ["ip", "netns", "exec", self.netns, *argv],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=str(ROOT),
            )
        self.procs.append(proc)
        return proc

    def run(
        self, argv: list[str], env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["ip", "netns", "exec", self.netns, *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
        )

    def close(self) -> None:
        for p in self.procs:
            with contextlib.suppress(OSError):
                os.killpg(p.pid, signal.SIGKILL)
        left = _kill_netns_processes(self.netns)
        for p in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(10)
        _run(["ip", "netns", "del", self.netns], check=False)
        assert not left, f"processes left in {self.netns}: {left}"
        assert self.netns not in _netns_names(), f"namespace {self.netns} left behind"
        assert not [p.pid for p in self.procs if pid_alive(p.pid)]


@pytest.fixture
def isolated() -> Iterator[LoopbackHost]:
    problem = prerequisite_problem()
    if problem:
        pytest.fail(problem)
    if importlib.util.find_spec("wandb") is None:
        pytest.fail("this test needs the real wandb package: pip install -e '.[dev]' (or 'sweepq[wandb]')")
    host = LoopbackHost()
    try:
        yield host
    finally:
        host.close()


@pytest.fixture
def socket_redis() -> Iterator[Path]:
    """A private redis-server listening only on a unix socket (short path: at most 107 bytes)."""
    binary = shutil.which("redis-server") or shutil.which("valkey-server")
    if not binary:
        pytest.fail("this test needs redis-server: apt-get install redis-server")
    d = Path(tempfile.mkdtemp(prefix="sqwb-", dir="/tmp"))
    sock = d / "redis.sock"
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            "0",
            "--unixsocket",
            str(sock),
            "--unixsocketperm",
            "700",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(d),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        import redis

        def up() -> bool:
            try:
                return bool(redis.Redis(unix_socket_path=str(sock), socket_timeout=1).ping())
            except (redis.RedisError, OSError):
                return proc.poll() is not None  # dead: stop waiting, the assert below says so

        wait_for(up, 20, interval=0.05, what="private redis-server")
        assert proc.poll() is None, "private redis-server exited"
        yield sock
    finally:
        proc.kill()
        proc.wait(10)
        shutil.rmtree(d, ignore_errors=True)


def flat(row: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A logged row as W&B's history names its keys (nested dicts joined with dots)."""
    out: dict[str, Any] = {}
    for k, v in row.items():
        if isinstance(v, dict):
            out.update(flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def same_rows(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> bool:
    """Rows equal key for key, numbers to float precision."""
    return len(got) == len(want) and all(
        g.keys() == w.keys() and all(g[k] == pytest.approx(w[k]) for k in w)
        for g, w in zip(got, want, strict=True)
    )


def test_bayes_hyperband_sweep_of_an_unmodified_wandb_script(
    isolated: LoopbackHost, socket_redis: Path, tmp_path: Path
) -> None:
    from sweepq.config import load_config
    from sweepq.store import Store

    # nothing but loopback: W&B's servers cannot be reached from where the trials run
    assert isolated.links() == ["lo"]
    probe = isolated.run(
        [sys.executable, "-c", "import socket; socket.create_connection(('api.wandb.ai', 443), timeout=5)"]
    )
    assert probe.returncode != 0, "the namespace reached the network"

    namespace = f"sqt{secrets.token_hex(4)}"
    url = f"redis+socket://{socket_redis}"
    store = Store(url=url, namespace=namespace)
    rec_dir, logs = tmp_path / "records", tmp_path / "logs"
    rec_dir.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SWEEPQ_", "WANDB_"))}
    env.update(
        {
            "SWEEPQ_REDIS_URL": url,
            "SWEEPQ_NAMESPACE": namespace,
            "SWEEPQ_LOG_DIR": str(logs),
            "SWEEPQ_GPU_LOCK_DIR": str(tmp_path / "gpulocks"),
            "SWEEPQ_LEASE_TTL": "10",
            "PYTHONPATH": str(ROOT),
            "WANDB_TRAIN_RECORD": str(rec_dir),
            # wandb's own caches out of the machine's home directory (not the script's business)
            "WANDB_CACHE_DIR": str(tmp_path / "wandb-cache"),
            "WANDB_CONFIG_DIR": str(tmp_path / "wandb-config"),
            "WANDB_DATA_DIR": str(tmp_path / "wandb-data"),
        }
    )

    # the sweep config as a W&B user writes it (W&B's default command: the script gets --k=v
    # arguments it ignores, as under wandb agent), plus sweepq's seed
    sid = store.create_sweep(
        load_config(
            {
                "method": "bayes",
                "seed": 7,
                "program": PROGRAM,
                "metric": {"name": "loss", "goal": "minimize"},
                "parameters": {
                    "lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1.0},
                    "layers": {"values": [1, 2, 4]},
                    "optimizer": {"parameters": {"name": {"values": ["adam", "sgd"]}}},
                    "epochs": {"value": 8},
                    "sleep": {"value": 0.4},
                },
                "early_terminate": {"type": "hyperband", "min_iter": 2, "eta": 3},
                "run_cap": 8,
            }
        )
    )

    from sweepq.agents import worker_argv

    worker_log, controller_log = tmp_path / "worker.log", tmp_path / "controller.log"
    isolated.popen(worker_argv(["sweepq"], 2, f"wb-{secrets.token_hex(2)}@isolated", "INFO"), env, worker_log)
    isolated.popen([sys.executable, "-m", "sweepq.cli", "controller", "--tick", "0.2"], env, controller_log)

    def status() -> str:
        trials = store.get_trials(store.trial_ids(sid), history=False)
        return (
            json.dumps([(t["id"], t["state"], t["reason"]) for t in trials])
            + "\n"
            + worker_log.read_text(errors="replace")[-3000:]
            + controller_log.read_text(errors="replace")[-1500:]
        )

    try:
        wait_for(
            lambda: sid not in store.active_sweeps(), 300, interval=0.5, what="the sweep to end", info=status
        )
        trials = store.get_trials(store.trial_ids(sid))
        assert len(trials) == 8, status()
        states = sorted(t["state"] for t in trials)
        assert set(states) <= {"finished", "stopped"}, status()
        assert "stopped" in states, f"hyperband stopped no trial: {status()}"
        assert "finished" in states, status()

        for t in trials:
            tid, params = t["id"], t["params"]
            rec = json.loads((rec_dir / f"{tid}.json").read_text())
            # the trial's own parameters reached wandb.config (wandb.init(config=defaults) kept
            # the default the sweep does not set inside the nested group)
            config = rec["config"]
            assert config["lr"] == params["lr"] and config["layers"] == params["layers"], (
                tid,
                config,
                params,
            )
            assert config["optimizer"] == {**params["optimizer"], "momentum": DEFAULT_MOMENTUM}, (tid, config)
            assert (config["epochs"], config["sleep"]) == (8, 0.4)
            assert rec["run"] == tid  # WANDB_RUN_ID: the wandb run is the trial

            logged = [{**flat(row), "_step": i} for i, row in enumerate(rec["logged"])]
            rows = store.trial_rows(tid)
            if t["state"] == "finished":
                assert rec["done"] and len(logged) == 8
                assert same_rows(rows, logged), (tid, rows, logged)  # every row, in order, with its step
            else:
                # stopped at a hyperband band: at least that many values were seen; rows logged
                # after wandb's last flush before SIGTERM may be missing, never others
                assert 2 <= len(rows) <= len(logged), (tid, rows, logged)
                assert same_rows(rows, logged[: len(rows)]), (tid, rows, logged)
            assert t["history"] == pytest.approx([row["loss"] for row in rows])
            assert t["metric"] == pytest.approx(rows[-1]["loss"])

            # the wandb run directory is kept, offline, with the trial's id: ready for wandb sync
            run_dirs = sorted((logs / "wandb" / sid / "wandb").glob(f"offline-run-*-{tid}"))
            assert len(run_dirs) == 1, run_dirs
            assert (run_dirs[0] / f"run-{tid}.wandb").stat().st_size > 0
        # the parameters files (one per worker slot, rewritten for each trial) as W&B's agent writes them
        param_files = list((logs / "wandb" / sid / "wandb" / f"sweep-{sid}").glob("config-*.yaml"))
        assert param_files and all(f.read_text().startswith("wandb_version: 1\n\n") for f in param_files)
        # sweepq's own view: bayes and the summary work on what wandb logged
        best = store.best(sid)
        finished = [t for t in trials if t["state"] == "finished"]
        assert best is not None and best["value"] == pytest.approx(min(t["metric"] for t in finished))
    finally:
        for key in store._r.scan_iter(match=f"{namespace}:*", count=1000):
            store._r.delete(key)


W_AND_B_CONFIG = """\
program: train.py
method: grid
metric:
  name: loss
  goal: minimize
parameters:
  lr:
    values: [0.003, 0.03]
  optimizer:
    parameters:
      name:
        value: adam
  epochs:
    value: 3
  sleep:
    value: 0.05
"""


def test_sweepq_run_takes_a_wandb_config_and_script_as_they_are(
    isolated: LoopbackHost, tmp_path: Path
) -> None:
    """The README's promise: a W&B sweep config and its script, both unchanged, under
    ``sweepq run`` (embedded store), with no network."""
    work, rec_dir = tmp_path / "project", tmp_path / "records"
    work.mkdir()
    rec_dir.mkdir()
    shutil.copy(PROGRAM, work / "train.py")
    (work / "sweep.yaml").write_text(W_AND_B_CONFIG)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SWEEPQ_", "WANDB_"))}
    env.update(
        {
            "PYTHONPATH": str(ROOT),
            "WANDB_TRAIN_RECORD": str(rec_dir),
            "WANDB_CACHE_DIR": str(tmp_path / "wandb-cache"),
            "WANDB_CONFIG_DIR": str(tmp_path / "wandb-config"),
            "WANDB_DATA_DIR": str(tmp_path / "wandb-data"),
        }
    )
    r = isolated.run(
        [sys.executable, "-m", "sweepq.cli", "run", "sweep.yaml", "--workers", "1", "--embedded", "--json"],
        env=env,
        cwd=work,
        timeout=180,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    status = json.loads(r.stdout)
    assert status["state"] == "finished" and status["counts"]["finished"] == 2, status
    records = {rec["run"]: rec for rec in (json.loads(p.read_text()) for p in rec_dir.glob("*.json"))}
    assert sorted(rec["config"]["lr"] for rec in records.values()) == [0.003, 0.03]
    assert all(rec["done"] and len(rec["logged"]) == 3 for rec in records.values())
    best = min(records.values(), key=lambda rec: rec["logged"][-1]["loss"])
    assert status["best"]["run_id"] == best["run"]
    assert status["best"]["value"] == pytest.approx(best["logged"][-1]["loss"])
    runs = work / ".sweepq" / "logs" / "wandb" / status["id"] / "wandb"
    # offline-run-<time>-<run id>: one kept run directory per trial, offline
    assert sorted(p.name.split("-", 3)[3] for p in runs.glob("offline-run-*")) == sorted(records)
