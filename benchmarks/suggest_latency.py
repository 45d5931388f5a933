"""Time per suggestion at 100, 500, 1000, 2000 completed trials (6-D Hartmann), sweepq vs peers.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/suggest_latency.py [--sizes 100,500,1000,2000] [--cycles 5]
        [--problem hartmann6|mixed|branin|rosenbrock10|levy10] [--running K] [--refits R]
        [--json results.json]

A fleet (issue 23: one suggestion with 2,000 finished and 32 running trials in 10 dimensions)::

    OMP_NUM_THREADS=1 python benchmarks/suggest_latency.py --problem levy10 --sizes 2000 \
        --running 32 --refits 5 --methods sweepq-bayes

``--problem mixed`` (log-scale, integer, categorical and ``q`` parameters) shows the cost of
what only such spaces pay, e.g. the second kernel fit that decides on log-pair features.

Method (as ``../shared/PEER-NOTES.md`` 3.1): preload N random completed trials, then one warm-up
cycle and ``--cycles`` timed cycles of "tell the previous result, suggest the next point" (the
history grows by one per cycle), which is what a controller pays per result. The warm-up cycle of
sweepq is reported separately as "cold": it is the first call of a fresh process, so it includes
fitting the kernel hyper-parameters, which later calls reuse until the refit schedule says
otherwise. Peers whose one suggestion takes minutes at large N are skipped there, and the output
says so. ``--running K`` gives ``sweepq-bayes`` K running trials (in flight, as a fleet has them).
``--refits R`` also times R calls of sweepq's bayes at a refit point (its memo of kernel
hyper-parameters cleared first, so the call fits them, as the refit schedule makes every ~15 %
of growth), median reported apart from the typical call.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _problems import PROBLEMS  # noqa: E402
from search_quality import (  # noqa: E402
    OptunaAdapter,
    WandbAdapter,
    numeric_stack,
    optuna_gp_available,
    sweepq_suggest_fn,
)

warnings.filterwarnings("ignore")
PROBLEM = PROBLEMS["hartmann6"]
#: Problems whose objective costs microseconds, so a cycle's time is the optimiser's.
CHEAP = ("hartmann6", "mixed", "branin", "rosenbrock10", "levy10")


def _random_points(n: int, seed: int) -> list[dict[str, Any]]:
    if PROBLEM.name == "hartmann6":  # uniform on the unit cube, from numpy's generator
        rng = np.random.default_rng(seed)
        return [{f"x{i}": float(v) for i, v in enumerate(row, 1)} for row in rng.random((n, 6))]
    from sweepq.search import random as random_search

    return random_search.suggest({"parameters": PROBLEM.parameters}, [], n, seed=seed)


class _Sweepq:
    def __init__(self, method: str, pending: int = 0):
        self.fn, self.how = sweepq_suggest_fn(method)
        self.config = {
            "method": method,
            "metric": dict(PROBLEM.metric),
            "parameters": PROBLEM.parameters,
            "program": "train.py",
        }
        self.trials: list[dict[str, Any]] = []
        self.pending = pending

    def preload(self, points: list[dict[str, float]]) -> None:
        for p in points:
            v = PROBLEM.objective(p)
            self.trials.append(
                {"id": str(len(self.trials)), "params": p, "state": "finished", "metric": v, "history": [v]}
            )
        for p in _random_points(self.pending, 99):
            self.trials.append(
                {"id": f"p{len(self.trials)}", "params": p, "state": "running", "metric": None, "history": []}
            )

    def cycle(self, seed: int) -> None:
        (p,) = self.fn(self.config, self.trials, n=1, seed=seed)
        v = PROBLEM.objective(p)
        self.trials.insert(
            len(self.trials) - self.pending,
            {"id": f"c{len(self.trials)}", "params": p, "state": "finished", "metric": v, "history": [v]},
        )


class _Peer:
    def __init__(self, adapter: Any):
        self.a = adapter

    def preload(self, points: list[dict[str, float]]) -> None:
        for p in points:
            self._tell_new(p)

    def _tell_new(self, p: dict[str, float]) -> None:
        if isinstance(self.a, WandbAdapter):
            import sweeps

            run = sweeps.SweepRun(
                name=f"r{len(self.a.runs)}",
                config={k: {"value": v} for k, v in p.items()},
                state=sweeps.RunState.running,
            )
            self.a.runs.append(run)
            self.a.tell(len(self.a.runs) - 1, PROBLEM.objective(p))
        else:
            import optuna

            t = optuna.trial.create_trial(params=p, distributions=self.a.dists, value=PROBLEM.objective(p))
            self.a.study.add_trial(t)

    def cycle(self, seed: int) -> None:
        h, p = self.a.ask()
        self.a.tell(h, PROBLEM.objective(p))


class _Skopt:
    """scikit-optimize with its defaults (GP, gp_hedge, lbfgs): the baseline sweepq wraps."""

    def __init__(self) -> None:
        from skopt import Optimizer

        self.opt = Optimizer([(0.0, 1.0)] * 6, base_estimator="GP", random_state=0)

    def preload(self, points: list[dict[str, float]]) -> None:
        self.opt.tell(
            [[p[f"x{i}"] for i in range(1, 7)] for p in points], [PROBLEM.objective(p) for p in points]
        )

    def cycle(self, seed: int) -> None:
        x = self.opt.ask()
        self.opt.tell(x, PROBLEM.objective({f"x{i}": v for i, v in enumerate(x, 1)}))


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f} on {os.cpu_count()} CPUs"


def make(method: str, running: int = 0) -> Any:
    if method == "sweepq-bayes":
        return _Sweepq("bayes", pending=running)
    if method == "sweepq-bayes+8pending":
        return _Sweepq("bayes", pending=8)
    if method == "sweepq-random":
        return _Sweepq("random")
    if method == "wandb-bayes":
        return _Peer(WandbAdapter(PROBLEM, 0))
    if method == "optuna-tpe":
        return _Peer(OptunaAdapter(PROBLEM, 0, "tpe"))
    if method == "optuna-gp":
        return _Peer(OptunaAdapter(PROBLEM, 0, "gp"))
    if method == "skopt-default":
        return _Skopt()
    raise ValueError(method)


#: Largest N at which a peer is run, to keep the run short: skopt's default refit takes minutes
#: at N=500 (PEER-NOTES 3.1); Optuna's GP takes seconds per suggestion at N=1000 and grows cubically.
MAX_N = {"skopt-default": 100, "optuna-gp": 1000}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="100,500,1000,2000")
    ap.add_argument("--cycles", type=int, default=5)
    ap.add_argument(
        "--methods",
        default="sweepq-bayes,sweepq-bayes+8pending,sweepq-random,wandb-bayes,"
        "optuna-tpe,optuna-gp,skopt-default",
    )
    ap.add_argument("--problem", default="hartmann6", choices=CHEAP)
    ap.add_argument("--running", type=int, default=0, help="running trials sweepq-bayes sees (default 0)")
    ap.add_argument(
        "--refits", type=int, default=0, help="also time this many sweepq-bayes calls at a refit point"
    )
    ap.add_argument("--json", type=Path, help="also write the raw timings here")
    args = ap.parse_args(argv)
    global PROBLEM
    PROBLEM = PROBLEMS[args.problem]
    sizes = [int(s) for s in args.sizes.split(",")]
    methods = args.methods.split(",")
    if "skopt-default" in methods and args.problem != "hartmann6":
        print("skopt-default: skipped, this script drives it on the 6-D unit cube only")
        methods.remove("skopt-default")
    if "optuna-gp" in methods and (why := optuna_gp_available()):
        print(f"optuna-gp: skipped, {why} (PEER-NOTES 3.1 measured 3.8 s per suggestion at N=1000)")
        methods.remove("optuna-gp")
    for m, cap in MAX_N.items():
        if m in methods and cap < max(sizes):
            print(f"{m}: run only up to N={cap} (cost grows cubically; see MAX_N in this script)")
    print(
        f"problem={args.problem}, sizes={sizes}, running={args.running} (sweepq-bayes), 1 warm-up + "
        f"{args.cycles} timed cycles, OMP_NUM_THREADS="
        f"{os.environ.get('OMP_NUM_THREADS')}; numerics: {numeric_stack()}; {_load()}",
        flush=True,
    )
    load_start = os.getloadavg()
    rows: dict[str, dict[int, str]] = {}
    cold: dict[str, dict[int, str]] = {}
    refits: dict[str, dict[int, str]] = {}
    cpu_rows: dict[str, dict[int, str]] = {}
    raw: list[dict[str, Any]] = []
    for m in methods:
        for n in sizes:
            if n > MAX_N.get(m, 10**9):
                continue
            opt = make(m, args.running)
            opt.preload(_random_points(n, n))
            if m.startswith("sweepq-bayes"):  # a truly cold start: forget fitted kernels
                from sweepq.search import bayes

                bayes._HYPER_CACHE.clear()
            t0 = time.perf_counter()
            opt.cycle(0)
            first = time.perf_counter() - t0
            ts, cpu = [], []
            for k in range(args.cycles):
                t0, c0 = time.perf_counter(), time.process_time()
                opt.cycle(k + 1)
                ts.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)
            refit_ms: list[float] = []
            if m == "sweepq-bayes":
                from sweepq.search import bayes

                for k in range(args.refits):
                    bayes._HYPER_CACHE.clear()  # as at a refit point: this call fits the kernel
                    t0 = time.perf_counter()
                    opt.cycle(args.cycles + 1 + k)
                    refit_ms.append((time.perf_counter() - t0) * 1000)
                if refit_ms:
                    refits.setdefault(m, {})[n] = (
                        f"{np.median(refit_ms):.0f} ({min(refit_ms):.0f}–{max(refit_ms):.0f})"
                    )
            ms = np.array(ts) * 1000
            rows.setdefault(m, {})[n] = f"{np.median(ms):.1f} ({ms.min():.1f}–{ms.max():.1f})"
            cpu_rows.setdefault(m, {})[n] = f"{np.median(cpu) * 1000:.1f}"
            cold.setdefault(m, {})[n] = f"{first * 1000:.0f}"
            raw.append(
                {
                    "method": m,
                    "n": n,
                    "wall_ms": ms.tolist(),
                    "cpu_ms": [c * 1000 for c in cpu],
                    "cold_ms": first * 1000,
                    "refit_ms": refit_ms,
                }
            )
            print(
                f"  {m} N={n}: median {np.median(ms):.1f} ms wall, {np.median(cpu) * 1000:.1f} ms CPU, "
                f"cold {first * 1000:.0f} ms"
                + (f", at a refit point median {np.median(refit_ms):.0f} ms" if refit_ms else ""),
                flush=True,
            )
    print("\nWall ms per cycle, median (min–max):\n")
    print("| method | " + " | ".join(f"N={n}" for n in sizes) + " |")
    print("|---" * (len(sizes) + 1) + "|")
    for m in methods:
        print(f"| {m} | " + " | ".join(rows.get(m, {}).get(n, "skipped") for n in sizes) + " |")
    print("\nCPU ms per cycle (process time, median; what the wall time is on an idle core):\n")
    print("| method | " + " | ".join(f"N={n}" for n in sizes) + " |")
    print("|---" * (len(sizes) + 1) + "|")
    for m in methods:
        print(f"| {m} | " + " | ".join(cpu_rows.get(m, {}).get(n, "skipped") for n in sizes) + " |")
    print("\nFirst call of a fresh process (ms; sweepq includes its kernel hyper-parameter fit):\n")
    print("| method | " + " | ".join(f"N={n}" for n in sizes) + " |")
    print("|---" * (len(sizes) + 1) + "|")
    for m in methods:
        print(f"| {m} | " + " | ".join(cold.get(m, {}).get(n, "skipped") for n in sizes) + " |")
    if refits:
        print(
            "\nsweepq-bayes at a refit point (kernel hyper-parameters fitted in the call; ms, median (min–max)):\n"
        )
        print("| method | " + " | ".join(f"N={n}" for n in sizes) + " |")
        print("|---" * (len(sizes) + 1) + "|")
        for m in refits:
            print(f"| {m} | " + " | ".join(refits[m].get(n, "skipped") for n in sizes) + " |")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "benchmark": "suggest_latency",
                    "problem": args.problem,
                    "sizes": sizes,
                    "cycles": args.cycles,
                    "running": args.running,
                    "numerics": numeric_stack(),
                    "load_start": load_start,
                    "load_end": os.getloadavg(),
                    "cpus": os.cpu_count(),
                    "results": raw,
                },
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
