"""Capacity: what one Redis and one controller serve, from measured per-unit costs, checked by a
simulated fleet.

Usage::

    .venv/bin/python benchmarks/capacity.py [--quick] [--json benchmarks/results/capacity.json]
        [--redis redis://127.0.0.1:6379/10] [--sim-workers 200] [--sim-trial 5] [--costs JSON]

``--costs`` takes part A from an earlier ``--json`` file and runs only parts B and C. The table
this prints is in docs/deploy.md ("Capacity"), the raw numbers in docs/benchmarks.md.

Part A, per-unit costs, measured with the real components (``_harness``: a fresh namespace each,
real ``celery -A sweepq.worker worker -c 1`` processes, a ``Controller`` thread with tick 0.5 s).
Redis costs are deltas of ``INFO commandstats`` (calls by command, script-internal calls
included), ``INFO stats`` (``total_commands_processed``, ``total_net_input_bytes`` +
``total_net_output_bytes``) and ``INFO cpu`` (``used_cpu_sys + used_cpu_user``), less the
server's own rate measured just before each part with nothing of ours running (the server may be
shared) and less the INFO calls themselves. The controller's CPU is its thread's clock.

* controller: the controller alone, then with ``K`` paused sweeps (nothing to do): its base cost
  per second and its cost per active sweep per pass;
* idle workers: ``N`` workers with nothing to run (one paused sweep, so the controller reads the
  worker registry as it does in service), per worker per minute;
* trials: a sweep of ``/bin/echo '@sweepq {"loss": 0.5}'`` trials, one trial per Celery message
  (as every trial of 25 ms or more travels), per trial;
* busy workers: every worker running a long trial that logs one value a second (the runner's
  1 s stop-list BLPOP, lease renewals every ``BEAT_SHARE`` x ``SWEEPQ_LEASE_TTL``, one metric
  write a second; the controller re-reading the trials in flight), per worker per minute, with
  one more trial per worker waiting in flight as the controller keeps it;
* history: what re-reading one logged value costs (Redis, bytes, the controller's parse), from
  ``Store.get_trials`` over trials holding 3,600 values;
* passes: what a controller pass costs per trial in flight in its sweep (every trial end and
  metric write brings one);
* gossip: the idle and trial measurements with Celery's own defaults, gossip and mingle on (the
  compose file, the systemd unit and the images turn both off), and task events ``-E``;
* fan-out: Redis's cost per PUBLISH per pattern subscriber (gossip: every worker subscribes to
  every worker's heartbeats), from raw PSUBSCRIBE connections.

Idle and busy workers and an idle sweep's pass move Redis's CPU by less than its own jitter;
their Redis CPU is their commands times the trial path's CPU per command (``settle``).

Part B, the model (``model``): for ``W`` one-slot workers running trials of ``D`` seconds back to
back (W/D trials/s) that log ``LOG_RATE`` values a second, the sum of: the controller's base and
its sweep's passes, W busy workers, W/D trials, the re-reads of the trials' growing histories,
the passes brought by trial ends and metric writes over the 2W trials in flight, and (gossip)
the heartbeat fan-out W/2 x W; and the W at which one Redis core, or the controller's, reaches
50 %.

Part C, the check: ``--sim-workers`` stand-in workers (threads in two processes) that speak to
Redis as a real worker does, through sweepq's own store API for the sweepq side (register and
heartbeat in the registry, claim, lease renewals, the 1 s stop-list wait, metric writes, the
program's exit on the stop list, finish) and with the commands kombu and Celery send for the rest
(BRPOP with a 1 s timeout on the queue's four priority lists, the unacked hash and index around
each message, a ``worker-heartbeat`` PUBLISH every 2 s of the measured size; gossip: a
PSUBSCRIBE per worker on the heartbeats and three task-event PUBLISHes per trial), with the real
controller publishing through Celery: idle, then running trials of D/2..3D/2 seconds. Measured
Redis CPU, commands/s, bytes/s and controller CPU against the model's prediction.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime as dt
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import (  # noqa: E402
    DEFAULT_REDIS,
    ROOT,
    ControllerThread,
    SweepqEnv,
    Workers,
    client,
    log,
    machine_load,
    proc_cpu,
    table,
)

from sweepq.store.limits import HISTORY_CAP  # noqa: E402

PARAMS = {
    "lr": {"distribution": "log_uniform_values", "min": 1e-5, "max": 1e-1},
    "layers": {"distribution": "int_uniform", "min": 1, "max": 8},
    "dropout": {"distribution": "uniform", "min": 0.0, "max": 0.5},
}
LINE = '@sweepq {"loss": 0.5}'
ECHO = ["/bin/echo", LINE]
TICK = 0.5  # the controller's tick (sweepq controller's default): a full pass every tick
LOG_RATE = 1.0  # values a trial logs per second, in the busy measurement and the model
HISTORY = 3600  # values per trial in the history measurement (an hour at LOG_RATE)
CELERY_HEARTBEAT_S = 2.0  # Celery's worker-heartbeat event interval (celery.worker.heartbeat)
PRIORITY_SEP = "\x06\x16"  # kombu's Redis transport: one list per priority step
GOSSIP_FLAGS = ["--disable-prefetch", "-E"]  # Celery's defaults: gossip and mingle on


def busy_program(seconds: int) -> list[str]:
    """A trial that logs one value a second for ``seconds`` seconds."""
    loop = f"i=0; while [ $i -lt {seconds} ]; do echo '{LINE}'; sleep 1; i=$((i+1)); done"
    return ["/bin/sh", "-c", loop]


def sweep_config(run_cap: int, command: list[str]) -> dict[str, Any]:
    from sweepq.config import load_config

    return load_config(
        {
            "method": "random",
            "metric": {"name": "loss", "goal": "minimize"},
            "parameters": PARAMS,
            "command": command,
            "run_cap": run_cap,
        }
    )


# -- Redis counters -------------------------------------------------------------------------------
def counters(r: Any) -> dict[str, Any]:
    """What the server has done so far: CPU seconds, calls per command, commands, bytes."""
    p = r.pipeline(transaction=False)
    p.info("commandstats")
    p.info("stats")
    p.info("cpu")
    cs, st, cpu = p.execute()
    return {
        "t": time.monotonic(),
        "cpu": float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"]),
        "cmds": {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in cs.items()},
        "processed": int(st["total_commands_processed"]),
        "net_in": int(st["total_net_input_bytes"]),
        "net_out": int(st["total_net_output_bytes"]),
    }


SCALARS = ("cpu", "processed", "net_in", "net_out")


def delta(a: dict[str, Any], b: dict[str, Any], own: dict[str, Any] | None = None) -> dict[str, Any]:
    """b - a, less ``own`` (what one ``counters`` call itself costs the server)."""
    d: dict[str, Any] = {"dt": b["t"] - a["t"]}
    for k in SCALARS:
        d[k] = b[k] - a[k] - (own[k] if own else 0)
    d["cmds"] = {
        c: n - a["cmds"].get(c, 0) for c, n in b["cmds"].items() if n != a["cmds"].get(c, 0) and c != "info"
    }
    return d


def less(d: dict[str, Any], rate: dict[str, Any], seconds: float | None = None) -> dict[str, Any]:
    """``d`` less ``rate`` (per second) over ``seconds`` (default: d's own duration)."""
    s = d["dt"] if seconds is None else seconds
    out = {"dt": d["dt"]}
    for k in SCALARS:
        out[k] = d[k] - rate.get(k, 0.0) * s
    out["cmds"] = {c: n - rate.get("cmds", {}).get(c, 0.0) * s for c, n in d["cmds"].items()}
    for c, v in rate.get("cmds", {}).items():
        out["cmds"].setdefault(c, -v * s)
    return out


def scaled(d: dict[str, Any], factor: float) -> dict[str, Any]:
    out = {k: d[k] * factor for k in SCALARS}
    out["cmds"] = {c: round(n * factor, 3) for c, n in d["cmds"].items() if abs(n * factor) >= 0.005}
    out["bytes"] = out["net_in"] + out["net_out"]
    return out


class Meter:
    """Windows of server counters on one Redis, net of the server's own rate and of the meter."""

    def __init__(self, r: Any) -> None:
        self.r = r
        own = []
        for _ in range(3):
            a = counters(r)
            own.append(delta(a, counters(r)))
        cheapest = min(own, key=lambda d: d["net_in"] + d["net_out"])
        self.own = {k: cheapest[k] for k in SCALARS} | {"cpu": 0.0}
        self.base: dict[str, Any] = {k: 0.0 for k in SCALARS} | {"cmds": {}}

    def start(self) -> dict[str, Any]:
        return counters(self.r)

    def stop(self, a: dict[str, Any]) -> dict[str, Any]:
        return less(delta(a, counters(self.r), self.own), self.base)

    def window(self, seconds: float) -> dict[str, Any]:
        a = self.start()
        time.sleep(seconds)
        return self.stop(a)

    def baseline(self, seconds: float) -> dict[str, Any]:
        """The server's rate with nothing of ours running (other users of a shared server)."""
        self.base = {k: 0.0 for k in SCALARS} | {"cmds": {}}
        d = self.window(seconds)
        self.base = scaled(d, 1.0 / d["dt"])
        self.base["cmds"] = {c: max(0.0, v) for c, v in self.base["cmds"].items()}
        return self.base


def per(d: dict[str, Any], units: float, seconds: float = 1.0) -> dict[str, Any]:
    """Per unit (trial, worker) and per ``seconds`` of the window (60: per minute; 0: whole window)."""
    f = (seconds / d["dt"] if seconds else 1.0) / max(units, 1e-9)
    return scaled(d, f)


def top(cmds: dict[str, float], n: int = 12) -> str:
    items = sorted(((c, v) for c, v in cmds.items() if v > 0.05), key=lambda x: -x[1])[:n]
    return ", ".join(f"{c} {v:.1f}" for c, v in items)


# -- real components ------------------------------------------------------------------------------
class GossipWorkers(Workers):
    """Real workers with Celery's defaults, gossip and mingle on, and ``-E``.

    ``_harness.Workers`` builds its argv inline with the benchmarks' lean flags; rather than copy
    its start-up and registration wait, its process start is swapped for one that edits the argv,
    while this thread starts the workers (nothing else starts a process meanwhile)."""

    def start(self, timeout: float = 120.0) -> None:
        import _harness

        real = _harness.subprocess.Popen

        def popen(argv: list[str], **kw: Any) -> Any:
            argv = [a for a in argv if a not in ("--without-gossip", "--without-mingle", "-E")]
            return real([*argv, *GOSSIP_FLAGS], **kw)

        _harness.subprocess.Popen = popen  # type: ignore[misc]
        try:
            super().start(timeout)
        finally:
            _harness.subprocess.Popen = real  # type: ignore[misc]


class Passes:
    """Counts a controller's passes (its ``step`` calls)."""

    def __init__(self, ctl: ControllerThread) -> None:
        self.n = 0
        inner = ctl.ctl.step

        def step(*a: Any, **kw: Any) -> Any:
            self.n += 1
            return inner(*a, **kw)

        ctl.ctl.step = step  # type: ignore[method-assign]


def hidden_paused_sweep(store: Any, config: dict[str, Any]) -> str:
    """A paused sweep that never had a trial (created out of the controller's sight)."""
    sid = store.create_sweep(config)
    store._r.srem(store.keys.active_sweeps, sid)
    store.sweep_action(sid, "pause")
    store._r.sadd(store.keys.active_sweeps, sid)
    return sid


def wait_for(cond: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)


def done_count(store: Any, sid: str) -> int:
    return sum(v for k, v in store.counts(sid).items() if k not in ("queued", "running"))


def mean_history(store: Any, sid: str) -> float:
    """Mean number of values logged so far by the sweep's running trials."""
    ids = sorted(store._r.smembers(store.keys.sweep_inflight(sid)))
    p = store._r.pipeline(transaction=False)
    for tid in ids:
        p.hget(store.keys.trial(tid), "state")
        p.llen(store.keys.trial_history(tid))
    res = p.execute()
    lens = [int(res[2 * i + 1]) for i in range(len(ids)) if res[2 * i] == "running"]
    return sum(lens) / len(lens) if lens else 0.0


def event_sizes(url: str, ns: str, seconds: float, during: Any = None) -> dict[str, float]:
    """Mean size of each kind of Celery event (worker-heartbeat, task-received, ...) sent on the
    namespace's broker in ``seconds`` (while ``during()`` runs, if given)."""
    r = client(url)
    ps = r.pubsub(ignore_subscribe_messages=True)
    ps.psubscribe(f"{ns}:celery:*celeryev*")
    sizes: dict[str, list[int]] = {}
    try:
        if during is not None:
            during()
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            m = ps.get_message(timeout=0.1)
            if m and m.get("type") == "pmessage":
                kind = str(m["channel"]).rsplit("/", 1)[-1].split(".", 1)[-1]
                sizes.setdefault(kind, []).append(len(m["data"]))
    finally:
        ps.close()
    return {k: sum(v) / len(v) for k, v in sizes.items()}


def end_sweep(store: Any, sid: str, timeout: float = 30.0) -> None:
    """Cancel a sweep and wait until none of its trials runs."""
    with contextlib.suppress(Exception):
        store.sweep_action(sid, "cancel")
    with contextlib.suppress(RuntimeError):
        wait_for(lambda: store.counts(sid)["running"] == 0, timeout, "canceled trials to end")


# -- part A ---------------------------------------------------------------------------------------
def part_controller(url: str, q: bool, prefix: str) -> dict[str, Any]:
    """The controller alone, then with K paused sweeps: base rate and per sweep per pass."""
    senv = SweepqEnv(url, prefix=prefix)
    meter = Meter(senv.r)
    k_sweeps, win = (5, 1.0) if q else (40, 15.0)
    ctl = None
    try:
        base = meter.baseline(0.5 if q else 3.0)
        ctl = ControllerThread(senv.store, tick=TICK).start()
        passes = Passes(ctl)
        time.sleep(1.5)  # leader lease taken
        out: dict[str, Any] = {"server_base": base}
        for k in (0, k_sweeps):
            for _ in range(k):
                hidden_paused_sweep(senv.store, sweep_config(10, ECHO))
            time.sleep(1.0)  # every sweep loaded
            a, c0, p0 = meter.start(), ctl.cpu(), passes.n
            time.sleep(win)
            d = meter.stop(a)
            out[f"k{k}"] = {"d": d, "ctl_cpu": ctl.cpu() - c0, "passes": passes.n - p0}
        z, s = out["k0"], out[f"k{k_sweeps}"]
        out["base"] = per(z["d"], 1)
        out["base"]["ctl_cpu"] = z["ctl_cpu"] / z["d"]["dt"]
        out["passes_per_s"] = z["passes"] / z["d"]["dt"]
        extra = less(s["d"], scaled(z["d"], 1 / z["d"]["dt"]))
        out["per_sweep_pass"] = per(extra, k_sweeps * s["passes"], 0)
        out["per_sweep_pass"]["ctl_cpu"] = (
            (s["ctl_cpu"] / s["d"]["dt"] - out["base"]["ctl_cpu"]) * s["d"]["dt"] / (k_sweeps * s["passes"])
        )
        out["k_sweeps"] = k_sweeps
        log(
            f"controller: base {out['base']['cpu'] * 1e3:.2f} ms Redis CPU/s, "
            f"{out['base']['ctl_cpu'] * 1e3:.2f} ms controller CPU/s, {out['passes_per_s']:.2f} passes/s; "
            f"per sweep per pass {out['per_sweep_pass']['processed']:.1f} commands, "
            f"{out['per_sweep_pass']['ctl_cpu'] * 1e6:.0f} us controller CPU"
        )
        return out
    finally:
        if ctl is not None:
            ctl.stop()
        senv.cleanup()


def part_workers(url: str, q: bool, prefix: str, gossip: bool, ctl_base: dict[str, Any]) -> dict[str, Any]:
    """N real workers: idle (per worker per minute), then per trial, then busy (per worker per minute)."""
    kind = "gossip" if gossip else "lean"
    senv = SweepqEnv(url, prefix=prefix)
    meter = Meter(senv.r)
    n = 1 if q else 4
    idle_s = 2.0 if q else 60.0
    n_trials = 10 if q else 600
    busy_len, busy_win = (4, 2.0) if q else (30, 18.0)
    # "lean" is the command sweepq deploys: task events on (-E, for Flower), gossip and mingle off
    os.environ["SWEEPQ_BENCH_EVENTS"] = "1"
    workers = (GossipWorkers if gossip else Workers)(senv, n)
    ctl = None
    out: dict[str, Any] = {"kind": kind, "workers": n}
    try:
        base = meter.baseline(0.5 if q else 3.0)
        out["server_base"] = base
        workers.start()
        ctl = ControllerThread(senv.store, tick=TICK, batch_max=1).start()
        paused = hidden_paused_sweep(senv.store, sweep_config(10, ECHO))
        time.sleep(2.0)  # leader lease, the paused sweep loaded, the workers' first beats
        ctl_rate = scaled(ctl_base["base"], 1.0)
        ctl_rate["cmds"] = ctl_base["base"]["cmds"]
        sweep_pass = ctl_base["per_sweep_pass"]
        pps = ctl_base["passes_per_s"]

        def net_of_controller(d: dict[str, Any], sweeps: int = 1) -> dict[str, Any]:
            rate = {k: ctl_rate[k] + sweeps * pps * sweep_pass[k] for k in SCALARS}
            rate["cmds"] = dict(ctl_rate["cmds"])
            for c, v in sweep_pass["cmds"].items():
                rate["cmds"][c] = rate["cmds"].get(c, 0.0) + sweeps * pps * v
            return less(d, rate)

        def ctl_cpu_net(cpu: float, seconds: float, sweeps: int = 1) -> float:
            return cpu - seconds * (ctl_base["base"]["ctl_cpu"] + sweeps * pps * sweep_pass["ctl_cpu"])

        # idle
        a, c0, w0 = meter.start(), ctl.cpu(), workers.cpu()
        time.sleep(idle_s)
        d = meter.stop(a)
        idle = per(net_of_controller(d), n, 60.0)
        idle["ctl_cpu"] = ctl_cpu_net(ctl.cpu() - c0, d["dt"]) / n * 60.0 / d["dt"]
        idle["worker_cpu"] = (workers.cpu() - w0) / n * 60.0 / d["dt"]
        out["idle_per_min"] = idle
        log(
            f"{kind} idle worker per minute: {idle['processed']:.0f} commands, {idle['bytes'] / 1e3:.1f} kB, "
            f"Redis CPU {idle['cpu'] * 1e3:.1f} ms; {top(idle['cmds'])}"
        )
        idle_rate = per(net_of_controller(d), 1)
        out["event_sizes"] = event_sizes(url, senv.ns, (1.0 if q else 2.0) * CELERY_HEARTBEAT_S + 0.3)

        # trials: one per Celery message
        senv.store.sweep_action(paused, "cancel")
        sid = senv.store.create_sweep(sweep_config(n_trials, ECHO))
        a, c0, w0 = meter.start(), ctl.cpu(), workers.cpu()
        wait_for(lambda: done_count(senv.store, sid) >= n_trials, 60 + n_trials, "the trials")
        d = meter.stop(a)
        ctl_cpu = ctl_cpu_net(ctl.cpu() - c0, d["dt"])
        trial = per(less(net_of_controller(d), idle_rate), n_trials, 0)
        trial["ctl_cpu"] = ctl_cpu / n_trials
        trial["worker_cpu"] = (workers.cpu() - w0) / n_trials
        trial["tps"] = n_trials / d["dt"]
        out["trial"] = trial
        log(
            f"{kind} per trial ({trial['tps']:.0f} trials/s): {trial['processed']:.1f} commands, "
            f"{trial['bytes']:.0f} B, Redis CPU {trial['cpu'] * 1e3:.2f} ms, controller CPU "
            f"{trial['ctl_cpu'] * 1e3:.2f} ms; {top(trial['cmds'], 20)}"
        )
        wait_for(lambda: not senv.store._r.scard(senv.store.keys.active_sweeps), 10, "the sweep to end")
        # the task events' sizes (both kinds of worker run -E), from a few more trials
        out["event_sizes"] |= event_sizes(
            url, senv.ns, 3.0, lambda: senv.store.create_sweep(sweep_config(3, ECHO))
        )
        wait_for(lambda: not senv.store._r.scard(senv.store.keys.active_sweeps), 10, "the sweep to end")

        # busy: every worker runs a long trial, two more per worker wait in flight
        if not gossip:
            sid = senv.store.create_sweep(sweep_config(10 * n, busy_program(busy_len)))
            wait_for(lambda: senv.store.counts(sid)["running"] >= n, 30, "every worker busy")
            time.sleep(1.0)
            inflight = senv.store._r.scard(senv.store.keys.sweep_inflight(sid))
            h0 = mean_history(senv.store, sid)
            a, c0, w0 = meter.start(), ctl.cpu(), workers.cpu()
            time.sleep(busy_win)
            d = meter.stop(a)
            h1 = mean_history(senv.store, sid)
            running = senv.store.counts(sid)["running"]
            busy = per(net_of_controller(d), n, 60.0)
            busy["ctl_cpu"] = ctl_cpu_net(ctl.cpu() - c0, d["dt"]) / n * 60.0 / d["dt"]
            busy["worker_cpu"] = (workers.cpu() - w0) / n * 60.0 / d["dt"]
            busy["inflight_per_worker"] = inflight / n
            busy["running_at_end"] = running
            busy["mean_history"] = (h0 + h1) / 2
            out["busy_per_min"] = busy
            log(
                f"busy worker per minute ({inflight} in flight): {busy['processed']:.0f} commands, "
                f"{busy['bytes'] / 1e3:.1f} kB, Redis CPU {busy['cpu'] * 1e3:.1f} ms, controller CPU "
                f"{busy['ctl_cpu'] * 1e3:.1f} ms; {top(busy['cmds'])}"
            )
            end_sweep(senv.store, sid)
        return out
    finally:
        if ctl is not None:
            ctl.stop()
        workers.stop()
        senv.cleanup()


def part_history(url: str, q: bool, prefix: str) -> dict[str, Any]:
    """Re-reading logged values as a controller pass does (HGETALL + LRANGE 0 -1 per trial)."""
    from sweepq.store import Store

    senv = SweepqEnv(url, prefix=prefix)
    meter = Meter(senv.r)
    n_trials, values, reads = (4, 300, 5) if q else (20, HISTORY, 20)
    try:
        meter.baseline(0.5 if q else 2.0)
        st: Store = senv.store
        tids = [f"h{i}" for i in range(n_trials)]
        p = senv.r.pipeline(transaction=False)
        for tid in tids:
            p.hset(st.keys.trial(tid), mapping={"id": tid, "state": "running", "params": "{}"})
            p.rpush(st.keys.trial_history(tid), *[repr(0.5 + i * 1e-6) for i in range(values)])
        p.execute()
        res = {}
        for hist in (False, True):
            a = meter.start()
            c0 = time.thread_time()
            for _ in range(reads):
                st.get_trials(tids, history=hist)
            cpu = time.thread_time() - c0
            d = meter.stop(a)
            res[hist] = (per(d, n_trials * reads, 0), cpu / (n_trials * reads))
        (bare, bare_cpu), (full, full_cpu) = res[False], res[True]
        out = {
            "values": values,
            "per_value": {
                "cpu": (full["cpu"] - bare["cpu"]) / values,
                "bytes": (full["bytes"] - bare["bytes"]) / values,
                "ctl_cpu": (full_cpu - bare_cpu) / values,
            },
        }
        log(
            f"history: per value re-read {out['per_value']['cpu'] * 1e9:.0f} ns Redis CPU, "
            f"{out['per_value']['bytes']:.1f} B, {out['per_value']['ctl_cpu'] * 1e9:.0f} ns parse"
        )
        return out
    finally:
        senv.cleanup()


def part_passes(url: str, q: bool, prefix: str) -> dict[str, Any]:
    """What a controller pass costs per trial in flight in the sweep it looks at.

    Every event that is not passive (a trial's end, a metric write) brings a pass over its
    sweep, and a pass reads the sweep's whole in-flight set and walks its in-flight trials; the
    controller keeps two trials in flight per worker slot. Measured with ``n`` registered workers
    that consume nothing (so ``2n`` trials wait in flight) against a paused sweep with none, each
    with and without extra passes brought by events added to the stream at a fixed rate.
    """
    senv = SweepqEnv(url, prefix=prefix)
    meter = Meter(senv.r)
    n, rate, win = (10, 40.0, 1.0) if q else (200, 100.0, 8.0)
    ctl = None
    try:
        meter.baseline(0.5 if q else 3.0)
        names = [f"idle{i}@bench" for i in range(n)]
        for name in names:
            senv.store.register_worker(name, 1, ["sweepq"], ttl=3600.0)
        ctl = ControllerThread(senv.store, tick=TICK).start()
        passes = Passes(ctl)
        time.sleep(1.5)

        def measure(sid: str, poke: bool) -> dict[str, Any]:
            a, c0, p0 = meter.start(), ctl.cpu(), passes.n
            end = time.monotonic() + win
            nxt = time.monotonic()
            while time.monotonic() < end:
                if poke:
                    senv.r.xadd(senv.store.keys.events, {"sweep": sid, "trial": "", "kind": "poke"})
                nxt += 1.0 / rate
                time.sleep(max(0.0, nxt - time.monotonic()))
            d = meter.stop(a)
            d["ctl_cpu"], d["passes"] = ctl.cpu() - c0, passes.n - p0
            return d

        out: dict[str, Any] = {"inflight": 2 * n}
        per_pass = {}
        for label in ("none", "full"):
            if label == "none":
                sid = hidden_paused_sweep(senv.store, sweep_config(10, ECHO))
            else:
                senv.store.sweep_action(sid, "cancel")
                sid = senv.store.create_sweep(sweep_config(10**6, ECHO))
                key = senv.store.keys.sweep_inflight(sid)
                wait_for(lambda k=key: senv.r.scard(k) >= 2 * n, 30, "the trials in flight")
            time.sleep(1.0)
            quiet, busy = measure(sid, False), measure(sid, True)
            extra = busy["passes"] - quiet["passes"] * busy["dt"] / quiet["dt"]
            diff = less(busy, scaled(quiet, 1 / quiet["dt"]))
            pp = per(diff, extra, 0)
            pp["ctl_cpu"] = (busy["ctl_cpu"] - quiet["ctl_cpu"] * busy["dt"] / quiet["dt"]) / extra
            pp["passes_per_s"] = busy["passes"] / busy["dt"]
            per_pass[label] = pp
        out["per_pass"] = per_pass
        out["per_inflight"] = {
            k: (per_pass["full"][k] - per_pass["none"][k]) / (2 * n)
            for k in ("cpu", "processed", "bytes", "ctl_cpu")
        }
        pi = out["per_inflight"]
        log(
            f"passes: per pass per trial in flight {pi['bytes']:.1f} B, Redis CPU {pi['cpu'] * 1e9:.0f} ns, "
            f"controller CPU {pi['ctl_cpu'] * 1e9:.0f} ns (a pass with {2 * n} in flight: "
            f"{per_pass['full']['ctl_cpu'] * 1e3:.2f} ms controller CPU, {per_pass['full']['bytes'] / 1e3:.1f} kB)"
        )
        return out
    finally:
        if ctl is not None:
            ctl.stop()
        senv.cleanup()


def _resp(*parts: str) -> bytes:
    out = [f"*{len(parts)}\r\n".encode()]
    for s in parts:
        b = s.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


class Subscribers:
    """``n`` raw connections, each PSUBSCRIBEd to ``pattern``; one thread reads and drops what
    arrives (as a Celery worker's gossip consumer receives every worker's heartbeat)."""

    def __init__(self, url: str, pattern: str, n: int) -> None:
        from urllib.parse import urlparse

        u = urlparse(url)
        self.socks = []
        for _ in range(n):
            s = socket.create_connection((u.hostname or "127.0.0.1", u.port or 6379))
            if u.password:
                s.sendall(_resp("AUTH", u.password))
                s.recv(64)
            s.sendall(_resp("PSUBSCRIBE", pattern))
            s.setblocking(False)
            self.socks.append(s)
        self.stop = threading.Event()
        self.received = 0
        self.th = threading.Thread(target=self._drain, daemon=True)
        self.th.start()

    def _drain(self) -> None:
        import selectors

        sel = selectors.DefaultSelector()
        for s in self.socks:
            sel.register(s, selectors.EVENT_READ)
        while not self.stop.is_set():
            for key, _ in sel.select(0.2):
                with contextlib.suppress(BlockingIOError, OSError):
                    self.received += len(key.fileobj.recv(1 << 20))  # type: ignore[union-attr]

    def close(self) -> None:
        self.stop.set()
        self.th.join(5)
        for s in self.socks:
            with contextlib.suppress(OSError):
                s.close()


def part_fanout(url: str, q: bool, prefix: str, size: int) -> dict[str, Any]:
    """Redis CPU and bytes per PUBLISH of a ``size``-byte heartbeat, per pattern subscriber."""
    r = client(url)
    meter = Meter(r)
    meter.baseline(0.5 if q else 2.0)
    ns = f"{prefix}{secrets.token_hex(4)}"
    channel = f"{ns}:fan/worker.heartbeat"
    payload = "x" * size
    n_sub, n_pub = (10, 500) if q else (200, 3000)
    res = {}
    for p_subs in (0, n_sub):
        subs = Subscribers(url, f"{ns}:fan/worker.*", p_subs) if p_subs else None
        try:
            time.sleep(0.3)
            a = meter.start()
            for i in range(n_pub):
                r.publish(channel, payload)
                if i % 50 == 49:
                    time.sleep(0.005)  # let the subscribers' reader keep up
            time.sleep(0.3)
            res[p_subs] = per(meter.stop(a), n_pub, 0)
        finally:
            if subs is not None:
                subs.close()
    one, many = res[0], res[n_sub]
    out = {
        "size": size,
        "subscribers": n_sub,
        "publish": {"cpu": one["cpu"], "bytes": one["bytes"]},
        "per_subscriber": {
            "cpu": (many["cpu"] - one["cpu"]) / n_sub,
            "bytes": (many["bytes"] - one["bytes"]) / n_sub,
        },
    }
    log(
        f"fan-out: PUBLISH {out['publish']['cpu'] * 1e6:.1f} us, per pattern subscriber "
        f"{out['per_subscriber']['cpu'] * 1e6:.2f} us and {out['per_subscriber']['bytes']:.0f} B"
    )
    return out


# -- part B: the model ----------------------------------------------------------------------------
def settle(costs: dict[str, Any]) -> None:
    """Redis CPU of the units too light to measure with a few real workers (an idle worker: ~200
    commands a minute, a busy one ~1,300; an idle sweep's pass: 2 commands), whose deltas over
    their windows are within the jitter of the server's own CPU (a few ms a second here): their
    commands times the CPU per command of the trial path (tens of thousands of commands in a
    second or two, measured). The direct readings stay as ``cpu_measured``."""
    trial = costs["lean"]["trial"]
    per_cmd = trial["cpu"] / trial["processed"]
    costs["cpu_per_command"] = per_cmd
    units = [costs["controller"]["per_sweep_pass"], costs["lean"]["busy_per_min"]] + [
        costs[k]["idle_per_min"] for k in ("lean", "gossip") if k in costs
    ]
    for u in units:
        u.setdefault("cpu_measured", u["cpu"])
        u["cpu"] = u["processed"] * per_cmd


def model_idle(costs: dict[str, Any], w: float, gossip: bool = False) -> dict[str, float]:
    """Predicted per-second load of ``w`` idle workers and a controller with one paused sweep."""
    ctl, idle = costs["controller"], costs["lean"]["idle_per_min"]
    pps = ctl["passes_per_s"]
    out = {
        k: ctl["base"][k] + pps * ctl["per_sweep_pass"][k] + w * idle[k] / 60.0
        for k in ("cpu", "processed", "bytes", "ctl_cpu")
    }
    if gossip:
        fan = costs["fanout"]["per_subscriber"]
        out["cpu"] += w / CELERY_HEARTBEAT_S * w * fan["cpu"]
        out["bytes"] += w / CELERY_HEARTBEAT_S * w * fan["bytes"]
    return out


def model(
    costs: dict[str, Any], w: float, d: float, gossip: bool = False, sweeps: int = 1
) -> dict[str, float]:
    """Predicted per-second load of ``w`` workers running ``d``-second trials back to back."""
    ctl = costs["controller"]
    lean = costs["lean"]
    busy = lean["busy_per_min"]
    trial = (costs["gossip"] if gossip else lean)["trial"]
    hist = costs["history"]["per_value"]
    # every running trial is re-read with its whole history by a full pass each tick and by the
    # pass its metric event brings; its history grows at LOG_RATE (the busy measurement already
    # holds the re-reads of its own trials' histories)
    h = min(LOG_RATE * d / 2, HISTORY_CAP) - busy["mean_history"]
    reread = w * (1 / TICK + LOG_RATE) * h  # values re-read per second
    out: dict[str, float] = {}
    for k in ("cpu", "processed", "bytes"):
        base = ctl["base"][k] + sweeps * ctl["passes_per_s"] * ctl["per_sweep_pass"][k]
        out[k] = base + w * busy[k] / 60.0 + w / d * trial[k]
        if k in hist:
            out[k] += reread * hist[k]
    out["ctl_cpu"] = (
        ctl["base"]["ctl_cpu"]
        + sweeps * ctl["passes_per_s"] * ctl["per_sweep_pass"]["ctl_cpu"]
        + w * busy["ctl_cpu"] / 60.0
        + w / d * trial["ctl_cpu"]
        + reread * hist["ctl_cpu"]
    )
    if gossip:
        # an idle gossip worker sends what a lean one sends (measured: the same commands); gossip
        # adds the delivery of every worker's heartbeat to every worker
        fan = costs["fanout"]["per_subscriber"]
        out["cpu"] += w / CELERY_HEARTBEAT_S * w * fan["cpu"]
        out["bytes"] += w / CELERY_HEARTBEAT_S * w * fan["bytes"]
    # every trial end and metric write brings a pass (and every tick one more); each pass reads
    # the in-flight set and walks it: two trials per worker, beyond the few in flight when the
    # per-trial and busy costs were measured
    if "passes" in costs:
        pi = costs["passes"]["per_inflight"]
        passes = 1 / TICK + w / d + w * LOG_RATE
        more = 2 * w - busy["inflight_per_worker"] * costs["lean"]["workers"]
        for k in ("cpu", "processed", "bytes", "ctl_cpu"):
            out[k] += passes * more * pi[k]
    out["tps"] = w / d
    cmds: dict[str, float] = {}
    for src, f in (
        (ctl["base"]["cmds"], 1.0),
        (ctl["per_sweep_pass"]["cmds"], sweeps * ctl["passes_per_s"]),
        (busy["cmds"], w / 60.0),
        (trial["cmds"], w / d),
    ):
        for c, v in src.items():
            cmds[c] = cmds.get(c, 0.0) + v * f
    out["cmds"] = cmds  # type: ignore[assignment]
    return out


def workers_at(costs: dict[str, Any], d: float, key: str, limit: float, gossip: bool = False) -> float:
    """The W at which ``key`` (cpu: Redis, ctl_cpu: controller) reaches ``limit`` of one core."""
    lo, hi = 0.0, 1e7
    if model(costs, lo, d, gossip)[key] >= limit:
        return 0.0
    for _ in range(100):
        mid = (lo + hi) / 2
        if model(costs, mid, d, gossip)[key] < limit:
            lo = mid
        else:
            hi = mid
    return lo


# -- part C: the stand-in fleet -------------------------------------------------------------------
def fleet_main(spec: dict[str, Any]) -> None:
    """One process of stand-in workers; stops when its stdin closes, then prints its counts."""
    import redis

    from sweepq.executor import BEAT_SHARE
    from sweepq.store import Store
    from sweepq.store.connection import connect

    threading.stack_size(512 * 1024)
    url, ns, names, dur = spec["url"], spec["ns"], spec["names"], float(spec["trial_s"])
    gossip = bool(spec["gossip"])
    lease_ttl = float(spec["lease_ttl"])
    # one connection per blocked thread: more than redis-py's default pool of 100
    store = Store(client=connect(url, max_connections=4096), namespace=ns, url=url)
    raw = redis.Redis.from_url(url, max_connections=4096)
    prefix = store.keys.celery_prefix
    queue = prefix + spec["queue"]
    qkeys = [queue] + [f"{queue}{PRIORITY_SEP}{p}" for p in (3, 6, 9)]
    unacked, unacked_index = prefix + "unacked", prefix + "unacked_index"
    hb_channel = spec["hb_channel"]
    hb = "x" * spec["hb_size"]  # a worker-heartbeat event's size
    stop = threading.Event()
    stats = {"trials": 0, "not_claimed": 0, "messages": 0, "errors": 0}
    lock = threading.Lock()

    def publish_event(kind: str, size: int) -> None:
        raw.publish(spec["task_channel"].replace("KIND", kind), "x" * size)

    def run_one(name: str, sid: str, tid: str, length: float) -> None:
        """A trial of ``length`` seconds as the runner runs one: the claim, then a loop of lease
        renewals, metric writes (one value each 1/LOG_RATE s) and 1 s waits on the stop list,
        the program's exit pushed on that list, and the final write."""
        owner = f"{name}:{os.getpid()}:{secrets.token_hex(4)}"
        claim = store.claim(sid, tid, owner, name, lease_ttl)
        if not claim.ok:
            with lock:
                stats["not_claimed"] += 1
            return
        start = time.monotonic()
        last_beat = start
        next_log = start + 1.0 / LOG_RATE
        pending = 0
        while not stop.is_set():
            now = time.monotonic()
            left = start + length - now
            while now >= next_log and next_log <= start + length:
                pending += 1
                next_log += 1.0 / LOG_RATE
            if left <= 1.0:
                time.sleep(max(0.0, left))
                store.notify_exited(tid)  # the program ended while the loop waited
                store.wait_stop(tid, 1.0)
                break
            if now - last_beat >= lease_ttl * BEAT_SHARE:
                store.heartbeat(tid, owner, lease_ttl)
                last_beat = now
            if pending:
                store.log_metrics(sid, tid, owner, [0.5] * pending, [json.dumps({"loss": 0.5})] * pending)
                pending = 0
            store.wait_stop(tid, 1.0)
        store.finish_trial(
            sid,
            tid,
            owner,
            "finished",
            0,
            values=[0.5] * pending,
            rows=[json.dumps({"loss": 0.5})] * pending,
        )
        with lock:
            stats["trials"] += 1

    def consume(name: str, seed: int) -> None:
        import random

        rng = random.Random(seed)
        while not stop.is_set():
            try:
                got = raw.brpop(qkeys, timeout=1)
                if got is None:
                    continue
                payload = got[1]
                msg = json.loads(payload)
                tag = msg["properties"]["delivery_tag"]
                p = raw.pipeline()
                p.zadd(unacked_index, {tag: time.time()})
                p.hset(unacked, tag, json.dumps([payload.decode(), "", spec["queue"]]))
                p.execute()
                with lock:
                    stats["messages"] += 1
                args = json.loads(base64.b64decode(msg["body"]))[0]
                # -E (every worker sweepq starts): Celery 5 sends task events grouped, on task.multi
                publish_event("multi", spec["task_event_size"])
                publish_event("multi", spec["task_event_size"])
                for tid in args[1:]:
                    # lengths spread over [D/2, 3D/2] (mean D), so the stand-ins do not end
                    # their trials in lockstep
                    run_one(name, args[0], tid, dur * rng.uniform(0.5, 1.5))
                publish_event("multi", spec["task_event_size"])
                p = raw.pipeline()
                p.zrem(unacked_index, tag)
                p.hdel(unacked, tag)
                p.execute()
            except Exception:  # a stand-in never dies: count it and go on
                with lock:
                    stats["errors"] += 1
                time.sleep(0.1)

    def beats() -> None:
        """Every stand-in's periodic traffic, spread over each period: Celery's heartbeat event
        and sweepq's registry beat (as the worker's heartbeat thread: renew, then check)."""
        n = len(names)
        t0 = time.monotonic()
        sent_hb = [0] * n
        sent_reg = [0] * n
        reg_every = float(spec["registry_every"])
        while not stop.wait(0.02):
            el = time.monotonic() - t0
            for i, name in enumerate(names):
                due_hb = int((el + i * CELERY_HEARTBEAT_S / n) / CELERY_HEARTBEAT_S)
                if hb and due_hb > sent_hb[i]:
                    sent_hb[i] = due_hb
                    raw.publish(hb_channel, hb)
                due_reg = int((el + i * reg_every / n) / reg_every)
                if due_reg > sent_reg[i]:
                    sent_reg[i] = due_reg
                    store.worker_heartbeat(name, ttl=float(spec["worker_ttl"]))
                    store.worker_registered(name)

    subs = Subscribers(url, spec["hb_pattern"], len(names)) if gossip else None
    for name in names:
        store.register_worker(name, 1, [spec["queue"]], ttl=float(spec["worker_ttl"]))
    threads = [
        threading.Thread(target=consume, args=(nm, spec["seed"] + i), daemon=True)
        for i, nm in enumerate(names)
    ]
    threads.append(threading.Thread(target=beats, daemon=True))
    for t in threads:
        t.start()
    print("ready", flush=True)
    sys.stdin.read()
    stop.set()
    for t in threads:
        t.join(dur + 5)
    for name in names:
        store.unregister_worker(name)
    if subs is not None:
        subs.close()
    print(json.dumps(stats), flush=True)


class Fleet:
    """Stand-in workers in ``procs`` processes of this script (``--fleet``)."""

    def __init__(
        self, senv: SweepqEnv, n: int, trial_s: float, gossip: bool, shape: dict[str, Any], procs: int = 2
    ):
        self.procs: list[subprocess.Popen] = []
        names = [f"sim{i}-{secrets.token_hex(2)}@bench" for i in range(n)]
        for j in range(procs):
            spec = {
                "url": senv.url,
                "ns": senv.ns,
                "names": names[j::procs],
                "seed": 1000 * j,
                "trial_s": trial_s,
                "gossip": gossip,
                "queue": "sweepq",
                "lease_ttl": float(os.environ.get("SWEEPQ_LEASE_TTL") or 30.0),
                "worker_ttl": 15.0,
                "registry_every": 5.0,
                **shape,
            }
            self.procs.append(
                subprocess.Popen(
                    [sys.executable, __file__, "--fleet", json.dumps(spec)],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    env=senv.env,
                    start_new_session=True,
                    text=True,
                )
            )
        for p in self.procs:
            line = p.stdout.readline() if p.stdout else ""
            if line.strip() != "ready":
                raise RuntimeError("a stand-in process did not start")

    def cpu(self) -> float:
        return sum(proc_cpu(p.pid) for p in self.procs)

    def stop(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for p in self.procs:
            with contextlib.suppress(OSError):
                if p.stdin:
                    p.stdin.close()
        for p in self.procs:
            try:
                p.wait(60)
                out = p.stdout.read() if p.stdout else ""
                for k, v in json.loads(out.strip().splitlines()[-1]).items():
                    total[k] = total.get(k, 0) + v
            except Exception as exc:
                log(f"a stand-in process did not stop cleanly: {exc!r}")
                with contextlib.suppress(OSError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait(5)
        return total


def celery_shape(url: str, ns: str) -> dict[str, Any]:
    """The channel names and sizes of Celery's events on this broker, as a real worker sends them."""
    db = int(url.rsplit("/", 1)[-1] or 0) if url.rsplit("/", 1)[-1].isdigit() else 0
    prefix = f"{ns}:celery:"
    return {
        "hb_channel": f"{prefix}/{db}.celeryev/worker.heartbeat",
        "hb_pattern": f"{prefix}/{db}.celeryev/worker.*",
        "task_channel": f"{prefix}/{db}.celeryev/task.KIND",
    }


def part_sim(
    url: str, q: bool, prefix: str, costs: dict[str, Any], w: int, d: float, gossip: bool
) -> dict[str, Any]:
    senv = SweepqEnv(url, prefix=prefix)
    meter = Meter(senv.r)
    win, idle_win = (2.0, 1.0) if q else (45.0, 20.0)
    ctl = fleet = None
    sizes = costs["gossip" if gossip else "lean"]["event_sizes"]
    shape = celery_shape(url, senv.ns) | {
        "hb_size": int(sizes.get("heartbeat", 0)),
        "task_event_size": int(sizes.get("multi", 0)),
    }
    try:
        meter.baseline(0.5 if q else 3.0)
        fleet = Fleet(senv, w, d, gossip, shape)
        ctl = ControllerThread(senv.store, tick=TICK).start()
        paused = hidden_paused_sweep(senv.store, sweep_config(10, ECHO))
        time.sleep(2.5)  # leader lease, the sweep loaded, every stand-in's first beats
        a, c0 = meter.start(), ctl.cpu()
        time.sleep(idle_win)
        m = meter.stop(a)
        idle_meas = {
            "cpu": m["cpu"] / m["dt"],
            "processed": m["processed"] / m["dt"],
            "bytes": (m["net_in"] + m["net_out"]) / m["dt"],
            "ctl_cpu": (ctl.cpu() - c0) / m["dt"],
        }
        idle_pred = model_idle(costs, w, gossip)
        idle_err = {k: 100.0 * (idle_pred[k] - v) / v if v else float("nan") for k, v in idle_meas.items()}
        log(
            f"sim {'gossip' if gossip else 'lean'} W={w} idle: Redis CPU predicted {idle_pred['cpu'] * 100:.2f} % "
            f"measured {idle_meas['cpu'] * 100:.2f} % ({idle_err['cpu']:+.0f} %); commands/s "
            f"{idle_pred['processed']:.0f} vs {idle_meas['processed']:.0f} ({idle_err['processed']:+.0f} %); kB/s "
            f"{idle_pred['bytes'] / 1e3:.0f} vs {idle_meas['bytes'] / 1e3:.0f} ({idle_err['bytes']:+.0f} %)"
        )
        senv.store.sweep_action(paused, "cancel")
        sid = senv.store.create_sweep(sweep_config(10**6, ECHO))
        # ramp: every stand-in busy, one trial's length so that trials end at a steady rate
        wait_for(lambda: senv.store.counts(sid)["running"] >= 0.95 * w, 30 + w / 10, "the stand-ins busy")
        time.sleep(min((1 if q else 2) * d, 15.0))  # the first trials' ends spread out
        a, c0, f0, n0 = meter.start(), ctl.cpu(), fleet.cpu(), done_count(senv.store, sid)
        time.sleep(win)
        m = meter.stop(a)
        ended = done_count(senv.store, sid) - n0
        ctl_cpu = ctl.cpu() - c0
        fleet_cpu = fleet.cpu() - f0
        running = senv.store.counts(sid)["running"]
        end_sweep(senv.store, sid)
        pred = model(costs, w, d, gossip)
        meas = {
            "cpu": m["cpu"] / m["dt"],
            "processed": m["processed"] / m["dt"],
            "bytes": (m["net_in"] + m["net_out"]) / m["dt"],
            "ctl_cpu": ctl_cpu / m["dt"],
            "tps": ended / m["dt"],
        }
        pred_cmds = pred.pop("cmds")
        err = {k: 100.0 * (pred[k] - meas[k]) / meas[k] if meas[k] else float("nan") for k in meas}
        out = {
            "workers": w,
            "trial_s": d,
            "gossip": gossip,
            "window_s": m["dt"],
            "predicted": pred,
            "measured": meas,
            "error_pct": err,
            "cmds_per_s": {c: v / m["dt"] for c, v in m["cmds"].items() if v > 0},
            "cmds_predicted": {c: v for c, v in pred_cmds.items() if v > 0.05},
            "fleet_cpu": fleet_cpu / m["dt"],
            "idle": {"predicted": idle_pred, "measured": idle_meas, "error_pct": idle_err},
            "running_at_end": running,
        }
        log(
            f"sim {'gossip' if gossip else 'lean'} W={w} D={d}: Redis CPU predicted {pred['cpu'] * 100:.1f} % "
            f"measured {meas['cpu'] * 100:.1f} % ({err['cpu']:+.0f} %); commands/s {pred['processed']:.0f} vs "
            f"{meas['processed']:.0f} ({err['processed']:+.0f} %); controller {pred['ctl_cpu'] * 100:.1f} % vs "
            f"{meas['ctl_cpu'] * 100:.1f} % ({err['ctl_cpu']:+.0f} %); trials/s {pred['tps']:.1f} vs {meas['tps']:.1f}; "
            f"stand-ins {out['fleet_cpu'] * 100:.0f} % CPU"
        )
        return out
    finally:
        if ctl is not None:
            ctl.stop()
        if fleet is not None:
            stats = fleet.stop()
            log(f"stand-ins: {stats}")
        senv.cleanup()


# -- main -----------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny sizes and windows (a smoke test)")
    ap.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "capacity.json"))
    ap.add_argument("--redis", default=os.environ.get("SWEEPQ_BENCH_REDIS", DEFAULT_REDIS))
    ap.add_argument("--sim-workers", type=int, default=None, help="stand-ins (default 200; --quick 20)")
    ap.add_argument("--sim-trial", type=float, default=None, help="trial seconds (default 5; --quick 2)")
    ap.add_argument("--prefix", default="sqcap", help="namespace prefix of every run")
    ap.add_argument("--costs", help="take part A's costs from this earlier --json file")
    ap.add_argument("--fleet", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.fleet:
        fleet_main(json.loads(a.fleet))
        return 0
    q = a.quick
    w_sim = a.sim_workers or (20 if q else 200)
    d_sim = a.sim_trial or (2.0 if q else 5.0)
    t_start = time.monotonic()
    log(f"start: {machine_load()}")
    res: dict[str, Any] = {"load_start": machine_load(), "quick": q}
    sims = [(w_sim, d_sim, False)]
    if a.costs:  # part A from an earlier run: the model and the check only
        costs = json.loads(Path(a.costs).read_text())["costs"]
    else:
        costs = {"controller": part_controller(a.redis, q, a.prefix)}
        costs["lean"] = part_workers(a.redis, q, a.prefix, False, costs["controller"])
        costs["history"] = part_history(a.redis, q, a.prefix)
        costs["passes"] = part_passes(a.redis, q, a.prefix)
        if not q:  # the gossip flags need more workers and time than a smoke test has
            costs["gossip"] = part_workers(a.redis, q, a.prefix, True, costs["controller"])
            costs["fanout"] = part_fanout(
                a.redis, q, a.prefix, int(costs["gossip"]["event_sizes"]["heartbeat"])
            )
    if "gossip" in costs:
        sims.append((w_sim, d_sim, True))
    settle(costs)
    res["costs"] = costs
    res["sims"] = [part_sim(a.redis, q, a.prefix, costs, w, d, dep) for w, d, dep in sims]
    res["load_end"] = machine_load()
    res["wall_s"] = time.monotonic() - t_start
    report(res)
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(res, indent=1, default=str))
    return 0


def capacity_rows(costs: dict[str, Any], gossip: bool) -> list[list[Any]]:
    rows = []
    for label, d in (("1 s", 1.0), ("1 min", 60.0), ("1 h", 3600.0)):
        at100 = model(costs, 100, d, gossip)
        w_redis = workers_at(costs, d, "cpu", 0.5, gossip)
        w_ctl = workers_at(costs, d, "ctl_cpu", 0.5, gossip)
        rows.append(
            [
                label,
                at100["tps"],
                at100["cpu"] * 100,
                at100["processed"],
                at100["bytes"] / 1e3,
                at100["ctl_cpu"] * 100,
                w_redis,
                w_redis / d,
                w_ctl,
            ]
        )
    return rows


def report(res: dict[str, Any]) -> None:
    c = res["costs"]
    ms = 1e3
    print(
        f"\n{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; at start {res['load_start']}; at end {res['load_end']}\n"
    )
    ctl = c["controller"]
    print("Per-unit costs (Redis: CPU, commands incl. script-internal calls, bytes in+out):\n")
    rows = [
        [
            "controller, no sweep, per s",
            ctl["base"]["cpu"] * ms,
            ctl["base"]["processed"],
            ctl["base"]["bytes"],
            ctl["base"]["ctl_cpu"] * ms,
        ],
        [
            "per active sweep per pass (idle)",
            ctl["per_sweep_pass"]["cpu"] * ms,
            ctl["per_sweep_pass"]["processed"],
            ctl["per_sweep_pass"]["bytes"],
            ctl["per_sweep_pass"]["ctl_cpu"] * ms,
        ],
    ]
    kinds = [k for k in ("lean", "gossip") if k in c]
    for kind in kinds:
        k = c[kind]
        i = k["idle_per_min"]
        rows.append(
            [f"{kind} idle worker, per min", i["cpu"] * ms, i["processed"], i["bytes"], i["ctl_cpu"] * ms]
        )
        t = k["trial"]
        rows.append(
            [f"{kind} trial (1 per message)", t["cpu"] * ms, t["processed"], t["bytes"], t["ctl_cpu"] * ms]
        )
        if "busy_per_min" in k:
            b = k["busy_per_min"]
            rows.append(
                [f"{kind} busy worker, per min", b["cpu"] * ms, b["processed"], b["bytes"], b["ctl_cpu"] * ms]
            )
    h = c["history"]["per_value"]
    rows.append(["one logged value re-read by a pass", h["cpu"] * ms, 0.0, h["bytes"], h["ctl_cpu"] * ms])
    if "fanout" in c:
        f = c["fanout"]["per_subscriber"]
        rows.append(["a PUBLISH, per pattern subscriber", f["cpu"] * ms, 0.0, f["bytes"], None])
    print(table(["unit", "Redis CPU ms", "commands", "bytes", "controller CPU ms"], rows, 3))
    print()
    for kind in kinds:
        print(f"{kind} command mix: idle worker per min: {top(c[kind]['idle_per_min']['cmds'], 20)}")
        print(f"{kind} command mix: per trial: {top(c[kind]['trial']['cmds'], 25)}")
    print(f"lean command mix: busy worker per min: {top(c['lean']['busy_per_min']['cmds'], 20)}\n")
    for gossip in [False, True][: len(kinds)]:
        print(
            f"Model, {'gossip flags (gossip, -E)' if gossip else 'lean workers'}; trials log {LOG_RATE:g} value/s:\n"
        )
        print(
            table(
                [
                    "trial length",
                    "trials/s at W=100",
                    "Redis CPU % at W=100",
                    "commands/s",
                    "kB/s",
                    "controller CPU % at W=100",
                    "W at Redis 50 %",
                    "trials/s there",
                    "W at controller 50 %",
                ],
                capacity_rows(c, gossip),
                1,
            )
        )
        print()
    print("Simulation check (model's prediction against the measured fleet):\n")
    rows = []
    quantities = (
        ("cpu", "Redis CPU %", 100),
        ("processed", "commands/s", 1),
        ("bytes", "kB/s", 1e-3),
        ("ctl_cpu", "controller CPU %", 100),
        ("tps", "trials/s", 1),
    )
    for s in res["sims"]:
        kind = "gossip" if s["gossip"] else "lean"
        for phase, rec in (
            (f"{kind} W={s['workers']} idle", s["idle"]),
            (f"{kind} W={s['workers']} D={s['trial_s']:g} s", s),
        ):
            for k, label, f in quantities:
                if k in rec["measured"]:
                    rows.append(
                        [phase, label, rec["predicted"][k] * f, rec["measured"][k] * f, rec["error_pct"][k]]
                    )
    print(table(["fleet", "quantity", "predicted", "measured", "error %"], rows, 1))
    for s in res["sims"]:
        got, want = s["cmds_per_s"], s["cmds_predicted"]
        names = sorted(set(got) | set(want), key=lambda c: -max(got.get(c, 0), want.get(c, 0)))[:16]
        print(
            f"\n{'gossip' if s['gossip'] else 'lean'} fleet, commands/s predicted → measured: "
            + ", ".join(f"{c} {want.get(c, 0):.0f} → {got.get(c, 0):.0f}" for c in names)
        )


if __name__ == "__main__":
    sys.exit(main())
