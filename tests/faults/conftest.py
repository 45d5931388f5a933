"""Fault-injection helpers: sweep configs, run records, the invariants every case checks, and a
private Redis server (append-only) that a test may restart.

Every case ends with :func:`check_sweep`: all trials final, counts hash equal to the trial
states, no run with two overlapping executions (from the records the training program writes),
and no training process left alive.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.conftest import PROGRAMS, pid_alive, trial_config, wait_for
from tests.netns import Lab, prerequisite_problem

TRIAL = str(PROGRAMS / "trial.py")
FINAL = {"finished", "failed", "crashed", "stopped", "canceled"}

# A second training program for hostile behaviour; written to the test's tmp dir at run time.
# --mode selects what it does; it records start/end like tests/programs/trial.py.
HOSTILE_PROGRAM = r"""
import json, math, os, signal, sys, time
args = {}
for a in sys.argv[1:]:
    if a.startswith("--") and "=" in a:
        k, v = a[2:].split("=", 1)
        args[k] = v
mode = args.get("mode", "ok")
rec_dir = os.environ.get("SWEEPQ_TEST_RECORD")
run_id = os.environ.get("SWEEPQ_RUN_ID", "standalone")
rec = {"run": run_id, "pid": os.getpid(), "start": time.time(), "end": None, "children": [], "mode": mode}
def save():
    if rec_dir:
        p = os.path.join(rec_dir, f"{run_id}.{os.getpid()}.json")
        with open(p + ".tmp", "w") as f:
            json.dump(rec, f)
        os.replace(p + ".tmp", p)
def metric(obj):
    sys.stdout.write("@sweepq " + json.dumps(obj) + "\n")
    sys.stdout.flush()
save()
if mode == "metrics":
    metric({"loss": float("nan"), "acc": 1})
    metric({"loss": float("inf")})
    metric({"loss": float("-inf")})
    metric({"loss": "0.5"})
    metric({"loss": True})
    metric({"loss": None})
    metric({"loss": [1, 2]})
    metric({"loss": 1e308, "unknown_name": "x" * 10})
    metric({"some_other_metric": 3.5})
    sys.stdout.write("@sweepq {not json\n@sweepq [1,2]\n")
    metric({"loss": 0.25})
elif mode == "hugeint":
    sys.stdout.write("@sweepq {\"loss\": 1" + "0" * 400 + "}\n")
    sys.stdout.flush()
    metric({"loss": 0.5})
elif mode == "flood":
    line = b"x" * 1023 + b"\n"
    block = line * 1024  # 1 MiB
    out = sys.stdout.buffer
    for _ in range(int(float(args.get("mb", 24)))):
        out.write(block)
    out.flush()
    metric({"loss": 0.125})
elif mode == "binary":
    data = bytes(range(256)) * 64
    sys.stdout.buffer.write(data + b"\n\xff\xfe\x00\n@sweepq \xff\xfe{}\n")
    sys.stdout.buffer.flush()
    sys.stderr.buffer.write(b"\xc3\x28 bad utf8 on stderr \x00\n")
    sys.stderr.buffer.flush()
    metric({"loss": 0.75})
elif mode.startswith("fork"):
    for _ in range(3):
        pid = os.fork()
        if pid == 0:
            if mode == "fork_stubborn":
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
            time.sleep(600)
            os._exit(0)
        rec["children"].append(pid)
    save()
    time.sleep(600)
elif mode.startswith("daemon"):
    # a daemon as daemons are made: fork, setsid (a new session and process group), fork again,
    # stdio detached; the trial learns its pid through a pipe and records it among its children
    r, w = os.pipe()
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            os.write(w, str(os.getpid()).encode())
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            time.sleep(600)
            os._exit(0)
        os._exit(0)
    os.close(w)
    rec["children"].append(int(os.read(r, 32)))
    save()
    metric({"loss": 0.5})
    if mode != "daemon":  # daemon: exit at once, leaving it behind; other modes wait to be stopped
        time.sleep(600)
elif mode == "ignore_term":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    time.sleep(600)
elif mode == "sleep":
    time.sleep(float(args.get("seconds", 600)))
rec["end"] = time.time()
save()
"""


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "faults: fault-injection case (real Redis, workers, controller)")


make_config = trial_config


def records(d: Path) -> list[dict[str, Any]]:
    out = []
    for p in d.glob("*.json"):
        try:
            out.append(json.loads(p.read_text()))
        except ValueError:  # being replaced right now
            continue
    return out


def sweep_done(store: Any, sid: str) -> bool:
    return sid not in store.active_sweeps()


def describe(store: Any, sid: str) -> str:
    ts = store.get_trials(store.trial_ids(sid), history=False)
    return json.dumps(
        {
            "status": store.status(sid),
            "trials": [(t["id"], t["state"], t["attempt"], t["worker"], t["reason"]) for t in ts],
        },
        default=str,
    )


def check_no_overlap(recs: list[dict[str, Any]], dead_at: dict[int, float] | None = None) -> None:
    """For every run id, no two executions' [start, end] intervals overlap.

    A record without ``end`` (the process was killed) ends at ``dead_at[pid]`` (a time the test
    saw it dead), else it is taken as still running, so any later execution counts as overlap.
    """
    dead_at = dead_at or {}
    by_run: dict[str, list[tuple[float, float, int]]] = {}
    for r in recs:
        end = r["end"] if r.get("end") is not None else dead_at.get(r["pid"], float("inf"))
        by_run.setdefault(r["run"], []).append((r["start"], end, r["pid"]))
    for run, spans in by_run.items():
        spans.sort()
        for (s1, e1, p1), (s2, e2, p2) in zip(spans, spans[1:], strict=False):
            assert s2 >= e1, (
                f"run {run} executed twice at once: pid {p1} [{s1}, {e1}] and pid {p2} [{s2}, {e2}]"
            )


def check_no_orphans(recs: list[dict[str, Any]], timeout: float = 10.0) -> None:
    pids = {r["pid"] for r in recs} | {c for r in recs for c in r.get("children", [])}
    wait_for(
        lambda: not [p for p in pids if pid_alive(p)],
        timeout,
        what="no training process left",
        info=lambda: [p for p in pids if pid_alive(p)],
    )


def check_sweep(
    store: Any,
    sid: str,
    rec_dir: Path | None = None,
    expect: dict[str, int] | None = None,
    n_trials: int | None = None,
    dead_at: dict[int, float] | None = None,
) -> list[dict[str, Any]]:
    """The invariants after every fault: returns the trials for case-specific checks."""
    trials = store.get_trials(store.trial_ids(sid))
    states = Counter(t["state"] for t in trials)
    assert all(t["state"] in FINAL for t in trials), describe(store, sid)
    counts = store.counts(sid)
    assert {k: v for k, v in counts.items() if v} == dict(states), (counts, states)
    if n_trials is not None:
        assert len(trials) == n_trials, describe(store, sid)
    if expect is not None:
        assert dict(states) == {k: v for k, v in expect.items() if v}, describe(store, sid)
    assert not store._r.zrange(store.keys.leases, 0, -1), "leases left behind"
    assert not store.inflight_ids(sid), "in-flight set not empty"
    if rec_dir is not None:
        recs = records(rec_dir)
        check_no_overlap(recs, dead_at)
        check_no_orphans(recs)
        ran = {r["run"] for r in recs}
        for t in trials:
            if t["state"] == "finished":
                assert t["id"] in ran, f"{t['id']} finished but never ran"
    return trials


def watch_dead(pids: list[int], timeout: float = 15.0) -> dict[int, float]:
    """Wait until the processes are gone; returns pid -> a time at which it was seen dead."""
    seen: dict[int, float] = {}
    deadline = time.monotonic() + timeout
    while len(seen) < len(pids):
        for p in pids:
            if p not in seen and not pid_alive(p):
                seen[p] = time.time()
        assert time.monotonic() < deadline, f"processes still alive: {set(pids) - set(seen)}"
        time.sleep(0.02)
    return seen


class PidWatch:
    """Notes when each recorded training process is first seen gone (a thread polling every
    ``interval`` s), for :func:`check_no_overlap`'s ``dead_at``: an execution killed mid-run has
    no ``end`` in its record, and a test cannot know beforehand which one it will need.

    Pids come from the record file names (``<run>.<pid>.json``), so nothing is parsed while a
    trial rewrites its record. A death is noted at most ``interval`` late: later, never earlier,
    so an overlap is never hidden.
    """

    def __init__(self, rec: Path, interval: float = 0.05) -> None:
        self.rec, self.interval = rec, interval
        self.dead_at: dict[int, float] = {}
        self.pids: set[int] = set()
        self._lock = threading.Lock()  # poll() runs in the thread and in the test (to be up to date)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="pid-watch", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.poll()
            self._stop.wait(self.interval)

    def poll(self) -> None:
        """Look once now (the test calls it too, so that a death it just waited for is noted)."""
        with self._lock:
            for p in self.rec.glob("*.json"):
                try:
                    self.pids.add(int(p.name.rsplit(".", 2)[1]))
                except (IndexError, ValueError):
                    continue
            for pid in self.pids - self.dead_at.keys():
                if not pid_alive(pid):
                    self.dead_at[pid] = time.time()  # after the check: never before the death

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


@pytest.fixture
def pid_watch(rec_dir: Path) -> Iterator[PidWatch]:
    """A :class:`PidWatch` on this test's record directory, stopped at teardown."""
    watch = PidWatch(rec_dir)
    yield watch
    watch.stop()


@pytest.fixture
def lab() -> Iterator[Lab]:
    """A network of hosts in network namespaces (tests/netns.py), torn down after the test even
    if it fails midway; teardown fails the test if anything of it is left. Needs root."""
    problem = prerequisite_problem()
    if problem:
        pytest.fail(problem)
    with Lab() as built:
        yield built


@pytest.fixture
def rec_dir(tmp_path: Path) -> Path:
    d = tmp_path / "rec"
    d.mkdir()
    return d


@pytest.fixture
def hostile_program(tmp_path: Path) -> str:
    p = tmp_path / "hostile.py"
    p.write_text(HOSTILE_PROGRAM)
    return str(p)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class OwnRedis:
    """A private redis-server (append-only file on) that a test may stop and start again."""

    def __init__(
        self, directory: Path, extra: list[str] | None = None, url: str | None = None, port: int | None = None
    ) -> None:
        self.binary = shutil.which("redis-server") or shutil.which("valkey-server") or ""
        self.dir = directory
        self.port = port if port is not None else _free_port()
        self.url = url or f"redis://127.0.0.1:{self.port}/0"
        self.extra = extra or []
        self.proc: subprocess.Popen | None = None
        self.restarts = 0

    def start(self) -> None:
        log = open(self.dir / "redis.log", "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
                "--save",
                "",
                "--dir",
                str(self.dir),
                *self.extra,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + 20
        while True:
            try:
                if redis.Redis.from_url(self.url, socket_connect_timeout=0.3).ping():
                    # AOF loaded: a LOADING reply raises, so a PING that answers means ready
                    return
            except redis.RedisError:
                pass
            assert time.monotonic() < deadline, "own redis did not start"
            time.sleep(0.05)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """SIGTERM: Redis flushes the AOF and exits (a clean restart); SIGKILL: a crash."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
        self.proc.wait(20)
        self.proc = None

    def restart(self, down_s: float = 1.0, sig: int = signal.SIGTERM) -> None:
        self.stop(sig)
        time.sleep(down_s)
        self.start()
        self.restarts += 1


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    d = tmp_path / "own-redis"
    d.mkdir()
    srv = OwnRedis(d)
    if not srv.binary:
        pytest.fail("redis-server is needed for the Redis-restart case")
    srv.start()
    yield srv
    srv.stop(signal.SIGKILL)


@pytest.fixture
def own_store(
    own_redis: OwnRedis, sq_env: dict[str, str], namespace: str, monkeypatch: pytest.MonkeyPatch
) -> Any:
    """A Store on the private server; this process's SWEEPQ_REDIS_URL points there too."""
    from sweepq.store import Store

    monkeypatch.setenv("SWEEPQ_REDIS_URL", own_redis.url)
    sq_env["SWEEPQ_REDIS_URL"] = own_redis.url
    return Store(url=own_redis.url, namespace=namespace)


def wait_registered(store: Any, name: str, proc: Any, timeout: float = 60.0) -> None:
    wait_for(
        lambda: any(w["name"] == name for w in store.alive_workers()) or proc.proc.poll() is not None,
        timeout,
        what=f"worker {name} to register",
    )
    assert proc.proc.poll() is None, proc.output()[-3000:]


def worker_outputs(workers: list[Any]) -> str:
    return "\n".join(w.output() for w in workers)


def running_trial(store: Any, sid: str) -> Callable[[], dict[str, Any] | None]:
    def pred() -> dict[str, Any] | None:
        for t in store.get_trials(sorted(store.inflight_ids(sid)), history=False):
            if t["state"] == "running":
                return t
        return None

    return pred
