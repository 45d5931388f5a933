"""Scale: a 10,000-trial sweep, 100 concurrent sweeps, Redis memory per trial, CLI latency.

Usage::

    .venv/bin/python benchmarks/scale.py [--trials 10000] [--checkpoints 1000,5000,10000]
        [--window 200] [--sweeps 100] [--per-sweep 20] [--real 200] [--parts growth,memory,real,many]

Parts (each in its own fresh namespace on ``--redis``, deleted afterwards):

* growth: one random-search sweep of ``--trials`` zero-length trials driven by the real
  ``Controller`` (thread, tick 0.5 s) and two simulated workers (threads) that do exactly what a
  worker does through the ``Store``: claim, log one metric row, finish. The controller's publish
  goes to an in-process queue instead of Celery, so this isolates the controller + store cost as
  state grows (no subprocess, no broker). Workers are gated so that the last ``--window`` trials
  before each checkpoint are measured on their own: per-trial overhead (a worker's start -> next
  start; nothing else happens in a trial), idle gap (end -> next start), controller thread CPU
  and Redis CPU per trial. At each checkpoint (workers paused): Redis memory of the namespace
  per finished trial (sum of ``MEMORY USAGE`` of its keys; the event stream, capped at 20,000
  entries, shown separately) and ``sweepq status/best/runs --json`` latency (a subprocess with
  ``SWEEPQ_REDIS_URL``/``SWEEPQ_NAMESPACE``, median of 3; ``sweepq --version`` is the start-up
  floor).
* memory: 1,000 trials written through Store methods (create, claim, log, finish) with no
  metric row, one row (the final value), one row and a full log tail (``FINISHED_TAIL_CHARS``, the
  most the runner keeps for a finished trial: 500 chars), and a 100-step history (100 rows of ``{"step", "loss", "acc"}``);
  bytes per trial of the namespace's keys, and ``used_memory`` delta. The result depends on the
  server's ``hash-max-listpack-value`` (sweepq's embedded and compose Redis set 1024; a stock
  server has 64): run it with ``--redis`` pointing at each to compare.
* real: real ``celery worker -c 1`` processes (2) and a controller thread run ``--real`` trials
  of ``/bin/echo`` on sweeps that already hold 1,000 and 10,000 finished trials (written
  through the Store): per-trial overhead and controller CPU per trial at each size.
* many: ``--sweeps`` concurrent sweeps of ``--per-sweep`` trials each, same simulated workers,
  against one sweep of the same total: trials/s, overhead, controller CPU per trial.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import queue
import secrets
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import (  # noqa: E402
    DEFAULT_REDIS,
    ControllerThread,
    SweepqEnv,
    Workers,
    log,
    machine_load,
    med,
    ns_memory,
    pct,
    redis_cpu,
    redis_idle_cpu_rate,
    slot_gaps,
    table,
    used_memory,
)

from sweepq.executor import FINISHED_TAIL_CHARS  # noqa: E402

PARAMS = {
    "lr": {"distribution": "log_uniform_values", "min": 1e-5, "max": 1e-1},
    "layers": {"distribution": "int_uniform", "min": 1, "max": 8},
    "dropout": {"distribution": "uniform", "min": 0.0, "max": 0.5},
}
ECHO = ["/bin/echo", '@sweepq {"loss": 0.5}']
SWEEPQ_BIN = str(Path(sys.executable).with_name("sweepq"))


def sweep_config(run_cap: int, command: list[str] | None = None) -> dict[str, Any]:
    from sweepq.config import load_config

    return load_config(
        {
            "method": "random",
            "metric": {"name": "loss", "goal": "minimize"},
            "parameters": PARAMS,
            "command": command or ["/bin/true"],
            "run_cap": run_cap,
        }
    )


# -- simulated workers ----------------------------------------------------------------------------
class SimWorkers:
    """Threads that consume the controller's publishes from an in-process queue and run each trial
    through the Store as a worker would (claim, one metric row, finish); zero-length trials.
    ``allow(n)`` lets n more trials start (the gate used to measure windows)."""

    def __init__(self, store: Any, n: int = 2, rows: int = 1) -> None:
        self.store, self.n, self.rows = store, n, rows
        self.q: queue.Queue = queue.Queue()
        self.gate = threading.Semaphore(0)
        self.stop = threading.Event()
        self.names = [f"sim{i}-{secrets.token_hex(2)}@bench" for i in range(n)]
        self.threads = [threading.Thread(target=self._loop, args=(nm,), daemon=True) for nm in self.names]
        self.done = 0
        self._lock = threading.Lock()

    def publish(self, sid: str, tid: str, queue_name: str, attempt: int) -> None:  # noqa: ARG002
        self.q.put((sid, tid))

    def start(self) -> SimWorkers:
        for nm in self.names:
            self.store.register_worker(nm, 1, ["sweepq"], ttl=30.0)
        for t in self.threads:
            t.start()
        threading.Thread(target=self._beat, daemon=True).start()
        return self

    def allow(self, n: int) -> None:
        for _ in range(n):
            self.gate.release()

    def _beat(self) -> None:
        while not self.stop.wait(5.0):
            for nm in self.names:
                self.store.worker_heartbeat(nm, ttl=30.0)

    def _loop(self, name: str) -> None:
        st = self.store
        while not self.stop.is_set():
            if not self.gate.acquire(timeout=0.2):
                continue
            while not self.stop.is_set():
                try:
                    sid, tid = self.q.get(timeout=0.2)
                    break
                except queue.Empty:
                    continue
            else:
                return
            owner = f"{name}:{secrets.token_hex(4)}"
            if not st.claim(sid, tid, owner, name, 60.0).ok:
                self.gate.release()
                continue
            if self.rows:
                st.log_metrics(sid, tid, owner, [0.5], [json.dumps({"loss": 0.5})])
            st.finish_trial(sid, tid, owner, "finished", 0)
            with self._lock:
                self.done += 1

    def shutdown(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(5)
        for nm in self.names:
            self.store.unregister_worker(nm)


def wait_done(store: Any, sids: list[str], n: int, timeout: float = 900.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        done = 0
        for sid in sids:
            c = store.counts(sid)
            done += sum(v for k, v in c.items() if k not in ("queued", "running"))
        if done >= n:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out at {done}/{n}")
        time.sleep(0.05)


# -- CLI latency ----------------------------------------------------------------------------------
def cli_latency(env: dict[str, str], args: list[str], reps: int = 3) -> tuple[float, int]:
    times, size = [], 0
    for _ in range(reps):
        t0 = time.perf_counter()
        p = subprocess.run([SWEEPQ_BIN, *args], env=env, capture_output=True, check=False)
        times.append(time.perf_counter() - t0)
        if p.returncode != 0:
            raise RuntimeError(f"sweepq {' '.join(args)}: rc {p.returncode}: {p.stderr.decode()[-500:]}")
        size = len(p.stdout)
    return med(times), size


def store_call_latency(fn: Any, reps: int = 3) -> float:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return med(times)


# -- part: growth ---------------------------------------------------------------------------------
def part_growth(url: str, total: int, checkpoints: list[int], window: int) -> dict[str, Any]:
    senv = SweepqEnv(url, prefix="sqscale")
    sim = SimWorkers(senv.store, 2).start()
    ctl = ControllerThread(senv.store, tick=0.5, publish=sim.publish).start()
    out: dict[str, Any] = {"windows": [], "checkpoints": []}
    try:
        time.sleep(1.0)
        mem0 = used_memory(senv.r)
        sid = senv.store.create_sweep(sweep_config(total))
        senv.store._r.hset(senv.store.keys.sweep(sid), "name", "scale")
        done = 0
        for cp in checkpoints:
            start_window = max(done, cp - window)
            if start_window > done:  # run up to the window unmeasured
                sim.allow(start_window - done)
                wait_done(senv.store, [sid], start_window)
            time.sleep(0.6)  # controller settled (queue refilled) before the window
            idle = redis_idle_cpu_rate(senv.r, 1.0)
            c_ctl, c_red, t0 = ctl.cpu(), redis_cpu(senv.r), time.monotonic()
            sim.allow(cp - start_window)
            wait_done(senv.store, [sid], cp)
            d_ctl, d_red, wall = ctl.cpu() - c_ctl, redis_cpu(senv.r) - c_red, time.monotonic() - t0
            n = cp - start_window
            ids = senv.store.trial_ids(sid, start_window, cp - 1)
            trials = [t for t in senv.store.get_trials(ids, history=False) if t["ended_at"]]
            cycles, gaps = slot_gaps(trials)
            w = {
                "at": cp,
                "n": n,
                "tps": n / wall,
                "over_p50": med(cycles),
                "over_p95": pct(cycles, 0.95),
                "gap_p50": med(gaps),
                "gap_p95": pct(gaps, 0.95),
                "ctl_cpu": d_ctl / n,
                "red_cpu": max(0.0, d_red - idle * wall) / n,
                "load": os.getloadavg()[0],
            }
            out["windows"].append(w)
            log(f"growth window at {cp}: {w}")
            done = cp
            time.sleep(0.6)  # the controller's refill for the paused workers has landed
            counts = senv.store.counts(sid)
            finished = sum(v for k, v in counts.items() if k not in ("queued", "running"))
            ev = int(senv.r.memory_usage(senv.store.keys.events, samples=0) or 0)
            mem_ns = ns_memory(senv.r, senv.ns)
            cpd = {
                "at": cp,
                "finished": finished,
                "trials": senv.store.n_trials(sid),
                "mem_ns": mem_ns,
                "mem_events": ev,
                "events_len": senv.r.xlen(senv.store.keys.events),
                "used_delta": used_memory(senv.r) - mem0,
            }
            env = {**senv.env}
            cpd["cli_version"], _ = cli_latency(env, ["--version"])
            cpd["cli_status"], _ = cli_latency(env, ["status", sid, "--json"])
            cpd["cli_best"], _ = cli_latency(env, ["best", sid, "--json"])
            cpd["cli_runs"], cpd["runs_bytes"] = cli_latency(env, ["runs", sid, "--json"])
            cpd["call_status"] = store_call_latency(lambda st=senv.store, s=sid: st.status(s))
            cpd["call_runs"] = store_call_latency(
                lambda st=senv.store, s=sid: [
                    st.run_json(t) for t in st.get_trials(st.trial_ids(s), history=False)
                ]
            )
            out["checkpoints"].append(cpd)
            log(f"checkpoint {cp}: {cpd}")
        out["suggest_p50"] = med(list(ctl.ctl.stats["suggest_s"]))
        return out
    finally:
        ctl.stop()
        sim.shutdown()
        senv.cleanup()


# -- part: memory ---------------------------------------------------------------------------------
def populate(store: Any, sid: str, n: int, rows: int, batch: int = 200, tail: int = 0) -> None:
    """Create n trials and run each to 'finished' through Store methods, as a worker would
    (``tail``: length of the log tail kept with each trial; the runner keeps up to
    ``FINISHED_TAIL_CHARS`` for a finished trial)."""
    from sweepq.search import random as rnd

    cfg = json.loads(store._r.hget(store.keys.sweep(sid), "config"))
    made = 0
    while made < n:
        k = min(batch, n - made)
        tids = store.create_trials(sid, rnd.suggest(cfg, [], k), run_cap=cfg.get("run_cap"))
        for tid in tids:
            owner = f"pop:{secrets.token_hex(4)}"
            store.claim(sid, tid, owner, "pop@bench", 60.0)
            if rows == 1:
                store.log_metrics(sid, tid, owner, [0.5], [json.dumps({"loss": 0.5})])
            elif rows > 1:
                vals = [1.0 / (i + 1) for i in range(rows)]
                store.log_metrics(
                    sid,
                    tid,
                    owner,
                    vals,
                    [json.dumps({"step": i, "loss": v, "acc": 1 - v}) for i, v in enumerate(vals)],
                )
            store.finish_trial(
                sid, tid, owner, "finished", 0, log_tail=("[stdout] " + "x" * tail)[-tail:] if tail else ""
            )
        made += len(tids)
        if not tids:
            raise RuntimeError("create_trials returned nothing")


def part_memory(url: str, n: int = 1000) -> list[dict[str, Any]]:
    res = []
    for rows, tail, label in (
        (0, 0, "no metric row"),
        (0, FINISHED_TAIL_CHARS, f"no metric row + {FINISHED_TAIL_CHARS}-char log tail"),
        (1, 0, "1 metric row (final value)"),
        (
            1,
            FINISHED_TAIL_CHARS,
            f"1 metric row + {FINISHED_TAIL_CHARS}-char log tail (a finished trial's maximum)",
        ),
        (100, 0, "100-step history"),
    ):
        senv = SweepqEnv(url, prefix="sqmem")
        try:
            base_ns = ns_memory(senv.r, senv.ns)
            base_used = used_memory(senv.r)
            sid = senv.store.create_sweep(sweep_config(n))
            senv.store._r.srem(senv.store.keys.active_sweeps, sid)  # no controller involved
            populate(senv.store, sid, n, rows, tail=tail)
            ev = int(senv.r.memory_usage(senv.store.keys.events, samples=0) or 0)
            total = ns_memory(senv.r, senv.ns) - base_ns
            r = {
                "label": label,
                "n": n,
                "per_trial": total / n,
                "per_trial_no_events": (total - ev) / n,
                "used_delta_per_trial": (used_memory(senv.r) - base_used) / n,
            }
            log(f"memory {r}")
            res.append(r)
        finally:
            senv.cleanup()
    return res


# -- part: real workers at size -------------------------------------------------------------------
def part_real(url: str, sizes: list[int], n_real: int, n_workers: int = 2) -> list[dict[str, Any]]:
    res = []
    for size in sizes:
        senv = SweepqEnv(url, prefix="sqreal")
        workers = Workers(senv, n_workers)
        ctl = None
        try:
            sid = senv.store.create_sweep(sweep_config(size + n_real, ECHO))
            senv.store._r.srem(senv.store.keys.active_sweeps, sid)  # hidden from the controller while filling
            t0 = time.monotonic()
            populate(senv.store, sid, size, 1)
            log(f"real: populated {size} trials in {time.monotonic() - t0:.1f} s")
            workers.start()
            ctl = ControllerThread(senv.store, tick=0.5).start()
            time.sleep(1.0)
            idle = redis_idle_cpu_rate(senv.r, 1.0)
            # the controller reads a sweep's trials once when it takes the sweep up (O(size), once);
            # measured on its own, paused so that no trial runs meanwhile, then the per-trial window
            senv.store.sweep_action(sid, "pause")
            c_load, t_load = ctl.cpu(), time.monotonic()
            senv.store._r.sadd(senv.store.keys.active_sweeps, sid)
            deadline = time.monotonic() + 120
            while not (sid in ctl.ctl.views and ctl.ctl.views[sid].loaded):
                if time.monotonic() > deadline:
                    raise RuntimeError("the controller never loaded the sweep")
                time.sleep(0.005)
            load_wall, load_cpu = time.monotonic() - t_load, ctl.cpu() - c_load
            c_ctl, c_red, c_wrk, t0 = ctl.cpu(), redis_cpu(senv.r), workers.cpu(), time.monotonic()
            senv.store.sweep_action(sid, "resume")
            wait_done(senv.store, [sid], size + n_real)
            wall = time.monotonic() - t0
            d_ctl, d_red, d_wrk = ctl.cpu() - c_ctl, redis_cpu(senv.r) - c_red, workers.cpu() - c_wrk
            trials = senv.store.get_trials(senv.store.trial_ids(sid, size, -1), history=False)
            cycles, gaps = slot_gaps(trials)
            r = {
                "size": size,
                "n": len(trials),
                "tps": len(trials) / wall,
                "over_p50": med(cycles),
                "over_p95": pct(cycles, 0.95),
                "gap_p50": med(gaps),
                "gap_p95": pct(gaps, 0.95),
                "in_trial": med([t["ended_at"] - t["started_at"] for t in trials]),
                "ctl_cpu": d_ctl / len(trials),
                "wrk_cpu": d_wrk / len(trials),
                "red_cpu": max(0.0, d_red - idle * wall) / len(trials),
                "load": os.getloadavg()[0],
                "load_wall": load_wall,
                "load_cpu": load_cpu,
            }
            log(f"real at {size}: {r}")
            res.append(r)
        finally:
            if ctl is not None:
                ctl.stop()
            workers.stop()
            senv.cleanup()
    return res


# -- part: many sweeps ----------------------------------------------------------------------------
def part_many(url: str, n_sweeps: int, per_sweep: int) -> list[dict[str, Any]]:
    res = []
    for label, k, per in (
        (f"{n_sweeps} sweeps x {per_sweep}", n_sweeps, per_sweep),
        (f"1 sweep x {n_sweeps * per_sweep}", 1, n_sweeps * per_sweep),
    ):
        senv = SweepqEnv(url, prefix="sqmany")
        sim = SimWorkers(senv.store, 2).start()
        ctl = ControllerThread(senv.store, tick=0.5, publish=sim.publish).start()
        try:
            time.sleep(1.0)
            idle = redis_idle_cpu_rate(senv.r, 1.0)
            total = k * per
            c_ctl, c_red, t0 = ctl.cpu(), redis_cpu(senv.r), time.monotonic()
            sids = [senv.store.create_sweep(sweep_config(per)) for _ in range(k)]
            sim.allow(total)
            wait_done(senv.store, sids, total)
            wall = time.monotonic() - t0
            d_ctl, d_red = ctl.cpu() - c_ctl, redis_cpu(senv.r) - c_red
            trials = []
            for sid in sids:
                trials += senv.store.get_trials(senv.store.trial_ids(sid), history=False)
            cycles, gaps = slot_gaps(trials)
            r = {
                "label": label,
                "n": len(trials),
                "tps": total / wall,
                "over_p50": med(cycles),
                "over_p95": pct(cycles, 0.95),
                "gap_p50": med(gaps),
                "gap_p95": pct(gaps, 0.95),
                "ctl_cpu": d_ctl / total,
                "red_cpu": max(0.0, d_red - idle * wall) / total,
                "load": os.getloadavg()[0],
            }
            log(f"many {r}")
            res.append(r)
        finally:
            ctl.stop()
            sim.shutdown()
            senv.cleanup()
    return res


# -- main -----------------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=10000)
    ap.add_argument("--checkpoints", default="1000,5000,10000")
    ap.add_argument("--window", type=int, default=200)
    ap.add_argument("--sweeps", type=int, default=100)
    ap.add_argument("--per-sweep", type=int, default=20)
    ap.add_argument("--real", type=int, default=200)
    ap.add_argument("--real-sizes", default="1000,10000")
    ap.add_argument("--parts", default="growth,memory,real,many")
    ap.add_argument("--redis", default=os.environ.get("SWEEPQ_BENCH_REDIS", DEFAULT_REDIS))
    ap.add_argument("--json", help="also write raw results here")
    a = ap.parse_args()
    parts = a.parts.split(",")
    cps = [int(x) for x in a.checkpoints.split(",") if int(x) <= a.trials]
    log(f"start: {machine_load()}")
    results: dict[str, Any] = {"load_start": machine_load()}
    ms = 1e3
    if "growth" in parts:
        results["growth"] = part_growth(a.redis, a.trials, cps, a.window)
    if "memory" in parts:
        results["memory"] = part_memory(a.redis)
    if "real" in parts:
        results["real"] = part_real(a.redis, [int(x) for x in a.real_sizes.split(",")], a.real)
    if "many" in parts:
        results["many"] = part_many(a.redis, a.sweeps, a.per_sweep)
    results["load_end"] = machine_load()
    print(
        f"\n{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; at start {results['load_start']}; "
        f"at end {results['load_end']}\n"
    )
    if "growth" in results:
        g = results["growth"]
        print(
            f"Growth (controller + store, simulated workers x2, window of {a.window} trials before each "
            "checkpoint):\n"
        )
        rows = [
            [
                w["at"],
                w["tps"],
                w["over_p50"] * ms,
                w["over_p95"] * ms,
                w["gap_p50"] * ms,
                w["gap_p95"] * ms,
                w["ctl_cpu"] * ms,
                w["red_cpu"] * ms,
                w["load"],
            ]
            for w in g["windows"]
        ]
        print(
            table(
                [
                    "trials in sweep",
                    "trials/s",
                    "per-trial overhead p50 ms",
                    "p95 ms",
                    "idle gap p50 ms",
                    "p95 ms",
                    "controller CPU ms/trial",
                    "Redis CPU ms/trial",
                    "load (1 min)",
                ],
                rows,
                2,
            )
        )
        print()
        rows = [
            [
                c["at"],
                c["mem_ns"] / c["finished"],
                (c["mem_ns"] - c["mem_events"]) / c["finished"],
                c["mem_events"] / 1024,
                c["events_len"],
                c["cli_version"] * ms,
                c["cli_status"] * ms,
                c["cli_best"] * ms,
                c["cli_runs"] * ms,
                c["runs_bytes"] / 1024,
                c["call_status"] * ms,
                c["call_runs"] * ms,
            ]
            for c in g["checkpoints"]
        ]
        print(
            table(
                [
                    "trials",
                    "Redis B/trial (all keys)",
                    "B/trial without event stream",
                    "event stream KiB",
                    "events",
                    "`sweepq --version` ms",
                    "`status --json` ms",
                    "`best --json` ms",
                    "`runs --json` ms",
                    "runs JSON KiB",
                    "Store.status() ms",
                    "Store runs call ms",
                ],
                rows,
                0,
            )
        )
        print()
    if "memory" in results:
        print("Redis memory per finished trial (1,000 trials through Store methods):\n")
        rows = [
            [m["label"], m["per_trial"], m["per_trial_no_events"], m["used_delta_per_trial"]]
            for m in results["memory"]
        ]
        print(
            table(
                [
                    "trial logs",
                    "B/trial (namespace keys)",
                    "B/trial without event stream",
                    "used_memory delta B/trial",
                ],
                rows,
                0,
            )
        )
        print()
    if "real" in results:
        print(
            f"Real workers (2 x `celery worker -c 1`, /bin/echo trials), {a.real} trials on a sweep already "
            "holding N finished trials:\n"
        )
        rows = [
            [
                r["size"],
                r["n"],
                r["tps"],
                r["over_p50"] * ms,
                r["over_p95"] * ms,
                r["in_trial"] * ms,
                r["gap_p50"] * ms,
                r["gap_p95"] * ms,
                r["ctl_cpu"] * ms,
                r["wrk_cpu"] * ms,
                r["red_cpu"] * ms,
                r["load"],
                r["load_wall"] * ms,
                r["load_cpu"] * ms,
            ]
            for r in results["real"]
        ]
        print(
            table(
                [
                    "N",
                    "trials run",
                    "trials/s",
                    "cycle p50 ms",
                    "cycle p95 ms",
                    "start→end p50 ms",
                    "idle gap p50 ms",
                    "p95 ms",
                    "controller CPU ms/trial",
                    "worker CPU ms/trial",
                    "Redis CPU ms/trial",
                    "load (1 min)",
                    "controller takes the sweep up: wall ms",
                    "its CPU ms (once)",
                ],
                rows,
                1,
            )
        )
        print()
    if "many" in results:
        print("Concurrent sweeps (controller + store, simulated workers x2):\n")
        rows = [
            [
                m["label"],
                m["n"],
                m["tps"],
                m["over_p50"] * ms,
                m["over_p95"] * ms,
                m["gap_p50"] * ms,
                m["ctl_cpu"] * ms,
                m["red_cpu"] * ms,
                m["load"],
            ]
            for m in results["many"]
        ]
        print(
            table(
                [
                    "sweeps",
                    "trials",
                    "trials/s",
                    "per-trial overhead p50 ms",
                    "p95 ms",
                    "idle gap p50 ms",
                    "controller CPU ms/trial",
                    "Redis CPU ms/trial",
                    "load (1 min)",
                ],
                rows,
                2,
            )
        )
    if a.json:
        Path(a.json).write_text(json.dumps(results, default=str, indent=1))


if __name__ == "__main__":
    main()
