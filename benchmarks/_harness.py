"""Shared helpers for ``dispatch.py`` and ``scale.py``: Redis probes, real workers, a timed
controller thread, percentiles and tables.

Everything runs against a real Redis (``--redis``, default db 10 on loopback) in a fresh
``SWEEPQ_NAMESPACE`` per run, whose keys are deleted at the end. Workers are real
``celery -A sweepq.worker worker`` processes (own process group, killed at the end).
"""

from __future__ import annotations

import contextlib
import math
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

DEFAULT_REDIS = "redis://127.0.0.1:6379/10"
CLK_TCK = os.sysconf("SC_CLK_TCK")


# -- statistics and output --------------------------------------------------------------------
def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..1); NaN for no values."""
    if not values:
        return math.nan
    s = sorted(values)
    i = min(len(s) - 1, max(0, int(round(q * (len(s) - 1)))))
    return s[i]


def med(values: list[float]) -> float:
    return pct(values, 0.5)


def fmt(v: Any, nd: int = 1) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        if math.isnan(v):
            return "—"
        return f"{v:.{nd}f}"
    return str(v)


def table(headers: list[str], rows: list[list[Any]], nd: int = 1) -> str:
    """A Markdown table (pastes straight into docs/benchmarks.md)."""
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    for r in rows:
        out.append("| " + " | ".join(fmt(c, nd) for c in r) + " |")
    return "\n".join(out)


def machine_load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f} on {os.cpu_count()} CPUs"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -- Redis --------------------------------------------------------------------------------------
def client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, decode_responses=True)


def redis_cpu(r: redis.Redis) -> float:
    """Seconds of CPU the Redis server has used (user + sys, main thread and children)."""
    info = r.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def redis_idle_cpu_rate(r: redis.Redis, seconds: float = 2.0) -> float:
    """CPU seconds per second Redis burns with nothing of ours running (other users of this
    shared server); subtracted from our deltas."""
    c0, t0 = redis_cpu(r), time.monotonic()
    time.sleep(seconds)
    return max(0.0, (redis_cpu(r) - c0) / (time.monotonic() - t0))


def used_memory(r: redis.Redis) -> int:
    return int(r.info("memory")["used_memory"])


def ns_memory(r: redis.Redis, ns: str) -> int:
    """Sum of MEMORY USAGE over the namespace's keys (exact for our keys, independent of other
    users of the server; includes per-key overhead but not the main dict's slot)."""
    total = 0
    batch: list[str] = []

    def flush() -> None:
        nonlocal total
        p = r.pipeline(transaction=False)
        for k in batch:
            p.memory_usage(k, samples=0)
        total += sum(int(x or 0) for x in p.execute())
        batch.clear()

    for k in r.scan_iter(match=f"{ns}:*", count=2000):
        batch.append(k)
        if len(batch) >= 2000:
            flush()
    if batch:
        flush()
    return total


def delete_namespace(r: redis.Redis, ns: str) -> int:
    n = 0
    batch = []
    for k in r.scan_iter(match=f"{ns}:*", count=2000):
        batch.append(k)
        if len(batch) >= 1000:
            n += r.delete(*batch)
            batch = []
    if batch:
        n += r.delete(*batch)
    return n


def new_namespace(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(4)}"


# -- CPU of threads and processes ---------------------------------------------------------------
def thread_cpu(th: threading.Thread) -> float:
    """CPU seconds used so far by another thread of this process (Linux per-thread clock)."""
    assert th.ident is not None
    return time.clock_gettime(time.pthread_getcpuclockid(th.ident))


def proc_cpu(pid: int) -> float:
    """utime + stime of one process, its own threads only (not waited-for children)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return 0.0


def proc_children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return out


def tree_cpu(pid: int, depth: int = 1) -> float:
    """CPU of a process and its live children down to ``depth`` levels (Celery main + pool
    children; the trials' own CPU, reaped by the pool child, is not included)."""
    total = proc_cpu(pid)
    if depth > 0:
        for c in proc_children(pid):
            total += tree_cpu(c, depth - 1)
    return total


# -- the sweepq side ------------------------------------------------------------------------------
class SweepqEnv:
    """A namespace on the benchmark Redis, with the environment sweepq processes need."""

    def __init__(self, url: str, prefix: str = "sqbench") -> None:
        self.url = url
        self.ns = new_namespace(prefix)
        self.tmp = Path(tempfile.mkdtemp(prefix=f"{self.ns}-"))
        self.env = {
            **os.environ,
            "SWEEPQ_REDIS_URL": url,
            "SWEEPQ_NAMESPACE": self.ns,
            "SWEEPQ_LOG_DIR": str(self.tmp / "logs"),
            "SWEEPQ_GPU_LOCK_DIR": str(self.tmp / "gpulocks"),
            "PYTHONPATH": str(ROOT),
            "SWEEPQ_WORKDIR": str(self.tmp),
        }
        self.env.pop("SWEEPQ_BROKER_URL", None)
        from sweepq.store import Store

        self.store = Store(url=url, namespace=self.ns)
        self.r = client(url)

    def cleanup(self) -> None:
        delete_namespace(self.r, self.ns)
        import shutil

        shutil.rmtree(self.tmp, ignore_errors=True)


class Workers:
    """``n`` real Celery worker processes (``-c slots`` each) on the namespace's default queue."""

    def __init__(
        self, senv: SweepqEnv, n: int, slots: int = 1, queue: str = "sweepq", pool: str = "prefork"
    ) -> None:
        self.senv, self.n, self.slots, self.queue, self.pool = senv, n, slots, queue, pool
        self.procs: list[subprocess.Popen] = []
        self.names: list[str] = []

    def start(self, timeout: float = 90.0) -> None:
        logs = self.senv.tmp / "workers"
        logs.mkdir(parents=True, exist_ok=True)
        for i in range(self.n):
            name = f"bw{i}-{secrets.token_hex(2)}@bench"
            argv = [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "sweepq.worker",
                "worker",
                "-Q",
                self.queue,
                "-c",
                str(self.slots),
                "-n",
                name,
                "--without-gossip",
                "--without-mingle",
                "-l",
                "WARNING",
                "-P",
                self.pool,
            ] + (["-E"] if os.environ.get("SWEEPQ_BENCH_EVENTS") else [])
            with open(logs / f"{i}.log", "ab") as out:
                self.procs.append(
                    subprocess.Popen(
                        argv,
                        env=self.senv.env,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL,
                        start_new_session=True,
                        cwd=str(self.senv.tmp),
                    )
                )
            self.names.append(name)
        deadline = time.monotonic() + timeout
        while True:
            alive = {w["name"] for w in self.senv.store.alive_workers()}
            if all(n in alive for n in self.names):
                break
            for p in self.procs:
                if p.poll() is not None:
                    raise RuntimeError(f"worker died: see {logs}")
            if time.monotonic() > deadline:
                raise RuntimeError("workers did not register")
            time.sleep(0.1)
        time.sleep(0.5)  # pool children forked and consuming

    def cpu(self) -> float:
        return sum(tree_cpu(p.pid) for p in self.procs)

    def stop(self) -> None:
        for p in self.procs:
            with contextlib.suppress(OSError):
                os.killpg(p.pid, signal.SIGQUIT)
        end = time.monotonic() + 15
        for p in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(max(0.1, end - time.monotonic()))
            with contextlib.suppress(OSError):
                os.killpg(p.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(5)


class ControllerThread:
    """A sweepq Controller in a thread of this process, with its CPU clock readable any time."""

    def __init__(self, store: Any, tick: float = 0.5, publish: Any = None, **kw: Any) -> None:
        from sweepq.controller import Controller

        self.ctl = Controller(store, tick=tick, publish=publish, **kw)
        self.th = threading.Thread(target=self.ctl.run, name="bench-controller", daemon=True)

    def start(self) -> ControllerThread:
        self.th.start()
        while self.th.ident is None:
            time.sleep(0.001)
        return self

    def cpu(self) -> float:
        return thread_cpu(self.th)

    def stop(self) -> None:
        self.ctl.stop_event.set()
        self.th.join(15)


def slot_gaps(trials: list[dict[str, Any]], key: str = "worker") -> tuple[list[float], list[float]]:
    """Per worker slot, trials in start order: (cycle times start->next start, idle gaps
    end->next start), in seconds."""
    by: dict[str, list[dict[str, Any]]] = {}
    for t in trials:
        if t.get("started_at") and t.get("ended_at"):
            by.setdefault(str(t.get(key)), []).append(t)
    cycles, gaps = [], []
    for ts in by.values():
        ts.sort(key=lambda t: t["started_at"])
        for a, b in zip(ts, ts[1:], strict=False):
            cycles.append(b["started_at"] - a["started_at"])
            gaps.append(b["started_at"] - a["ended_at"])
    return cycles, gaps


def spawn_floor(argv: list[str], n: int = 200) -> list[float]:
    """Seconds to spawn the trial program directly and wait for it, as the runner does (own
    session, stdout/stderr piped)."""
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        subprocess.run(
            argv, stdin=subprocess.DEVNULL, capture_output=True, start_new_session=True, check=False
        )
        out.append(time.perf_counter() - t0)
    return out
