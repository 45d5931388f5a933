"""Shared fixtures: a real Redis server, a per-test key namespace, real `celery worker` processes.

Every test that touches Redis gets its own ``SWEEPQ_NAMESPACE`` (so Celery's queues are
namespaced too) on a dedicated database, and its keys are deleted afterwards. Workers are real
``celery -A sweepq.worker worker`` subprocesses on loopback, killed (whole process group) at the
end of the test, so nothing is left running.
"""

from __future__ import annotations

import os
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

ROOT = Path(__file__).resolve().parent.parent
PROGRAMS = Path(__file__).resolve().parent / "programs"
TEST_DB = 9


def _answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5).ping())
    except Exception:
        return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a real Redis: SWEEPQ_TEST_REDIS_URL, else 127.0.0.1:6379, else one we start."""
    url = os.environ.get("SWEEPQ_TEST_REDIS_URL")
    if url:
        assert _answers(url), f"SWEEPQ_TEST_REDIS_URL={url} does not answer"
        yield url
        return
    default = f"redis://127.0.0.1:6379/{TEST_DB}"
    if _answers(default):
        yield default
        return
    binary = shutil.which("redis-server") or shutil.which("valkey-server")
    assert binary, "no Redis answers on 127.0.0.1:6379 and no redis-server is installed"
    port = _free_port()
    d = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(d),
        ],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/{TEST_DB}"
    for _ in range(100):
        if _answers(url):
            break
        time.sleep(0.05)
    yield url
    proc.terminate()
    proc.wait(10)


def _children_cpu() -> float:
    """CPU time of this process's ended (reaped) child processes: it grows iff one ended."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


@pytest.fixture
def namespace(redis_server: str) -> Iterator[str]:
    ns = f"sqt{secrets.token_hex(4)}"
    children = _children_cpu()
    yield ns
    r = redis.Redis.from_url(redis_server)
    # Twice where a process ran during the test: a worker stopped just before may still restore
    # an unacked message to its queue. Tests that started no process skip the wait.
    for attempt in range(2):
        for key in r.scan_iter(match=f"{ns}:*", count=1000):
            r.delete(key)
        if attempt == 0:
            if _children_cpu() == children:
                break
            time.sleep(0.5)


@pytest.fixture
def sq_env(
    redis_server: str, namespace: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """Environment for sweepq processes of this test (also applied to this process)."""
    env = {
        "SWEEPQ_REDIS_URL": redis_server,
        "SWEEPQ_NAMESPACE": namespace,
        "SWEEPQ_LOG_DIR": str(tmp_path / "logs"),
        "SWEEPQ_GPU_LOCK_DIR": str(tmp_path / "gpulocks"),
        "SWEEPQ_LEASE_TTL": "3",
        "PYTHONPATH": str(ROOT),
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("SWEEPQ_BROKER_URL", raising=False)
    monkeypatch.delenv("SWEEPQ_GPUS", raising=False)
    return {**os.environ, **env}


@pytest.fixture
def store(sq_env: dict[str, str], redis_server: str, namespace: str):  # noqa: ANN201
    from sweepq.store import Store

    return Store(url=redis_server, namespace=namespace)


class WorkerProc:
    """One real `celery -A sweepq.worker worker` process (its own process group)."""

    def __init__(self, proc: subprocess.Popen, name: str, log: Path) -> None:
        self.proc, self.name, self.log = proc, name, log

    @property
    def pid(self) -> int:
        return self.proc.pid

    def kill(self, sig: int = signal.SIGKILL) -> None:
        try:
            os.killpg(self.proc.pid, sig)
        except OSError:
            pass

    def stop(self, timeout: float = 20.0) -> None:
        if self.proc.poll() is None:
            self.kill(signal.SIGQUIT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        self.kill(signal.SIGKILL)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@pytest.fixture
def start_worker(sq_env: dict[str, str], store, tmp_path: Path) -> Iterator[Callable[..., WorkerProc]]:  # noqa: ANN001
    """Factory: start a real celery worker; waits until it registered; all stopped at teardown."""
    procs: list[WorkerProc] = []

    def start(
        queues: str = "sweepq",
        concurrency: int = 1,
        name: str | None = None,
        env: dict[str, str] | None = None,
        wait: bool = True,
        events: bool = False,
    ) -> WorkerProc:
        name = name or f"w{len(procs)}-{secrets.token_hex(2)}@sqtest"
        log = tmp_path / f"worker-{name.split('@')[0]}.log"
        e = {**sq_env, **(env or {})}
        argv = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "sweepq.worker",
            "worker",
            "-Q",
            queues,
            "-c",
            str(concurrency),
            "-n",
            name,
            "--without-gossip",
            "--without-mingle",
            "-l",
            "INFO",
            *(["-E"] if events else []),
        ]
        with open(log, "ab") as out:
            p = subprocess.Popen(
                argv,
                env=e,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=str(ROOT),
            )
        w = WorkerProc(p, name, log)
        procs.append(w)
        if wait:
            deadline = time.monotonic() + 60
            while not any(x["name"] == name for x in store.alive_workers()):
                assert p.poll() is None, f"worker died:\n{w.output()[-3000:]}"
                assert time.monotonic() < deadline, f"worker did not register:\n{w.output()[-3000:]}"
                time.sleep(0.1)
        return w

    yield start
    for w in procs:
        w.stop()


@pytest.fixture
def controller(store) -> Iterator[Callable[..., object]]:  # noqa: ANN001
    """Factory: start a Controller thread on the test namespace; stopped at teardown."""
    from sweepq.controller import Controller

    started: list[tuple[Controller, threading.Thread]] = []

    def start(tick: float = 0.2, **kw: Any) -> Controller:
        ctl = Controller(store, tick=tick, **kw)
        th = threading.Thread(target=ctl.run, daemon=True)
        th.start()
        started.append((ctl, th))
        return ctl

    yield start
    for ctl, th in started:
        ctl.stop_event.set()
        th.join(10)


def trial_config(
    *,
    steps: int = 3,
    sleep: float = 0.02,
    run_cap: int | None = 6,
    program: str = str(PROGRAMS / "trial.py"),
    **over: object,
) -> dict:
    """A normalised config running tests/programs/trial.py (``x`` random in [0, 1]); keyword
    overrides replace top-level keys, and a ``None`` removes one (e.g. ``run_cap=None``)."""
    from sweepq.config import load_config

    cfg: dict = {
        "method": "random",
        "program": program,
        "command": ["${env}", sys.executable, "${program}", "${args}"],
        "metric": {"name": "loss", "goal": "minimize"},
        "parameters": {"x": {"min": 0.0, "max": 1.0}, "steps": {"value": steps}, "sleep": {"value": sleep}},
        "run_cap": run_cap,
    }
    cfg.update(over)
    return load_config({k: v for k, v in cfg.items() if v is not None})


def wait_for(
    pred: Callable[[], object],
    timeout: float = 60.0,
    interval: float = 0.1,
    what: str = "",
    info: Callable[[], object] | None = None,
) -> object:
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            extra = f"; {info()}" if info else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {what or pred}{extra}")
        time.sleep(interval)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # zombies count as gone
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False
