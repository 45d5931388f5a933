"""Conditional parameters: sweepq's search over ``when`` spaces vs the same space flattened, and peers.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/conditional.py --jobs 2     # full run (docs/benchmarks.md)
    python benchmarks/conditional.py --quick                        # seconds: the script still works

Protocol: search_quality.py's simulated asynchronous sweep (``workers`` trials in flight, trial i
lasting U(0.5, 1.5) drawn from the seed, the same for every method; each suggestion asked for when a
worker frees up, the other trials pending), by default 8 in flight, 60 trials, seeds 0-4.
Reported per problem: the regret (best value minus the known minimum) over seeds, median and
quartiles; the median over seeds of each method's rank (1 = best, ties share the mean rank); the
seeds whose regret is below the runner-up branch's (a value only the best branch can reach); the
seeds where sweepq's regret is lower than the method's; and a verdict: is sweepq's median regret at most each peer's, and below each random search's.

Methods:

* ``sweepq``: ``method: bayes`` on the space with ``when``; a trial holds only its active parameters.
* ``sweepq-flat``: ``method: bayes`` on the flattened space (every ``when`` removed): every parameter
  is always sampled and the objective ignores the inactive ones (what a search without conditions does).
* ``sweepq-random``: ``method: random`` with ``when``.
* ``wandb-flat``: W&B's bayes engine (``sweeps`` 0.2.0) on the flattened space; W&B has no
  conditional parameters.
* ``optuna-tpe``: Optuna's TPE, define-by-run: a trial suggests only the parameters its earlier
  choices activate; ``TPESampler(multivariate=True, group=True, constant_liar=True, seed=seed)``,
  pending trials are RUNNING trials of the study.
* ``random-flat``: ``method: random`` on the flattened space.

Problems (minimised; _conditional_problems.py gives the exact functions, a saturating bowl per
branch with one interacting pair, each branch with its own best value, centre and weights):

* ``branch3`` (10 parameters flattened): ``model`` in svm / gbm / mlp, each with its own 2-3
  parameters (log-scale C and gamma; log learning rate, subsample, log min_child_weight; log
  learning rate, dropout, log width) and a shared ``feature_fraction`` whose best value depends on
  the model. Best values 0.19 / 0.16 / 0.12: the optimum is in the last branch.
* ``chain`` (7 flattened): ``optimizer`` in sgd / adam, a shared log learning rate and weight decay
  (best values depend on the branch), ``momentum`` when sgd, ``schedule`` in constant / cosine when
  adam, ``warmup`` and a log ``final_lr_ratio`` when cosine. Best values 0.34 (sgd), 0.31 (adam,
  constant), 0.26 (adam, cosine): the optimum is at the end of the chain.
* ``branch4x4`` (17 flattened): ``model`` in svm / rf / gbm / mlp, 4 parameters each (log and
  uniform mixed), best values 0.17 / 0.15 / 0.11 / 0.13: flattening adds 12 irrelevant dimensions to
  every trial.
"""

from __future__ import annotations

import argparse
import json
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

from _conditional_problems import PROBLEMS, RUNNER_UP, active, flattened  # noqa: E402
from _problems import Problem  # noqa: E402
from search_quality import (  # noqa: E402
    SweepqAdapter,
    WandbAdapter,
    _fmt,
    _ranks,
    numeric_stack,
    simulate,
    sweepq_suggest_fn,
)

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "conditional.json"


class OptunaConditionalAdapter:
    """Optuna's TPE define-by-run: each trial suggests only the parameters its choices activate."""

    def __init__(self, problem: Problem, seed: int):
        import optuna

        optuna.logging.set_verbosity(optuna.logging.ERROR)
        with warnings.catch_warnings():  # multivariate, group and constant_liar are "experimental"
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            sampler = optuna.samplers.TPESampler(multivariate=True, group=True, constant_liar=True, seed=seed)
        self.study = optuna.create_study(sampler=sampler, direction=problem.goal)
        self.parameters = problem.parameters

    def ask(self) -> tuple[Any, dict[str, Any]]:
        trial = self.study.ask()

        def suggest(name: str, spec: Mapping[str, Any]) -> Any:
            d = spec["distribution"]
            if d == "categorical":
                return trial.suggest_categorical(name, spec["values"])
            if d in ("uniform", "log_uniform_values"):
                return trial.suggest_float(name, spec["min"], spec["max"], log=d == "log_uniform_values")
            raise ValueError(f"{name}: no Optuna mapping for {d}")

        return trial, active(self.parameters, suggest)

    def tell(self, handle: Any, value: float) -> None:
        self.study.tell(handle, value)


class ActiveOnly:
    """A conditional method's adapter whose every suggestion must hold exactly the active
    parameters: a method that ignored ``when`` would otherwise be scored as if it honoured it."""

    def __init__(self, inner: Any, parameters: Mapping[str, Any]):
        self.inner = inner
        self.parameters = parameters

    def ask(self) -> tuple[Any, dict[str, Any]]:
        handle, params = self.inner.ask()
        want = active(self.parameters, lambda name, _: params.get(name))
        if set(want) != set(params):
            raise AssertionError(f"suggested {sorted(params)}, but the active parameters are {sorted(want)}")
        return handle, params

    def tell(self, handle: Any, value: float) -> None:
        self.inner.tell(handle, value)


METHODS: dict[str, Callable[[Problem, int], Any]] = {
    "sweepq": lambda p, s: ActiveOnly(SweepqAdapter(p, s, "bayes"), p.parameters),
    "sweepq-flat": lambda p, s: SweepqAdapter(flattened(p), s, "bayes"),
    "wandb-flat": lambda p, s: WandbAdapter(flattened(p), s, "bayes"),
    "optuna-tpe": lambda p, s: ActiveOnly(OptunaConditionalAdapter(p, s), p.parameters),
    "sweepq-random": lambda p, s: ActiveOnly(SweepqAdapter(p, s, "random"), p.parameters),
    "random-flat": lambda p, s: SweepqAdapter(flattened(p), s, "random"),
}
#: Methods sweepq must beat outright (median regret strictly lower); the others it must match.
RANDOM = ("sweepq-random", "random-flat")


def unavailable(method: str) -> str | None:
    """None if ``method`` can run here, else why not."""
    if method in ("wandb-flat", "optuna-tpe"):
        package = "sweeps" if method == "wandb-flat" else "optuna"
        try:
            __import__(package)
        except ImportError as exc:
            return f"the {package} package is not installed ({exc})"
        return None
    try:
        sweepq_suggest_fn("random" if "random" in method else "bayes")
    except RuntimeError as exc:
        return str(exc)
    if method in ("sweepq", "sweepq-random"):
        from sweepq import engine

        p = next(iter(PROBLEMS.values()))
        config = {"method": "random", "metric": dict(p.metric), "parameters": p.parameters}
        try:
            engine.suggest(config, [], n=1, seed=0)
        except Exception as exc:  # noqa: BLE001 - any failure means: this sweepq has no `when`
            return f"this sweepq does not take conditional parameters ({type(exc).__name__}: {exc})"[:200]
    return None


def _run(task: tuple[str, str, int, int, int]) -> dict[str, Any]:
    return simulate(*task, problems=PROBLEMS, methods=METHODS)


def summarise(runs: list[dict[str, Any]], budget: int) -> dict[str, Any]:
    """{problem: {method: {median, q1, q3, median_rank, regret: [per seed]}}} over the seeds that
    every method of the problem ran."""
    summary: dict[str, Any] = {}
    for pname, problem in PROBLEMS.items():
        by = {m: {r["seed"]: r for r in runs if r["problem"] == pname and r["method"] == m} for m in METHODS}
        by = {m: rs for m, rs in by.items() if rs}
        if not by:
            continue
        seeds = sorted(set.intersection(*(set(rs) for rs in by.values())))
        regret = {
            m: [min(rs[s]["values"][:budget]) - float(problem.optimum or 0.0) for s in seeds]
            for m, rs in by.items()
        }
        rank: dict[str, list[float]] = {m: [] for m in by}
        for k in range(len(seeds)):
            for m, rk in zip(by, _ranks([regret[m][k] for m in by], "minimize"), strict=True):
                rank[m].append(rk)
        summary[pname] = {}
        for m in by:
            q1, med, q3 = np.percentile(regret[m], [25, 50, 75])
            summary[pname][m] = {
                "median": float(med),
                "q1": float(q1),
                "q3": float(q3),
                "median_rank": float(np.median(rank[m])),
                "regret": regret[m],
                "best_branch": sum(r < RUNNER_UP[pname] - float(problem.optimum or 0.0) for r in regret[m]),
                "suggest_s": float(np.mean([by[m][s]["suggest_s"] for s in seeds])),
            }
            if "sweepq" in by and m != "sweepq":
                summary[pname][m]["sweepq_lower"] = sum(
                    a < b for a, b in zip(regret["sweepq"], regret[m], strict=True)
                )
    return summary


def verdicts(summary: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """Per problem and peer: does sweepq's median regret meet the bar (<= a model-based peer's,
    < a random search's)?"""
    out: dict[str, dict[str, str]] = {}
    for pname, rows in summary.items():
        if "sweepq" not in rows:
            continue
        ours = rows["sweepq"]["median"]
        out[pname] = {}
        for m, row in rows.items():
            if m == "sweepq":
                continue
            theirs = row["median"]
            if m in RANDOM:
                out[pname][m] = "better than" if ours < theirs else "NOT better than"
            else:
                out[pname][m] = "at least as good as" if ours <= theirs else "WORSE than"
    return out


def report(summary: Mapping[str, Any], budget: int, workers: int, out: Any = None) -> None:
    out = out or sys.stdout
    verdict = verdicts(summary)
    for pname, rows in summary.items():
        problem = PROBLEMS[pname]
        n = len(next(iter(rows.values()))["regret"])
        print(
            f"\n#### {pname} (minimize, f* = {_fmt(float(problem.optimum or 0.0))}): regret after "
            f"{budget} trials, {workers} in flight, {n} seeds\n",
            file=out,
        )
        gap = _fmt(RUNNER_UP[pname] - float(problem.optimum or 0.0))
        print(
            f"| method | regret: median [q1, q3] | median rank | seeds below regret {gap} "
            "(best branch) | seeds where sweepq is lower | optimiser s/run |",
            file=out,
        )
        print("|---|---|---|---|---|---|", file=out)
        for m, row in rows.items():
            lower = f"{row['sweepq_lower']}/{n}" if "sweepq_lower" in row else "–"
            print(
                f"| {m} | {_fmt(row['median'])} [{_fmt(row['q1'])}, {_fmt(row['q3'])}] "
                f"| {row['median_rank']:g} | {row['best_branch']}/{n} | {lower} | {row['suggest_s']:.2f} |",
                file=out,
            )
        if pname in verdict:
            ours = _fmt(rows["sweepq"]["median"])
            parts = [f"{v} {m} ({ours} vs {_fmt(rows[m]['median'])})" for m, v in verdict[pname].items()]
            print(f"\nVerdict, sweepq's median regret: {'; '.join(parts)}.", file=out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="seconds: 1 seed, 10 trials, 4 in flight")
    ap.add_argument("--problems", default=",".join(PROBLEMS))
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--seeds", type=int, default=5, help="seeds 0 .. N-1")
    ap.add_argument("--budget", type=int, default=60)
    ap.add_argument("--workers", type=int, default=8, help="trials in flight")
    ap.add_argument("--jobs", type=int, default=1, help="processes (each single-threaded)")
    ap.add_argument("--out", default=str(DEFAULT_OUT), help="JSON results file")
    args = ap.parse_args(argv)
    if args.quick:
        args.seeds, args.budget, args.workers = 1, 10, 4
    problems = args.problems.split(",")
    methods = args.methods.split(",")
    for kind, given, known in (("problem", problems, PROBLEMS), ("method", methods, METHODS)):
        if bad := [x for x in given if x not in known]:
            ap.error(f"unknown {kind}(s) {', '.join(bad)}; choose from {', '.join(known)}")
    for m in list(methods):
        if why := unavailable(m):
            print(f"{m}: skipped, {why}")
            methods.remove(m)
    print(
        f"problems={problems} methods={methods} seeds=0..{args.seeds - 1} budget={args.budget} "
        f"workers={args.workers}",
        flush=True,
    )
    print(f"numerics: {numeric_stack()}", flush=True)
    tasks = [
        (p, m, args.workers, s, args.budget) for p in problems for s in range(args.seeds) for m in methods
    ]
    t0 = time.time()
    runs: list[dict[str, Any]] = []

    def done(r: dict[str, Any]) -> None:
        runs.append(r)
        if len(runs) % 10 == 0:
            print(f"  {len(runs)}/{len(tasks)} runs, {time.time() - t0:.0f} s", file=sys.stderr, flush=True)

    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as ex:
            for fut in as_completed([ex.submit(_run, t) for t in tasks]):
                done(fut.result())
    else:
        for task in tasks:
            done(_run(task))
    print(f"total wall {time.time() - t0:.0f} s")
    order = {(p, m, s): i for i, (p, m, _, s, _) in enumerate(tasks)}
    runs.sort(key=lambda r: order[r["problem"], r["method"], r["seed"]])
    summary = summarise(runs, args.budget)
    report(summary, args.budget, args.workers)
    record = {
        "protocol": {"budget": args.budget, "workers": args.workers, "seeds": args.seeds},
        "numerics": numeric_stack(),
        "optimum": {p: PROBLEMS[p].optimum for p in problems},
        "summary": summary,
        "verdicts": verdicts(summary),
        "runs": runs,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"\nresults: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
