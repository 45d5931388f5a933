"""Dispatch overhead: the same no-op workload through sweepq and through Optuna's shared storages.

Usage::

    .venv/bin/python benchmarks/dispatch.py [--trials 500] [--workers 1,2,4]
        [--systems floor,sweepq,sweepq-single,optuna-journal-redis,optuna-rdb-pg] [--redis redis://127.0.0.1:6379/10]
        [--pg postgresql+psycopg2://postgres@127.0.0.1:5432/test] [--program echo|python]
        [--pool prefork|solo] [--json raw.json]

The RDB runs need a PostgreSQL driver: ``pip install psycopg2-binary``.

Workload: random search over three parameters; every trial is one short subprocess that reports
one metric value (``/bin/echo '@sweepq {"loss": 0.5}'``: sweepq parses it from stdout; Optuna's
loop runs the same argv and ``tell``s 0.5). ``--program python`` runs ``python -c`` with the same
line instead (interpreter start-up included).

* floor: the program spawned directly, as the runner does (own session, pipes), one at a time.
* sweepq: a ``Controller`` thread in this process (tick 0.5 s, as ``sweepq controller``) and
  ``W`` real ``celery -A sweepq.worker worker -c 1`` processes on the real Redis, fresh namespace.
  Trial times are the store's ``started_at`` (claim) and ``ended_at`` (final write). With
  sweepq's defaults, once 2 trials have finished these few-millisecond trials go up to 32 to a
  Celery message (2, 4, 8, 16 while fewer than 6 have finished) (short-trial batching, docs/reliability.md "Very short trials"), and a batch's
  next trial is claimed with the previous one's final write (so its idle gap is ~0: the claim
  comes first, then the spawn, counted in the overhead).
* sweepq-single: the same with ``batch_max=1``: one trial per Celery message, as for any trial of
  25 ms or more: what a message costs on its own.
* optuna-journal-redis / optuna-rdb-pg: ``W`` processes, each a loop of ``ask`` + 3 ``suggest_*``
  + the subprocess + ``tell`` on one shared study (RandomSampler), ``JournalStorage
  (JournalRedisBackend)`` on the same Redis, or ``RDBStorage`` on PostgreSQL. Trial times are
  Optuna's ``datetime_start`` (ask) and ``datetime_complete`` (tell).

Metrics (per worker slot, trials in start order):
* trials/s: trials / (wall time from the start signal to the last trial's end);
* first N trials/s (``--first``, 1,000): N / (the N-th trial end - the start signal), the start of
  a sweep included (first suggestions, short-trial batching not yet on); first start: the start
  signal to the first trial's start (sweepq: the sweep's creation; Optuna: the processes' go);
* overhead: (next trial's start - this trial's start) - median floor, i.e. everything the system
  adds to a trial's cycle beyond spawning the program (median, p95);
* idle gap: next trial's start - this trial's end on the same worker (median, p95);
* CPU per trial: sweepq's controller thread (``pthread_getcpuclockid``); worker side = the Celery
  worker processes (main + pool child; sweepq) or the Optuna loop processes (``process_time``),
  the trial programs themselves excluded; server = Redis ``INFO cpu`` delta (minus the rate
  measured idle just before, since the server is shared), or the PostgreSQL processes' CPU.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import multiprocessing as mp
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import (  # noqa: E402
    DEFAULT_REDIS,
    ControllerThread,
    SweepqEnv,
    Workers,
    client,
    delete_namespace,
    log,
    machine_load,
    med,
    new_namespace,
    pct,
    proc_cpu,
    redis_cpu,
    redis_idle_cpu_rate,
    slot_gaps,
    spawn_floor,
    table,
)

DEFAULT_PG = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
LINE = '@sweepq {"loss": 0.5}'
PARAMS = {
    "lr": {"distribution": "log_uniform_values", "min": 1e-5, "max": 1e-1},
    "layers": {"distribution": "int_uniform", "min": 1, "max": 8},
    "dropout": {"distribution": "uniform", "min": 0.0, "max": 0.5},
}


def program_argv(kind: str) -> list[str]:
    if kind == "python":
        return [sys.executable, "-c", f"print({LINE!r})"]
    return ["/bin/echo", LINE]


# -- sweepq ---------------------------------------------------------------------------------------
def run_sweepq(
    url: str,
    n_trials: int,
    n_workers: int,
    argv: list[str],
    floor: float,
    pool: str = "prefork",
    batch_max: int | None = None,
) -> dict[str, Any]:
    from sweepq.config import load_config

    senv = SweepqEnv(url, prefix="sqdisp")
    workers = Workers(senv, n_workers, pool=pool)
    ctl = None
    try:
        workers.start()
        idle = redis_idle_cpu_rate(senv.r, 2.0)
        ctl = ControllerThread(
            senv.store, tick=0.5, **({} if batch_max is None else {"batch_max": batch_max})
        ).start()
        time.sleep(1.0)  # leader lease taken, first idle tick done
        config = load_config(
            {
                "method": "random",
                "metric": {"name": "loss", "goal": "minimize"},
                "parameters": PARAMS,
                "command": argv,
                "run_cap": n_trials,
            }
        )
        c_ctl, c_red, c_wrk = ctl.cpu(), redis_cpu(senv.r), workers.cpu()
        t0 = time.time()
        sid = senv.store.create_sweep(config)
        deadline = time.monotonic() + max(120.0, n_trials * 2.0)
        while True:
            counts = senv.store.counts(sid)
            done = sum(v for k, v in counts.items() if k not in ("queued", "running"))
            if done >= n_trials:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"sweepq run timed out: {counts}")
            time.sleep(0.25)
        t1 = time.time()
        d_ctl, d_red, d_wrk = ctl.cpu() - c_ctl, redis_cpu(senv.r) - c_red, workers.cpu() - c_wrk
        trials = senv.store.get_trials(senv.store.trial_ids(sid), history=False)
        bad = [t for t in trials if t["state"] != "finished" or t["metric"] is None]
        if bad:
            raise RuntimeError(f"{len(bad)} trials not finished with a metric, e.g. {bad[0]}")
        wall = max(t["ended_at"] for t in trials) - t0
        cycles, gaps = slot_gaps(trials)
        name = "sweepq" if pool == "prefork" else f"sweepq (-P {pool})"
        if batch_max == 1:
            name += ", 1 trial/message"
        return {
            "system": name,
            "workers": n_workers,
            "trials": len(trials),
            "wall": wall,
            "batched": ctl.ctl.stats["batched"] / len(trials),
            "tps": len(trials) / wall,
            "cycles": cycles,
            "gaps": gaps,
            "floor": floor,
            "ctl_cpu": d_ctl / len(trials),
            "wrk_cpu": d_wrk / len(trials),
            "srv_cpu": max(0.0, d_red - idle * (t1 - t0)) / len(trials),
            "suggest_s": med(list(ctl.ctl.stats["suggest_s"])),
            "in_trial": med([t["ended_at"] - t["started_at"] for t in trials]),
            "ends": sorted(t["ended_at"] - t0 for t in trials),
            "first_start": min(t["started_at"] for t in trials) - t0,
        }
    finally:
        if ctl is not None:
            ctl.stop()
        workers.stop()
        senv.cleanup()


# -- Optuna ---------------------------------------------------------------------------------------
def _optuna_storage(kind: str, url: str, prefix: str) -> Any:
    import optuna

    if kind == "optuna-journal-redis":
        from optuna.storages.journal import JournalRedisBackend

        return optuna.storages.JournalStorage(JournalRedisBackend(url, prefix=prefix))
    return optuna.storages.RDBStorage(url)


def _optuna_worker(
    kind: str,
    url: str,
    prefix: str,
    study_name: str,
    n: int,
    argv: list[str],
    ready: Any,
    go: Any,
    done: Any,
    out: Any,
) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = _optuna_storage(kind, url, prefix)
    study = optuna.load_study(study_name=study_name, storage=storage, sampler=optuna.samplers.RandomSampler())
    ready.release()
    go.wait()
    cpu0 = time.process_time()
    nums = []
    for _ in range(n):
        trial = study.ask()
        trial.suggest_float("lr", 1e-5, 1e-1, log=True)
        trial.suggest_int("layers", 1, 8)
        trial.suggest_float("dropout", 0.0, 0.5)
        proc = subprocess.run(
            argv, stdin=subprocess.DEVNULL, capture_output=True, start_new_session=True, check=False
        )
        value = float(json.loads(proc.stdout.decode().split(" ", 1)[1])["loss"])
        study.tell(trial, value)
        nums.append(trial.number)
    out.put((os.getpid(), nums, time.process_time() - cpu0))
    done.wait()  # keep the connection open until the parent has read the server's CPU


def _pg_cpu() -> float:
    """CPU of every postgres process on the machine (the server is local; other users' queries
    are included, so an idle rate is subtracted)."""
    total = 0.0
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/comm") as f:
                if f.read().strip() not in ("postgres", "postmaster"):
                    continue
        except OSError:
            continue
        total += proc_cpu(int(d))
    return total


def run_optuna(
    kind: str, url: str, pg: str, n_trials: int, n_workers: int, argv: list[str], floor: float
) -> dict[str, Any]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    prefix = new_namespace("optbench")
    study_name = prefix
    surl = url if kind == "optuna-journal-redis" else pg
    storage = _optuna_storage(kind, surl, prefix)
    optuna.create_study(
        study_name=study_name, storage=storage, direction="minimize", sampler=optuna.samplers.RandomSampler()
    )
    r = client(url)
    srv_cpu = (lambda: redis_cpu(r)) if kind == "optuna-journal-redis" else _pg_cpu
    t_idle = time.monotonic()
    c_idle = srv_cpu()
    time.sleep(2.0)
    idle = max(0.0, (srv_cpu() - c_idle) / (time.monotonic() - t_idle))
    ctx = mp.get_context("fork")
    ready, go, done, out = ctx.Semaphore(0), ctx.Event(), ctx.Event(), ctx.Queue()
    per = [n_trials // n_workers + (1 if i < n_trials % n_workers else 0) for i in range(n_workers)]
    procs = [
        ctx.Process(
            target=_optuna_worker, args=(kind, surl, prefix, study_name, per[i], argv, ready, go, done, out)
        )
        for i in range(n_workers)
    ]
    try:
        for p in procs:
            p.start()
        for _ in procs:
            if not ready.acquire(timeout=120):
                raise RuntimeError("optuna workers did not start")
        c_srv = srv_cpu()
        t0 = time.time()
        go.set()
        results = [out.get(timeout=max(120.0, n_trials * 2.0)) for _ in procs]
        t1 = time.time()
        d_srv = srv_cpu() - c_srv
        done.set()
        for p in procs:
            p.join(30)
        study = optuna.load_study(study_name=study_name, storage=storage)
        by_num = {t.number: t for t in study.get_trials(deepcopy=False)}
        trials = []
        for pid, nums, _ in results:
            for n in nums:
                t = by_num[n]
                trials.append(
                    {
                        "worker": pid,
                        "started_at": t.datetime_start.timestamp(),
                        "ended_at": t.datetime_complete.timestamp(),
                    }
                )
        wall = max(t["ended_at"] for t in trials) - t0
        cycles, gaps = slot_gaps(trials)
        return {
            "system": kind,
            "workers": n_workers,
            "trials": len(trials),
            "wall": wall,
            "tps": len(trials) / wall,
            "cycles": cycles,
            "gaps": gaps,
            "floor": floor,
            "ctl_cpu": None,
            "wrk_cpu": sum(c for _, _, c in results) / len(trials),
            "srv_cpu": max(0.0, d_srv - idle * (t1 - t0)) / len(trials),
            "suggest_s": None,
            "in_trial": med([t["ended_at"] - t["started_at"] for t in trials]),
            "ends": sorted(t["ended_at"] - t0 for t in trials),
            "first_start": min(t["started_at"] for t in trials) - t0,
        }
    finally:
        done.set()
        go.set()
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join(5)
        with contextlib.suppress(Exception):
            optuna.delete_study(study_name=study_name, storage=storage)
        if kind == "optuna-journal-redis":
            delete_namespace(r, prefix)


def first_rate(ends: list[float], n: int) -> float:
    """Trials per second over the first ``n`` trials to end: ``n`` / (the n-th end - the start
    signal). The start of a sweep (the first suggestions, batching not yet on) weighs more here."""
    n = min(n, len(ends))
    return n / ends[n - 1]


# -- main -----------------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=500)
    ap.add_argument("--workers", default="1,2,4")
    ap.add_argument("--systems", default="floor,sweepq,optuna-journal-redis,optuna-rdb-pg")
    ap.add_argument("--redis", default=os.environ.get("SWEEPQ_BENCH_REDIS", DEFAULT_REDIS))
    ap.add_argument("--pg", default=DEFAULT_PG)
    ap.add_argument("--program", choices=["echo", "python"], default="echo")
    ap.add_argument("--pool", default="prefork", help="Celery pool of the sweepq workers (prefork, solo)")
    ap.add_argument("--json", help="also write raw results here")
    ap.add_argument(
        "--first", type=int, default=1000, help="also report the rate over the first N trials to end"
    )
    a = ap.parse_args()
    argv = program_argv(a.program)
    systems = a.systems.split(",")
    workers = [int(x) for x in a.workers.split(",")]
    log(f"start: {machine_load()}")
    floors = spawn_floor(argv, 300)
    floor = med(floors)
    log(f"floor: median {floor * 1e3:.2f} ms, p95 {pct(floors, 0.95) * 1e3:.2f} ms")
    results: list[dict[str, Any]] = []
    for w in workers:
        for s in systems:
            if s == "floor":
                continue
            log(f"{s} x{w}: {a.trials} trials ({machine_load()})")
            if s in ("sweepq", "sweepq-single"):
                res = run_sweepq(
                    a.redis, a.trials, w, argv, floor, a.pool, 1 if s == "sweepq-single" else None
                )
            else:
                res = run_optuna(s, a.redis, a.pg, a.trials, w, argv, floor)
            res["load"] = os.getloadavg()[0]
            log(
                f"  {res['tps']:.1f} trials/s (first {a.first}: {first_rate(res['ends'], a.first):.1f}), gap median {med(res['gaps']) * 1e3:.1f} ms"
                + (
                    f", {100 * res['batched']:.0f} % of trials sent several to a message"
                    if "batched" in res
                    else ""
                )
            )
            results.append(res)
    ms = 1e3
    rows = []
    if "floor" in systems:
        rows.append(
            [
                "floor (spawn directly)",
                1,
                len(floors),
                1 / floor,
                None,
                None,
                0.0,
                0.0,
                floor * ms,
                None,
                None,
                None,
                None,
                None,
            ]
        )
    for r in results:
        over = [c - r["floor"] for c in r["cycles"]]
        rows.append(
            [
                r["system"],
                r["workers"],
                r["trials"],
                r["tps"],
                first_rate(r["ends"], a.first),
                r["first_start"] * ms,
                med(over) * ms,
                pct(over, 0.95) * ms,
                r["in_trial"] * ms,
                med(r["gaps"]) * ms,
                pct(r["gaps"], 0.95) * ms,
                None if r["ctl_cpu"] is None else r["ctl_cpu"] * ms,
                r["wrk_cpu"] * ms,
                r["srv_cpu"] * ms,
            ]
        )
    print(
        f"\n{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {machine_load()}; program: {' '.join(argv)}; "
        f"floor median {floor * ms:.2f} ms, p95 {pct(floors, 0.95) * ms:.2f} ms\n"
    )
    print(
        table(
            [
                "system",
                "workers",
                "trials",
                "trials/s",
                f"first {a.first:,} trials/s",
                "first start ms",
                "overhead p50 ms",
                "overhead p95 ms",
                "start→end p50 ms",
                "idle gap p50 ms",
                "idle gap p95 ms",
                "controller CPU ms/trial",
                "worker-side CPU ms/trial",
                "Redis/PG CPU ms/trial",
            ],
            rows,
        )
    )
    if a.json:
        Path(a.json).write_text(
            json.dumps(
                [
                    {k: v for k, v in r.items() if k not in ("cycles", "gaps")}
                    | {"first_tps": first_rate(r["ends"], a.first), "first_n": min(a.first, len(r["ends"]))}
                    | {"overhead": [c - r["floor"] for c in r["cycles"]], "gaps": r["gaps"]}
                    for r in results
                ]
            )
        )


if __name__ == "__main__":
    main()
