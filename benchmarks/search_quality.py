"""Search quality: sweepq bayes vs sweepq random, W&B's engine and Optuna, sequential and parallel.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/search_quality.py            # full run (see docs/bayes.md)
    OMP_NUM_THREADS=1 python benchmarks/search_quality.py --quick    # a few minutes

Protocol. Each (problem, method, workers, seed) is one simulated asynchronous sweep of ``budget``
trials: ``workers`` trials run at once, trial i takes a duration drawn from U(0.5, 1.5) with the
seed (the same durations for every method), and each new suggestion is asked for when a worker
frees up, while the other in-flight trials are still pending (each method sees them through its
own mechanism: sweepq/W&B get them as ``running`` trials, Optuna as RUNNING trials of the study).
``workers=1`` is sequential. No method uses the budget, so the best value among the first 50
*started* trials of a 100-trial run is exactly the result of a 50-trial run: both budgets come
from one run. Reported: median and quartiles of the best value over seeds, and the median over
seeds of each method's rank (1 = best, ties share the mean rank).
"""

from __future__ import annotations

import argparse
import contextlib
import heapq
import io
import json
import logging
import os
import sys
import time
import warnings
from collections.abc import Callable, Mapping
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _problems import PROBLEMS, Problem  # noqa: E402

#: Problems run only when named (or with --fleet), so the default full run stays what
#: docs/benchmarks.md reports.
FLEET_ONLY = ("levy10",)

warnings.filterwarnings("ignore")


# --- adapters: ask() -> (handle, params); tell(handle, value) ------------------------------------


def _sweep_config(problem: Problem, method: str) -> dict[str, Any]:
    return {
        "method": method,
        "metric": dict(problem.metric),
        "parameters": problem.parameters,
        "program": "train.py",
    }


def sweepq_suggest_fn(method: str) -> tuple[Callable[..., list[dict]], str]:
    """sweepq's public engine if it is importable and works, else the strategy module itself."""
    probe = _sweep_config(PROBLEMS["branin"], method)
    try:
        from sweepq import engine  # type: ignore[attr-defined]

        engine.suggest(probe, [], n=1, seed=0)
        return engine.suggest, "sweepq.engine.suggest"
    except Exception as exc:  # noqa: BLE001 - any failure means: fall back, and say so
        reason = f"{type(exc).__name__}: {exc}"[:120]
    if method == "bayes":
        from sweepq.search import bayes

        return bayes.suggest, f"sweepq.search.bayes.suggest (engine unavailable: {reason})"
    try:
        from sweepq.search import random as sq_random  # type: ignore[attr-defined]

        sq_random.suggest(probe, [], n=1, seed=0)
        return sq_random.suggest, f"sweepq.search.random.suggest (engine unavailable: {reason})"
    except Exception as exc:  # noqa: BLE001
        raise RuntimeError(f"sweepq random search is not available ({exc})") from exc


class SweepqAdapter:
    def __init__(self, problem: Problem, seed: int, method: str):
        self.fn, _ = sweepq_suggest_fn(method)
        self.config = _sweep_config(problem, method)
        self.seed = seed
        self.trials: list[dict[str, Any]] = []

    def ask(self) -> tuple[Any, dict[str, Any]]:
        params = self.fn(self.config, self.trials, n=1, seed=self.seed)[0]
        t = {"id": str(len(self.trials)), "params": params, "state": "running", "metric": None, "history": []}
        self.trials.append(t)
        return t, params

    def tell(self, handle: Any, value: float) -> None:
        handle.update(state="finished", metric=value, history=[value])


class WandbAdapter:
    """W&B's engine (``sweeps`` 0.2.0). Runs are built with the pydantic *aliases*
    (``summaryMetrics``/``sampledHistory``): by field name the data is silently dropped."""

    def __init__(self, problem: Problem, seed: int, method: str = "bayes"):
        import sweeps

        self.sweeps = sweeps
        self.config = _sweep_config(problem, method)
        self.config.pop("program")
        self.config["metric"] = {"name": "value", "goal": problem.goal}  # 0.2.0 rejects newer keys
        self.runs: list[Any] = []
        np.random.seed(seed)  # W&B draws candidates from the global numpy RNG

    def ask(self) -> tuple[Any, dict[str, Any]]:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            logging.disable(logging.CRITICAL)
            run = self.sweeps.next_run(self.config, self.runs, validate=False)
            logging.disable(logging.NOTSET)
        cfg = {k: v["value"] for k, v in run.config.items()}
        sr = self.sweeps.SweepRun(
            name=f"r{len(self.runs)}", config=run.config, state=self.sweeps.RunState.running
        )
        self.runs.append(sr)
        return len(self.runs) - 1, cfg

    def tell(self, handle: Any, value: float) -> None:
        old = self.runs[handle]
        new = self.sweeps.SweepRun(
            name=old.name,
            config=old.config,
            state=self.sweeps.RunState.finished,
            summaryMetrics={"value": value},
            sampledHistory=[{"value": value}],
        )
        assert new.summary_metrics == {"value": value} and new.history, "W&B run lost its metrics"
        self.runs[handle] = new


class OptunaAdapter:
    def __init__(self, problem: Problem, seed: int, sampler: str = "tpe"):
        import optuna

        optuna.logging.set_verbosity(optuna.logging.ERROR)
        self.optuna = optuna
        if sampler == "tpe":
            s = optuna.samplers.TPESampler(seed=seed)
        else:
            s = optuna.samplers.GPSampler(seed=seed)
        self.study = optuna.create_study(
            sampler=s, direction="maximize" if problem.goal == "maximize" else "minimize"
        )
        self.dists = {k: _optuna_dist(optuna, spec) for k, spec in problem.parameters.items()}
        self.ints = {
            k
            for k, spec in problem.parameters.items()
            if spec["distribution"] == "q_uniform" and isinstance(spec.get("q"), int)
        }

    def ask(self) -> tuple[Any, dict[str, Any]]:
        t = self.study.ask(self.dists)
        params = dict(t.params)
        for k in self.ints:
            params[k] = int(round(params[k]))
        return t, params

    def tell(self, handle: Any, value: float) -> None:
        self.study.tell(handle, value)


def _optuna_dist(optuna: Any, spec: dict[str, Any]) -> Any:
    d = spec["distribution"]
    D = optuna.distributions
    if d == "uniform":
        return D.FloatDistribution(spec["min"], spec["max"])
    if d == "q_uniform":
        return D.FloatDistribution(spec["min"], spec["max"], step=spec["q"])
    if d == "log_uniform_values":
        return D.FloatDistribution(spec["min"], spec["max"], log=True)
    if d == "int_uniform":
        return D.IntDistribution(spec["min"], spec["max"])
    if d == "categorical":
        return D.CategoricalDistribution(spec["values"])
    raise ValueError(d)


def optuna_gp_available() -> str | None:
    """None if Optuna's GPSampler can run here, else why not."""
    try:
        import torch  # noqa: F401
    except Exception as exc:  # noqa: BLE001
        return f"needs torch, which is not installed ({type(exc).__name__})"
    return None


METHODS: dict[str, Callable[[Problem, int], Any]] = {
    "sweepq-bayes": lambda p, s: SweepqAdapter(p, s, "bayes"),
    "sweepq-random": lambda p, s: SweepqAdapter(p, s, "random"),
    "wandb-bayes": lambda p, s: WandbAdapter(p, s, "bayes"),
    "optuna-tpe": lambda p, s: OptunaAdapter(p, s, "tpe"),
    "optuna-gp": lambda p, s: OptunaAdapter(p, s, "gp"),
}


# --- the simulated asynchronous sweep ------------------------------------------------------------


def numeric_stack() -> str:
    """The BLAS kernels in use, for the record: OpenBLAS picks them by CPU at run time, and the
    GP-based methods' results change with them (docs/bayes.md, "The GP fit depends on the CPU")."""
    try:
        from threadpoolctl import threadpool_info

        libs = sorted(
            {
                f"{i.get('internal_api')} {i.get('version')} {i.get('architecture')}"
                for i in threadpool_info()
                if i.get("user_api") == "blas"
            }
        )
    except Exception as exc:  # informational only: never stop a benchmark for it
        return f"unknown ({exc})"
    core = os.environ.get("OPENBLAS_CORETYPE")
    return ", ".join(libs) + (f" (OPENBLAS_CORETYPE={core})" if core else "")


def simulate(
    problem_name: str,
    method: str,
    workers: int,
    seed: int,
    budget: int,
    problems: Mapping[str, Problem] = PROBLEMS,
    methods: Mapping[str, Callable[[Problem, int], Any]] = METHODS,
) -> dict[str, Any]:
    """One sweep; returns the value of every trial in start order and the time spent suggesting.
    ``problems`` and ``methods`` are where the names are looked up (conditional.py has its own)."""
    problem = problems[problem_name]
    opt = methods[method](problem, seed)
    durations = np.random.default_rng(1000 + seed).uniform(0.5, 1.5, budget)
    values: list[float | None] = [None] * budget
    running: list[tuple[float, int, Any, dict[str, Any]]] = []
    started = 0
    ask_time = 0.0
    now = 0.0

    def start() -> None:
        nonlocal started, ask_time
        t0 = time.perf_counter()
        handle, params = opt.ask()
        ask_time += time.perf_counter() - t0
        heapq.heappush(running, (now + durations[started], started, handle, params))
        started += 1

    while started < min(workers, budget):
        start()
    while running:
        now, i, handle, params = heapq.heappop(running)
        v = problem.objective(params)
        values[i] = v
        t0 = time.perf_counter()
        opt.tell(handle, v)
        ask_time += time.perf_counter() - t0
        if started < budget:
            start()
    return {
        "problem": problem_name,
        "method": method,
        "workers": workers,
        "seed": seed,
        "values": values,
        "suggest_s": ask_time,
    }


#: Learning-curve amplitude per problem for --stopping: value at step t = f(x) + A exp(-t / 3).
_CURVE = {"hartmann6": 1.5, "branin": 30.0, "mixed": 1.0}


def simulate_stopping(
    problem_name: str, rule: str, workers: int, seed: int, budget: int, steps: int = 10, check: int = 3
) -> dict[str, Any]:
    """A bayes sweep under a median stopping rule, to choose what stopped trials count as.

    Each trial logs ``steps`` values f(x) + A exp(-t/3). At step ``check`` a trial is stopped if
    its value is worse than the median of the step-``check`` values of the trials known so far
    (once there are 5); a stopped trial frees its worker after ``check`` steps. ``rule`` is
    bayes.STOPPED_RULE. The score is the best *final* value among finished trials.
    """
    from sweepq.search import bayes

    bayes.STOPPED_RULE = rule
    problem = PROBLEMS[problem_name]
    fn, _ = sweepq_suggest_fn("bayes")
    config = _sweep_config(problem, "bayes")
    amp = _CURVE[problem_name]
    durations = np.random.default_rng(1000 + seed).uniform(0.5, 1.5, budget)
    trials: list[dict[str, Any]] = []
    at_check: list[float] = []
    running: list[tuple[float, int]] = []
    now = 0.0

    def start() -> None:
        (params,) = fn(config, trials, n=1, seed=seed)
        f = problem.objective(params)
        curve = [f + amp * np.exp(-t / 3.0) for t in range(1, steps + 1)]
        stop = len(at_check) >= 5 and curve[check - 1] > float(np.median(at_check))
        i = len(trials)
        trials.append(
            {
                "id": str(i),
                "params": params,
                "state": "running",
                "metric": None,
                "history": [],
                "_curve": curve[:check] if stop else curve,
                "_stop": stop,
            }
        )
        heapq.heappush(running, (now + durations[i] * (check / steps if stop else 1.0), i))

    while len(trials) < min(workers, budget):
        start()
    while running:
        now, i = heapq.heappop(running)
        t = trials[i]
        hist = [float(v) for v in t["_curve"]]
        t.update(state="stopped" if t["_stop"] else "finished", history=hist, metric=hist[-1])
        at_check.append(hist[check - 1])
        if len(trials) < budget:
            start()
    finals = [t["metric"] for t in trials if t["state"] == "finished"]
    return {
        "problem": problem_name,
        "rule": rule,
        "seed": seed,
        "best": float(min(finals)),
        "stopped": sum(t["state"] == "stopped" for t in trials),
    }


def stopping_report(results: list[dict[str, Any]], out: Any = None) -> None:
    out = out or sys.stdout
    print(
        "\n#### Stopped trials: own best vs impute worst (median stopping at step 3 of 10, 4 in flight)\n",
        file=out,
    )
    print(
        "| problem | rule | best final value: median [q1, q3] | trials stopped (median) | seeds won |",
        file=out,
    )
    print("|---|---|---|---|---|", file=out)
    for pname in dict.fromkeys(r["problem"] for r in results):
        by = {
            rule: {r["seed"]: r for r in results if r["problem"] == pname and r["rule"] == rule}
            for rule in ("own", "worst")
        }
        seeds = sorted(set(by["own"]) & set(by["worst"]))
        for rule, other in (("own", "worst"), ("worst", "own")):
            b = [by[rule][s]["best"] for s in seeds]
            q1, med, q3 = np.percentile(b, [25, 50, 75])
            won = sum(by[rule][s]["best"] < by[other][s]["best"] for s in seeds)
            stopped = np.median([by[rule][s]["stopped"] for s in seeds])
            print(
                f"| {pname} | {rule} | {_fmt(med)} [{_fmt(q1)}, {_fmt(q3)}] | {stopped:g} | {won}/{len(seeds)} |",
                file=out,
            )


def _best(values: list[float], goal: str) -> float:
    return float(max(values) if goal == "maximize" else min(values))


def _ranks(xs: list[float], goal: str) -> list[float]:
    """Ranks with ties sharing the mean rank; 1 = best."""
    a = -np.asarray(xs) if goal == "maximize" else np.asarray(xs)
    order = np.argsort(a, kind="stable")
    ranks = np.empty(len(a))
    i = 0
    while i < len(a):
        j = i
        while j + 1 < len(a) and a[order[j + 1]] == a[order[i]]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return ranks.tolist()


def _fmt(x: float) -> str:
    if x == 0:
        return "0"
    ax = abs(x)
    if ax >= 1e4 or ax < 1e-3:
        return f"{x:.3g}"
    return f"{x:.4f}" if ax < 10 else f"{x:.2f}"


def report(results: list[dict[str, Any]], budgets: list[int], out: Any = None) -> dict[str, Any]:
    """Print one markdown table per (problem, budget): methods x workers."""
    out = out or sys.stdout  # looked up per call: sys.stdout may be replaced after import
    summary: dict[str, Any] = {}
    problems = [p for p in PROBLEMS if any(r["problem"] == p for r in results)]
    methods = [m for m in METHODS if any(r["method"] == m for r in results)]
    workers_list = sorted({r["workers"] for r in results})
    seeds = sorted({r["seed"] for r in results})
    for pname in problems:
        goal = PROBLEMS[pname].goal
        for budget in budgets:
            cols = []
            for w in workers_list:
                best: dict[str, list[float]] = {}
                for m in methods:
                    rs = {
                        r["seed"]: r
                        for r in results
                        if r["problem"] == pname and r["method"] == m and r["workers"] == w
                    }
                    if len(rs) == len(seeds):
                        best[m] = [_best(rs[s]["values"][:budget], goal) for s in seeds]
                ms = list(best)
                rank = {m: [] for m in ms}
                for k in range(len(seeds)):
                    for m, rk in zip(ms, _ranks([best[m][k] for m in ms], goal), strict=True):
                        rank[m].append(rk)
                cols.append((w, best, rank))
            opt = PROBLEMS[pname].optimum
            head = f"\n#### {pname} ({goal}{', f* = ' + _fmt(opt) if opt is not None else ''}), budget {budget}\n"
            print(head, file=out)
            hdr = (
                "| method | "
                + " | ".join(
                    f"{'sequential' if w == 1 else f'{w} in flight'}: median [q1, q3] (rank)"
                    for w in workers_list
                )
                + " |"
            )
            print(hdr, file=out)
            print("|---" * (1 + len(workers_list)) + "|", file=out)
            for m in methods:
                cells = []
                for w, best, rank in cols:
                    if m not in best:
                        cells.append("–")
                        continue
                    q1, med, q3 = np.percentile(best[m], [25, 50, 75])
                    cells.append(f"{_fmt(med)} [{_fmt(q1)}, {_fmt(q3)}] ({np.median(rank[m]):g})")
                    summary.setdefault(pname, {}).setdefault(str(budget), {}).setdefault(str(w), {})[m] = {
                        "median": float(med),
                        "q1": float(q1),
                        "q3": float(q3),
                        "median_rank": float(np.median(rank[m])),
                        "best": best[m],
                    }
                print(f"| {m} | " + " | ".join(cells) + " |", file=out)
    # wall time of the optimiser itself
    print("\n#### Mean optimiser time per run (s, suggest + tell, objective excluded)\n", file=out)
    print("| method | " + " | ".join(f"w={w}" for w in workers_list) + " |", file=out)
    print("|---" * (1 + len(workers_list)) + "|", file=out)
    for m in methods:
        cells = []
        for w in workers_list:
            ts = [r["suggest_s"] for r in results if r["method"] == m and r["workers"] == w]
            cells.append(f"{np.mean(ts):.2f}" if ts else "–")
        print(f"| {m} | " + " | ".join(cells) + " |", file=out)
    return summary


def _run(task: tuple[str, str, int, int, int]) -> dict[str, Any]:
    return simulate(*task)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="3 problems, 3 seeds, budget 50, 1 and 8 workers")
    ap.add_argument(
        "--fleet",
        action="store_true",
        help="a fleet: hartmann6 and levy10, 32 in flight, budget 200 (seeds as --seeds/--seed-start)",
    )
    ap.add_argument("--problems", default=",".join(p for p in PROBLEMS if p not in FLEET_ONLY))
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument(
        "--seed-start", type=int, default=0, help="first seed (e.g. 5 with --seeds 5 for held-out seeds 5-9)"
    )
    ap.add_argument("--budgets", default="50,100")
    ap.add_argument("--workers", default="1,4,8")
    ap.add_argument("--jobs", type=int, default=1, help="processes (each single-threaded)")
    ap.add_argument(
        "--json", default=None, help="write raw results here (one JSON line per run, as they end)"
    )
    ap.add_argument(
        "--report-only",
        default=None,
        help="print the tables of --json files (comma-separated, merged; a later file's run of the same "
        "problem, method, workers and seed replaces an earlier one) and exit",
    )
    ap.add_argument(
        "--stopping",
        action="store_true",
        help="only the experiment on what early-stopped trials count as (bayes.STOPPED_RULE)",
    )
    args = ap.parse_args(argv)
    if args.quick:
        args.problems, args.seeds, args.budgets, args.workers = "branin,hartmann6,mixed", 3, "50", "1,8"
    if args.fleet:
        args.problems, args.budgets, args.workers = "hartmann6,levy10", "200", "32"
    if args.report_only:
        merged: dict[tuple[Any, ...], dict[str, Any]] = {}
        for path in args.report_only.split(","):
            for line in Path(path).read_text().splitlines():
                if line:
                    r = json.loads(line)
                    merged[(r["problem"], r["method"], r["workers"], r["seed"])] = r
        report(list(merged.values()), [int(b) for b in args.budgets.split(",")])
        return 0
    if args.stopping:
        return _stopping_main(args)
    problems = args.problems.split(",")
    methods = args.methods.split(",")
    budgets = [int(b) for b in args.budgets.split(",")]
    workers = [int(w) for w in args.workers.split(",")]
    for kind, given, known in (("problem", problems, PROBLEMS), ("method", methods, METHODS)):
        if bad := [x for x in given if x not in known]:
            ap.error(f"unknown {kind}(s) {', '.join(bad)}; choose from {', '.join(known)}")
    if "optuna-gp" in methods and (why := optuna_gp_available()):
        print(f"optuna-gp: skipped, {why}")
        methods.remove("optuna-gp")
    for m in ("sweepq-bayes", "sweepq-random"):
        if m in methods:
            try:
                print(f"{m}: driven through {sweepq_suggest_fn(m.split('-')[1])[1]}")
            except RuntimeError as exc:
                print(f"{m}: skipped, {exc}")
                methods.remove(m)
    seeds = list(range(args.seed_start, args.seed_start + args.seeds))
    print(
        f"problems={problems} methods={methods} seeds={seeds[0]}..{seeds[-1]} budgets={budgets} "
        f"workers={workers}",
        flush=True,
    )
    print(f"numerics: {numeric_stack()}", flush=True)
    tasks = [(p, m, w, s, max(budgets)) for p in problems for w in workers for s in seeds for m in methods]
    tasks.sort(key=lambda t: t[1] == "optuna-gp")  # the slowest peer last: a cut-short run keeps the rest
    t0 = time.time()
    results: list[dict[str, Any]] = []
    sink = open(args.json, "w") if args.json else None  # noqa: SIM115 - written as runs end

    def done(r: dict[str, Any]) -> None:
        results.append(r)
        if sink:
            sink.write(json.dumps(r) + "\n")
            sink.flush()
        if len(results) % 20 == 0:
            print(
                f"  {len(results)}/{len(tasks)} runs, {time.time() - t0:.0f} s", file=sys.stderr, flush=True
            )

    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as ex:
            for fut in as_completed([ex.submit(_run, t) for t in tasks]):
                done(fut.result())
    else:
        for task in tasks:
            done(_run(task))
    if sink:
        sink.close()
    print(f"total wall {time.time() - t0:.0f} s")
    report(results, budgets)
    return 0


def _stopping_main(args: argparse.Namespace) -> int:
    tasks = [
        (p, rule, 4, s, 60)
        for p in ("hartmann6", "branin", "mixed")
        for s in range(max(args.seeds, 10))
        for rule in ("own", "worst")
    ]
    t0 = time.time()
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as ex:
            results = list(ex.map(_run_stopping, tasks))
    else:
        results = [_run_stopping(t) for t in tasks]
    print(f"total wall {time.time() - t0:.0f} s")
    if args.json:
        Path(args.json).write_text("\n".join(json.dumps(r) for r in results) + "\n")
    stopping_report(results)
    return 0


def _run_stopping(task: tuple[str, str, int, int, int]) -> dict[str, Any]:
    return simulate_stopping(*task)


if __name__ == "__main__":
    raise SystemExit(main())
