"""Soak test: a long sweep under chaos. Not run in CI.

A sweep of N short trials (default 2,000) runs on 4 real ``celery worker`` processes and a
controller, on a private redis-server with the append-only file on. A chaos loop SIGKILLs a random
worker (its whole process group) every few seconds and starts a fresh one, and restarts Redis
twice (at about 1/3 and 2/3 of the sweep). At the end it checks, from the records every training
process writes:

* lost: trials missing (fewer than N), not in a final state, or ``finished`` without ever running;
* duplicated: a trial with two executions that overlapped in time (ran twice at once);
* re-executions: executions beyond one per trial (expected after kills: the killed attempt's
  retry), crashed trials (retries used up);
* overhead: wall time against the same sweep without chaos (``--baseline``), and sweepq's
  per-trial overhead (task time minus program time) from the records.

Usage::

    python benchmarks/soak.py                      # 2,000 trials, chaos, plus a baseline run
    python benchmarks/soak.py --trials 300 --no-baseline
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# the controller reads the lease TTL from its environment (it waits 2 x TTL after a Redis restart
# before reaping); it must match the workers', so set it before sweepq is imported
LEASE_TTL = "3"
for _i, _a in enumerate(sys.argv):
    if _a == "--lease-ttl" and _i + 1 < len(sys.argv):
        LEASE_TTL = sys.argv[_i + 1]
os.environ["SWEEPQ_LEASE_TTL"] = LEASE_TTL

TRIAL = ROOT / "tests" / "programs" / "trial.py"
FINAL = {"finished", "failed", "crashed", "stopped", "canceled"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    def __init__(self, d: Path) -> None:
        self.binary = shutil.which("redis-server") or shutil.which("valkey-server")
        if not self.binary:
            raise SystemExit("redis-server not found")
        self.dir, self.port = d, free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        import redis

        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--appendonly",
                "yes",
                "--save",
                "",
                "--dir",
                str(self.dir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        for _ in range(400):
            with contextlib.suppress(redis.RedisError):
                if redis.Redis.from_url(self.url, socket_connect_timeout=0.3).ping():
                    return
            time.sleep(0.05)
        raise SystemExit("redis did not start")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            self.proc.wait(30)
        self.proc = None


class Worker:
    def __init__(self, env: dict[str, str], concurrency: int, logdir: Path) -> None:
        self.name = f"soak-{secrets.token_hex(3)}@soak"
        argv = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "sweepq.worker",
            "worker",
            "-Q",
            "sweepq",
            "-c",
            str(concurrency),
            "-n",
            self.name,
            "--without-gossip",
            "--without-mingle",
            "-l",
            "WARNING",
        ]
        with open(logdir / f"{self.name.split('@')[0]}.log", "ab") as out:
            self.proc = subprocess.Popen(
                argv,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=str(ROOT),
            )

    def kill(self, sig: int = signal.SIGKILL) -> None:
        with contextlib.suppress(OSError):
            os.killpg(self.proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        with contextlib.suppress(OSError):  # pool children left in the group
            os.killpg(self.proc.pid, signal.SIGKILL)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


class DeathWatcher(threading.Thread):
    """Notes when each training process whose record has no end is first seen dead: an upper
    bound on when a killed execution ended, so overlap with a later execution can be checked."""

    def __init__(self, d: Path) -> None:
        super().__init__(daemon=True)
        self.d = d
        self.dead_at: dict[int, float] = {}
        self.done: set[str] = set()
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.scan()
            self.stop.wait(0.05)

    def scan(self) -> None:
        with os.scandir(self.d) as it:
            names = [e.name for e in it if e.name.endswith(".json") and e.name not in self.done]
        for name in names:
            try:
                r = json.loads((self.d / name).read_text())
            except (ValueError, OSError):
                continue
            if r["end"] is not None:
                self.done.add(name)
            elif not pid_alive(r["pid"]):
                now = time.time()
                try:  # it may have written its end just now
                    r = json.loads((self.d / name).read_text())
                except (ValueError, OSError):
                    continue
                if r["end"] is None:
                    self.dead_at[r["pid"]] = now
                self.done.add(name)


def load_records(d: Path) -> list[dict[str, Any]]:
    out = []
    for p in d.glob("*.json"):
        with contextlib.suppress(ValueError, OSError):
            out.append(json.loads(p.read_text()))
    return out


def run_sweep(args: argparse.Namespace, chaos: bool, work: Path) -> dict[str, Any]:
    from sweepq.config import load_config
    from sweepq.controller import Controller
    from sweepq.store import Store

    work.mkdir(parents=True, exist_ok=True)
    (work / "redis").mkdir(exist_ok=True)
    rec = work / "rec"
    rec.mkdir(exist_ok=True)
    logs = work / "logs"
    logs.mkdir(exist_ok=True)
    srv = RedisServer(work / "redis")
    srv.start()
    ns = f"soak{secrets.token_hex(3)}"
    env = {
        **os.environ,
        "SWEEPQ_REDIS_URL": srv.url,
        "SWEEPQ_NAMESPACE": ns,
        "SWEEPQ_LEASE_TTL": str(args.lease_ttl),
        "SWEEPQ_LOG_DIR": str(work / "trial-logs"),
        "SWEEPQ_GPU_LOCK_DIR": str(work / "gpulocks"),
        "SWEEPQ_TEST_RECORD": str(rec),
        "PYTHONPATH": str(ROOT),
    }
    env.pop("SWEEPQ_BROKER_URL", None)
    os.environ.update({k: env[k] for k in ("SWEEPQ_REDIS_URL", "SWEEPQ_NAMESPACE")})
    store = Store(url=srv.url, namespace=ns)
    cfg = load_config(
        {
            "method": "random",
            "program": str(TRIAL),
            "command": ["${env}", sys.executable, "${program}", "${args}"],
            "metric": {"name": "loss", "goal": "minimize"},
            "parameters": {
                "x": {"min": 0.0, "max": 1.0},
                "steps": {"value": args.steps},
                "sleep": {"value": args.sleep},
            },
            "run_cap": args.trials,
            "retries": args.retries,
        }
    )
    sid = store.create_sweep(cfg)
    workers = [Worker(env, args.concurrency, logs) for _ in range(args.workers)]
    ctl = Controller(store, tick=0.2)
    sent: dict[str, int] = {}
    publish = ctl.publish

    def counting_publish(sweep_id: str, trial_id: str, queue: str, attempt: int = 0) -> None:
        sent[trial_id] = sent.get(trial_id, 0) + 1
        publish(sweep_id, trial_id, queue, attempt)

    ctl.publish = counting_publish
    th = threading.Thread(target=ctl.run, daemon=True, name="soak-controller")
    th.start()
    watcher = DeathWatcher(rec)
    watcher.start()
    t0 = time.monotonic()
    kills = restarts = 0
    restart_at = [args.trials // 3, 2 * args.trials // 3] if chaos else []
    next_kill = t0 + args.kill_every
    last_report = t0
    last_progress, last_done, dumped = t0, -1, False
    status: dict[str, Any] = {}
    stalls: list[dict[str, Any]] = []
    try:
        while True:
            try:
                if sid not in store.active_sweeps():
                    break
                counts = store.counts(sid)
            except Exception as exc:  # Redis restarting
                print(f"  (store: {type(exc).__name__})", flush=True)
                time.sleep(0.5)
                continue
            now = time.monotonic()
            if now - t0 > args.max_time:
                print("  giving up: --max-time reached", flush=True)
                break
            done = sum(counts[s] for s in FINAL)
            if done != last_done:
                last_done, last_progress, dumped = done, now, False
            elif now - last_progress > args.stall_s and not dumped and len(stalls) < 3:
                dumped = True
                stalls.append(dump_stall(store, sid, now - t0, ctl))
                print("  STALL: " + json.dumps(stalls[-1])[:3000], flush=True)
            if now - last_progress > args.give_up_s:
                print(f"  giving up: no trial ended for {args.give_up_s:.0f} s", flush=True)
                break
            if chaos and now >= next_kill:
                victim = random.randrange(len(workers))
                workers[victim].kill()
                workers[victim] = Worker(env, args.concurrency, logs)
                kills += 1
                next_kill = now + args.kill_every * random.uniform(0.5, 1.5)
            if restart_at and done >= restart_at[0]:
                restart_at.pop(0)
                print(f"  restarting Redis at {done} done", flush=True)
                srv.stop()
                time.sleep(args.redis_down)
                srv.start()
                restarts += 1
            if now - last_report > 10:
                print(f"  {now - t0:6.1f}s {counts} kills={kills} restarts={restarts}", flush=True)
                last_report = now
            time.sleep(0.2)
        wall = time.monotonic() - t0
        trials = store.get_trials(store.trial_ids(sid), history=False)
        status = store.status(sid)
    except BaseException:
        srv.stop(signal.SIGKILL)
        raise
    finally:
        old = signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second TERM must not skip cleanup
        for w in workers:
            w.kill()
        ctl.stop_event.set()
        th.join(10)
        signal.signal(signal.SIGTERM, old)
    time.sleep(0.5)
    watcher.stop.set()
    watcher.join(5)
    watcher.scan()
    recs = load_records(rec)
    res = analyse(args.trials, trials, recs, watcher.dead_at)
    res.update(
        {
            "chaos": chaos,
            "wall_s": round(wall, 1),
            "worker_kills": kills,
            "redis_restarts": restarts,
            "sweep_state": status.get("state"),
            "end_reason": status.get("end_reason"),
            "trials_per_s": round(len(trials) / wall, 2) if wall else None,
            "stalls": stalls,
            "controller_reaped": ctl.stats["reaped"],
            "messages_sent": sum(sent.values()),
            # beyond one per trial and one per requeue: re-sends of unclaimed trials
            "messages_resent": sum(sent.values()) - len(trials) - ctl.stats["reaped"],
        }
    )
    with contextlib.suppress(Exception):
        store.delete_namespace()
    srv.stop()
    return res


def dump_stall(store: Any, sid: str, at: float, ctl: Any = None) -> dict[str, Any]:
    """What the non-final trials look like when the sweep stops making progress."""
    diag: dict[str, Any] = {}
    if ctl is not None:
        exp = store.expired_leases()
        diag = {
            "is_leader": ctl.is_leader,
            "expired": len(exp),
            "stats_reaped": ctl.stats["reaped"],
            "views": list(ctl.views),
            "redis_time": store._r.time()[0] - time.time(),
        }
        if exp:
            diag["reap_first"] = store.reap(sid, exp[0], 3, "soak diagnostics")
            diag["steps"] = getattr(ctl, "_soak_steps", None)
    leases = dict(store._r.zrange(store.keys.leases, 0, -1, withscores=True))
    now = time.time()
    rows = []
    for t in store.get_trials(sorted(store.inflight_ids(sid)), history=False):
        lease = leases.get(t["id"])
        rows.append(
            {
                "id": t["id"],
                "state": t["state"],
                "published": t["published"],
                "queue": t["queue"],
                "attempt": t["attempt"],
                "worker": t["worker"],
                "reason": t["reason"],
                "lease_in_s": round(lease - now, 1) if lease else None,
            }
        )
    qlen = store._r.llen(f"{store.keys.celery_prefix}sweepq")
    unacked = store._r.hlen(f"{store.keys.celery_prefix}unacked")
    import traceback

    stacks = {
        t.name: "".join(traceback.format_stack(sys._current_frames()[t.ident])[-40:-4])
        for t in threading.enumerate()
        if t.ident in sys._current_frames() and "ontroller" in t.name
    }
    return {
        "at_s": round(at, 1),
        "queue_len": qlen,
        "unacked": unacked,
        "leader": store._r.get(store.keys.leader),
        "diag": diag,
        "trials": rows,
        "controller_stack": stacks,
    }


def analyse(
    n: int, trials: list[dict[str, Any]], recs: list[dict[str, Any]], dead_at: dict[int, float]
) -> dict[str, Any]:
    by_run: dict[str, list[dict[str, Any]]] = {}
    for r in recs:
        by_run.setdefault(r["run"], []).append(r)
    not_final = [t["id"] for t in trials if t["state"] not in FINAL]
    never_ran = [t["id"] for t in trials if t["state"] == "finished" and t["id"] not in by_run]
    overlapping = []
    for run, rs in by_run.items():
        # a killed execution has no end: it ended before the watcher saw it dead (never seen
        # dead: still running, so any later execution overlaps)
        spans = sorted(
            (r["start"], r["end"] if r["end"] is not None else dead_at.get(r["pid"], float("inf")))
            for r in rs
        )
        for (_, e1), (s2, _) in zip(spans, spans[1:], strict=False):
            if s2 < e1:
                overlapping.append(run)
    states: dict[str, int] = {}
    for t in trials:
        states[t["state"]] = states.get(t["state"], 0) + 1
    overhead = [
        t["ended_at"] - t["started_at"]
        for t in trials
        if t["state"] == "finished" and t["started_at"] and t["ended_at"]
    ]
    prog = [r["end"] - r["start"] for r in recs if r["end"] is not None]
    return {
        "trials": len(trials),
        "expected": n,
        "states": states,
        "lost": (n - len(trials)) + len(not_final) + len(never_ran),
        "not_final": not_final[:50],
        "duplicated_concurrent": len(set(overlapping)),
        "executions": len(recs),
        "re_executions": len(recs) - len(by_run),
        "killed_executions": sum(1 for r in recs if r["end"] is None),
        "orphans_alive": sum(1 for r in recs if pid_alive(r["pid"])),
        "retried_trials": sum(1 for t in trials if t["attempt"] > 1),
        "trial_time_median_s": round(statistics.median(overhead), 3) if overhead else None,
        "program_time_median_s": round(statistics.median(prog), 3) if prog else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=2000)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--concurrency", type=int, default=2, help="pool slots per worker")
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--sleep", type=float, default=0.05, help="seconds per step of the trial program")
    ap.add_argument("--retries", type=int, default=3)
    ap.add_argument("--lease-ttl", type=float, default=3.0)
    ap.add_argument("--kill-every", type=float, default=4.0, help="mean seconds between worker kills")
    ap.add_argument("--redis-down", type=float, default=1.0, help="seconds Redis stays down per restart")
    ap.add_argument("--max-time", type=float, default=1800.0)
    ap.add_argument(
        "--stall-s", type=float, default=20.0, help="dump diagnostics after this long without progress"
    )
    ap.add_argument(
        "--give-up-s",
        type=float,
        default=90.0,
        help="stop and report when no trial ended for this long (stranded trials count as lost)",
    )
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--baseline-only", action="store_true", help="only the run without chaos")
    ap.add_argument("--out", help="write the JSON report here")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sweepq-soak-"))
    import logging

    logging.basicConfig(
        filename=str(work / "controller.log"),
        level=logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(3))  # run the finally blocks: no orphans
    print(f"work dir {work}", flush=True)
    report: dict[str, Any] = {"params": vars(args)}
    if not args.baseline_only:
        print(f"chaos run: {args.trials} trials, {args.workers} workers x {args.concurrency}", flush=True)
        report["chaos"] = run_sweep(args, True, work / "chaos")
        print(json.dumps(report["chaos"], indent=2), flush=True)
    if not args.no_baseline:
        print("baseline run (no chaos)", flush=True)
        report["baseline"] = run_sweep(args, False, work / "baseline")
        print(json.dumps(report["baseline"], indent=2), flush=True)
        if "chaos" in report:
            b, c = report["baseline"]["wall_s"], report["chaos"]["wall_s"]
            report["overhead_wall_pct"] = round(100.0 * (c - b) / b, 1) if b else None
    print(json.dumps({k: v for k, v in report.items() if k not in ("chaos", "baseline")}, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2))
    ok = all(
        r["lost"] == 0 and r["duplicated_concurrent"] == 0
        for r in (report.get("chaos"), report.get("baseline"))
        if r
    )
    if ok:
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
