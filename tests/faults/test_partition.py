"""Cut-off and frozen workers: a trial whose worker can no longer renew its lease is
re-run elsewhere, and the two copies never run at the same time.

* A worker host silently partitioned (network namespaces, tests/netns.py: its bridge port
  detached, so its link and route stay up) for several lease TTLs while its trial runs: the
  trial re-runs on the other host, the copies never overlap, and after the heal the sweep ends
  exactly at ``run_cap`` with every result recorded once.
* A worker's Redis connection hanging (a TCP proxy between them stopped with SIGSTOP): the same.
* A worker's pool process stopped with SIGSTOP past the TTL while its trial's program runs on:
  a frozen process cannot act, so the worker's main process fences the trial for it (the fence
  file the pool process keeps); the copies never overlap, and the stale copy's results are
  rejected when the pool process runs again.

Every case: two workers of one slot each and ``max_concurrent: 1``, so exactly one trial runs
at a time and the other worker always has a free slot for the re-run; the worker that gets the
first trial is the one cut off (whichever it is: no reliance on Celery's delivery order). The
first trial is slow (SWEEPQ_TEST_SLOW_FILE: 5 s a step) so that it outlives the fault by
seconds; the file is removed once it started, so the re-run and the rest are quick, and the
re-run logs ``rerun_steps`` values (trial.py), not ``steps``: a history of that length shows the
stale copy's results were rejected. No timing is asserted beyond the no-overlap invariant;
every wait is generous (a loaded 2-core CI machine).
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from tests.conftest import PROGRAMS, ROOT, pid_alive, wait_for
from tests.faults.conftest import (
    FINAL,
    PidWatch,
    check_no_orphans,
    check_no_overlap,
    check_sweep,
    describe,
    make_config,
    records,
    sweep_done,
)
from tests.netns import Host, HostRedis, Lab

pytestmark = [pytest.mark.redis, pytest.mark.faults]

TTL = 3.0  # SWEEPQ_LEASE_TTL of every worker here (sq_env's too)
QUICK_SLEEP = 0.5  # seconds per step of every trial but the first (which takes 5 s a step)
RERUN_STEPS = 1  # what a re-run logs (trial.py --rerun_steps): its history's length


def _parameters(steps: int) -> dict[str, Any]:
    return {
        "x": {"min": 0.0, "max": 1.0},
        "steps": {"value": steps},
        "sleep": {"value": QUICK_SLEEP},
        "rerun_steps": {"value": RERUN_STEPS},
    }


def _config(run_cap: int, steps: int) -> dict[str, Any]:
    return make_config(run_cap=run_cap, retries=2, max_concurrent=1, parameters=_parameters(steps))


def _first_started(store: Any, sid: str, rec: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the running trial, its program's record) once the first trial's program has started."""

    def started() -> tuple[dict[str, Any], dict[str, Any]] | None:
        recs = records(rec)
        for t in store.get_trials(sorted(store.inflight_ids(sid)), history=False):
            mine = [r for r in recs if r["run"] == t["id"]]
            if t["state"] == "running" and mine:
                return t, mine[0]
        return None

    return wait_for(started, 90, what="the first trial's program to start", info=lambda: describe(store, sid))  # type: ignore[return-value]


def _rerun_on(store: Any, tid: str, worker: str) -> bool:
    """The trial's current attempt is (or was: a re-run may be over before a loaded machine
    polls) on ``worker``."""
    t = store.get_trials([tid], history=False)[0]
    return t["worker"] == worker and t["state"] in FINAL | {"running"}


def _task_over(log: Callable[[], str], tid: str) -> bool:
    """The worker's Celery log says its task for ``tid`` returned or raised: whatever the stale
    copy's runner writes to Redis has been written (or refused)."""
    return re.search(rf"run_trial\[{re.escape(tid)}\.[^\]]*\] (succeeded|raised|failed)", log()) is not None


def _check_rerun(trials: list[dict[str, Any]], tid: str, other: str, steps: int) -> None:
    """The faulted trial ended on the other worker with the re-run's results only; every other
    trial has its own full history once."""
    for t in trials:
        if t["id"] == tid:
            assert t["worker"] == other and t["attempt"] >= 2, f"not re-run on {other}: {t}"
            assert len(t["history"]) == RERUN_STEPS, f"the stale copy's results were recorded: {t['history']}"
        else:
            assert len(t["history"]) == steps, f"{t['id']}: history {t['history']}"


# -- a silent partition between hosts ---------------------------------------------------------------
def _lab_env(srv: HostRedis, namespace: str, rec_dir: Path, slow: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWEEPQ_")}
    env.update(
        {
            "SWEEPQ_REDIS_URL": srv.url,
            "SWEEPQ_NAMESPACE": namespace,
            "SWEEPQ_LEASE_TTL": str(TTL),
            "SWEEPQ_TEST_RECORD": str(rec_dir),
            "SWEEPQ_TEST_SLOW_FILE": str(slow),
            "PYTHONPATH": str(ROOT),
        }
    )
    return env


def _start_host_worker(host: Host, env: dict[str, str], tmp_path: Path) -> tuple[str, Path]:
    """A real celery worker (one slot) inside ``host``; returns (its name, its log)."""
    from sweepq.agents import worker_argv

    name = f"{host.name}-{secrets.token_hex(2)}@{host.name}"
    log = tmp_path / f"worker-{host.name}.log"
    e = {
        **env,
        "SWEEPQ_LOG_DIR": str(tmp_path / f"logs-{host.name}"),
        "SWEEPQ_GPU_LOCK_DIR": str(tmp_path / f"gpulocks-{host.name}"),
    }
    host.popen(worker_argv(["sweepq"], 1, name, "INFO"), env=e, log=log, cwd=str(ROOT))
    return name, log


def test_partitioned_host_trial_rerun_on_other_host_never_twice_at_once(
    lab: Lab, rec_dir: Path, pid_watch: PidWatch, tmp_path: Path
) -> None:
    from sweepq.store import Store

    a, b, c = lab.add_host("a"), lab.add_host("b"), lab.add_host("c")
    srv = HostRedis(a)
    namespace = f"sqt{secrets.token_hex(4)}"
    store = Store(client=srv.client(), namespace=namespace)  # the test reads through the unix socket
    slow = tmp_path / "slow"
    slow.touch()
    env = _lab_env(srv, namespace, rec_dir, slow)
    a.popen(
        [sys.executable, "-m", "sweepq.cli", "controller", "--tick", "0.2"],
        env=env,
        log=tmp_path / "controller.log",
        cwd=str(ROOT),
    )
    hosts = {b.name: b, c.name: c}
    workers = {h.name: _start_host_worker(h, env, tmp_path) for h in hosts.values()}

    def logs() -> str:
        return "".join(log.read_text(errors="replace")[-3000:] for _, log in workers.values())

    wait_for(
        lambda: {n for n, _ in workers.values()} <= {w["name"] for w in store.alive_workers()},
        90,
        what="both workers registered",
        info=logs,
    )
    run_cap, steps = 4, 2
    sid = store.create_sweep(_config(run_cap, steps))
    t, rec = _first_started(store, sid, rec_dir)
    slow.unlink()
    victim = next(h for h in hosts if workers[h][0] == t["worker"])
    other = next(h for h in hosts if h != victim)

    t_cut = time.time()
    lab.cut(victim)
    try:
        wait_for(
            lambda: _rerun_on(store, t["id"], workers[other][0]),
            60,
            what=f"the re-run on {other} during the cut",
            info=lambda: describe(store, sid),
        )
        time.sleep(max(0.0, t_cut + 5 * TTL - time.time()))  # several lease TTLs in all
        last_beat = store._r.zscore(store.keys.workers, workers[victim][0]) or 0.0
        assert last_beat < t_cut + 0.5, "the cut-off worker still reached Redis: the cut is not a partition"
        assert hosts[victim].link()["up"], "a silent cut leaves the host's link up"
    finally:
        lab.heal(victim)
    t_heal = time.time()

    wait_for(lambda: sweep_done(store, sid), 120, what="sweep end", info=lambda: describe(store, sid))
    # the healed worker reaches Redis again, and its copy's task ends: its writes are in (or refused)
    wait_for(
        lambda: (store._r.zscore(store.keys.workers, workers[victim][0]) or 0.0) > t_heal,
        120,
        what=f"{victim}'s worker back after the heal",
        info=logs,
    )
    wait_for(
        lambda: _task_over(lambda: workers[victim][1].read_text(errors="replace"), t["id"]),
        120,
        what=f"{victim}'s task for {t['id']} to end",
        info=logs,
    )
    check_no_orphans(records(rec_dir))
    pid_watch.poll()  # every death the wait above saw is noted before the overlap check
    trials = store.get_trials(store.trial_ids(sid))
    _check_rerun(trials, t["id"], workers[other][0], steps)
    assert rec["pid"] in pid_watch.dead_at
    check_sweep(
        store, sid, rec_dir, expect={"finished": run_cap}, n_trials=run_cap, dead_at=pid_watch.dead_at
    )


# -- a hung Redis connection ------------------------------------------------------------------------
class Proxy:
    """tests/programs/tcp_proxy.py in its own process group: ``port`` forwards to the target."""

    def __init__(self, target: tuple[str, int], log: Path) -> None:
        self.log = log
        with open(log, "ab") as err:
            self.proc = subprocess.Popen(
                [sys.executable, str(PROGRAMS / "tcp_proxy.py"), "--target", f"{target[0]}:{target[1]}"],
                stdout=subprocess.PIPE,
                stderr=err,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                text=True,
            )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.startswith("listening "), f"proxy did not start: {line!r} {log.read_text()[-2000:]}"
        self.port = int(line.split()[1])

    def signal(self, sig: int) -> None:
        os.killpg(self.proc.pid, sig)

    def close(self) -> None:
        for sig in (signal.SIGCONT, signal.SIGKILL):
            try:
                self.signal(sig)
            except OSError:
                pass
        self.proc.wait(10)


@pytest.fixture
def proxies(redis_server: str, tmp_path: Path) -> Iterator[Callable[[], Proxy]]:
    """Factory: a TCP proxy to the test Redis; all killed at teardown."""
    u = urlparse(redis_server)
    made: list[Proxy] = []

    def make() -> Proxy:
        made.append(Proxy((u.hostname or "127.0.0.1", u.port or 6379), tmp_path / f"proxy{len(made)}.log"))
        return made[-1]

    yield make
    for p in made:
        p.close()


def test_tcp_proxy_forwards_hangs_while_stopped_and_outlives_closes(
    proxies: Callable[[], Proxy], redis_server: str
) -> None:
    """The harness itself: a stopped proxy hangs its clients without an error and lets them go
    on after SIGCONT; connections closed from both ends at once never end the proxy (its first
    version died of that mid-test, and its workers saw "connection refused", not a hang)."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    proxy = proxies()
    db = int(urlparse(redis_server).path.lstrip("/") or 0)
    direct = redis.Redis.from_url(redis_server)
    tag = f"sqproxy{secrets.token_hex(3)}"
    clients = [redis.Redis(port=proxy.port, db=db, socket_timeout=5) for _ in range(12)]
    for i, c in enumerate(clients):
        c.client_setname(f"{tag}-{i}")
    ids = [int(x["id"]) for x in direct.client_list() if x.get("name", "").startswith(tag)]
    assert len(ids) == len(clients)
    proxy.signal(signal.SIGSTOP)  # both ends of each connection closed while it looks away
    for i, c in zip(ids, clients, strict=False):
        direct.client_kill_filter(_id=i)
        c.close()
    proxy.signal(signal.SIGCONT)
    time.sleep(0.5)
    assert proxy.proc.poll() is None, proxy.log.read_text()[-2000:]
    c = redis.Redis(port=proxy.port, db=db, socket_timeout=1, retry=Retry(NoBackoff(), 0))
    assert c.ping()
    proxy.signal(signal.SIGSTOP)
    try:
        with pytest.raises(redis.TimeoutError):
            c.ping()
    finally:
        proxy.signal(signal.SIGCONT)
    assert redis.Redis(port=proxy.port, db=db, socket_timeout=5).ping()


def test_hung_redis_connection_trial_rerun_elsewhere_never_twice_at_once(
    proxies: Callable[[], Proxy],
    store: Any,
    start_worker: Any,
    controller: Any,
    redis_server: str,
    rec_dir: Path,
    pid_watch: PidWatch,
    tmp_path: Path,
) -> None:
    # proxies first: set up before the workers, so torn down after them (a worker whose Redis
    # went away with its proxy waits out broker reconnects when stopped)
    slow = tmp_path / "slow"
    slow.touch()
    db = urlparse(redis_server).path.lstrip("/") or "0"
    # each worker behind its own proxy (the first trial's worker is the victim; the other's proxy
    # is never stopped, so that worker talks to Redis as a direct one would)
    by_name: dict[str, tuple[Any, Proxy]] = {}
    for _ in range(2):
        proxy = proxies()
        w = start_worker(
            concurrency=1,
            env={
                "SWEEPQ_TEST_RECORD": str(rec_dir),
                "SWEEPQ_TEST_SLOW_FILE": str(slow),
                "SWEEPQ_REDIS_URL": f"redis://127.0.0.1:{proxy.port}/{db}",
            },
        )
        by_name[w.name] = (w, proxy)
    run_cap, steps = 3, 2
    sid = store.create_sweep(_config(run_cap, steps))
    controller()
    t, rec = _first_started(store, sid, rec_dir)
    slow.unlink()
    victim, proxy = by_name[t["worker"]]
    other = next(w for w, _ in by_name.values() if w is not victim)

    t_stop = time.time()
    proxy.signal(signal.SIGSTOP)
    try:
        wait_for(
            lambda: _rerun_on(store, t["id"], other.name),
            60,
            what="the re-run on the other worker",
            info=lambda: describe(store, sid),
        )
        time.sleep(max(0.0, t_stop + 20 - time.time()))  # the 20 s: several lease TTLs
    finally:
        proxy.signal(signal.SIGCONT)

    wait_for(lambda: sweep_done(store, sid), 120, what="sweep end", info=lambda: describe(store, sid))
    wait_for(
        lambda: _task_over(victim.output, t["id"]),
        120,
        what="the stale copy's task to end",
        info=lambda: victim.output()[-3000:],
    )
    check_no_orphans(records(rec_dir))
    pid_watch.poll()  # every death the wait above saw is noted before the overlap check
    _check_rerun(store.get_trials(store.trial_ids(sid)), t["id"], other.name, steps)
    assert rec["pid"] in pid_watch.dead_at
    check_sweep(
        store, sid, rec_dir, expect={"finished": run_cap}, n_trials=run_cap, dead_at=pid_watch.dead_at
    )


# -- a frozen pool process ------------------------------------------------------------------------
def _ppid(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def _pool_process(trial_pid: int, worker_pid: int) -> int:
    """The Celery pool child running the trial: the trial program's ancestor whose parent is the
    worker's main process (whatever wrapper, if any, the runner puts between them)."""
    pid = trial_pid
    while pid > 1:
        parent = _ppid(pid)
        if parent == worker_pid:
            return pid
        pid = parent
    raise AssertionError(f"trial process {trial_pid} does not descend from worker {worker_pid}")


def test_frozen_pool_process_its_trial_fenced_by_the_worker_results_rejected(
    store: Any, start_worker: Any, controller: Any, rec_dir: Path, pid_watch: PidWatch, tmp_path: Path
) -> None:
    slow = tmp_path / "slow"
    slow.touch()
    env = {"SWEEPQ_TEST_RECORD": str(rec_dir), "SWEEPQ_TEST_SLOW_FILE": str(slow)}
    workers = {w.name: w for w in (start_worker(concurrency=1, env=env) for _ in range(2))}
    run_cap, steps = 3, 4  # the first trial: 4 steps of 5 s, outliving the 4 x TTL stop by ~7 s
    sid = store.create_sweep(_config(run_cap, steps))
    controller()
    t, rec = _first_started(store, sid, rec_dir)
    slow.unlink()
    victim = workers[t["worker"]]
    other = next(w for w in workers.values() if w is not victim)
    stale = rec["pid"]
    pool = _pool_process(stale, victim.pid)

    os.kill(pool, signal.SIGSTOP)
    t_stop = time.time()
    try:
        wait_for(
            lambda: _rerun_on(store, t["id"], other.name),
            60,
            what="the re-run on the other worker",
            info=lambda: describe(store, sid),
        )
        time.sleep(max(0.0, t_stop + 4 * TTL - time.time()))
    finally:
        os.kill(pool, signal.SIGCONT)
    t_cont = time.time()

    wait_for(lambda: stale in pid_watch.dead_at, 60, what="the stale copy to die")
    wait_for(lambda: sweep_done(store, sid), 120, what="sweep end", info=lambda: describe(store, sid))
    wait_for(
        lambda: _task_over(victim.output, t["id"]),
        120,
        what="the stale copy's task to end",
        info=lambda: victim.output()[-3000:],
    )
    recs = records(rec_dir)
    stale_rec = next(r for r in recs if r["pid"] == stale)
    assert stale_rec["end"] is None, (
        "the stale copy ended on its own before SIGCONT: the trial must outlive the stop"
    )
    assert pid_watch.dead_at[stale] < t_cont, "the stale copy outlived the freeze of the process running it"
    trials = check_sweep(store, sid, expect={"finished": run_cap}, n_trials=run_cap)
    _check_rerun(trials, t["id"], other.name, steps)
    check_no_orphans(recs)
    pid_watch.poll()
    check_no_overlap(recs, pid_watch.dead_at)
    assert not pid_alive(stale)
