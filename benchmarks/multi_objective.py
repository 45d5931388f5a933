"""Multi-objective search: sweepq (bayes, random) vs Optuna's NSGA-II, TPE and GP, by hypervolume.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/multi_objective.py --jobs 2            # full run
    python benchmarks/multi_objective.py --methods sweepq                      # rerun one row, merged
    python benchmarks/multi_objective.py --quick --out /tmp/mo.json            # seconds: still works

Protocol: search_quality.py's simulated asynchronous sweep (``workers`` trials in flight, trial i
lasting U(0.5, 1.5) drawn from the seed, the same for every method; each suggestion asked for when a
worker frees up, the other trials pending), by default 8 in flight, 100 trials, seeds 0-2. The
value a trial reports is its tuple of objective values, passed to the method untouched. Score: the
hypervolume (exact, ``sweepq.pareto.hypervolume``) of every finished trial's objective vector at
the end, and of the first 50 *started* trials (what a 50-trial run would have found: no method
uses the budget). Reported per problem and method: the median HV over seeds with min and max, the
gap to the true front's HV, the median over seeds of the method's rank (1 = most HV, ties share the
mean rank), the median optimiser time per run (suggest + tell, objective excluded), and a verdict:
is sweepq's median HV at least the best Optuna method's that ran, and above sweepq-random's.

Problems (all objectives minimised; _mo_problems.py has the functions), 6 variables in [0, 1]:

* ``zdt1``: 2 objectives, f1 = x1, g = 1 + 9 sum(x2..x6) / 5, f2 = g (1 - sqrt(f1 / g)).
  Reference point (11, 11); the true front's HV is 121 - 1/3 = 120.6667.
* ``dtlz2``: 3 objectives, k = 4, g = sum((xi - 0.5)^2, i = 3..6), f1 = (1 + g) cos(x1 pi/2)
  cos(x2 pi/2), f2 = (1 + g) cos(x1 pi/2) sin(x2 pi/2), f3 = (1 + g) sin(x1 pi/2).
  Reference point (2.5, 2.5, 2.5); the true front's HV is 2.5^3 - pi/6 = 15.1014.

Methods (each seeded with the run's seed; pending trials are seen by each method's own mechanism):

* ``sweepq``: ``sweepq.engine.suggest`` with ``method: bayes`` and the list ``metric``; one
  suggestion per ask (n=1), pending trials passed as ``running`` trials, finished ones with
  ``metric`` the list of objective values.
* ``sweepq-random``: the same with ``method: random``.
* ``optuna-nsga2``: ``NSGAIISampler(seed=seed)`` (default population 50).
* ``optuna-tpe``: ``TPESampler(multivariate=True, constant_liar=True, seed=seed)``.
* ``optuna-gp``: ``GPSampler(seed=seed)`` (logEHVI, qLogEHVI with running trials).

The Optuna methods use ``create_study(directions=[...])`` and ask/tell; pending trials are RUNNING
trials of the study. A method that raises is recorded per run as an error string; the rest of the
benchmark goes on. Results are stored per (problem, method, seed) in the JSON file (default
benchmarks/results/multi_objective.json); a run with ``--methods`` replaces only those rows and
keeps the others, if the file's budget and workers are the same (else ``--fresh`` starts over).
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

from _mo_problems import PROBLEMS, MOProblem  # noqa: E402
from search_quality import _fmt, _ranks, numeric_stack, simulate  # noqa: E402

from sweepq.pareto import front_indices, hypervolume  # noqa: E402

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "multi_objective.json"
#: HV is also recorded after this many started trials (when the budget reaches it).
EARLY = 50


# --- adapters: ask() -> (handle, params); tell(handle, values) -----------------------------------


def sweep_config(problem: MOProblem, method: str) -> dict[str, Any]:
    return {
        "method": method,
        "metric": problem.metric,
        "parameters": problem.parameters,
        "program": "train.py",
    }


class SweepqMOAdapter:
    """sweepq's engine; a trial's ``metric`` is the list of objective values in order."""

    def __init__(self, problem: MOProblem, seed: int, method: str):
        from sweepq import engine

        self.suggest = engine.suggest
        self.config = sweep_config(problem, method)
        self.seed = seed
        self.trials: list[dict[str, Any]] = []

    def ask(self) -> tuple[Any, dict[str, Any]]:
        (params,) = self.suggest(self.config, self.trials, n=1, seed=self.seed)
        t = {"id": str(len(self.trials)), "params": params, "state": "running", "metric": None, "history": []}
        self.trials.append(t)
        return t, params

    def tell(self, handle: Any, values: Any) -> None:
        handle.update(state="finished", metric=[float(v) for v in values])


class OptunaMOAdapter:
    def __init__(self, problem: MOProblem, seed: int, sampler: str):
        import optuna

        optuna.logging.set_verbosity(optuna.logging.ERROR)
        S = optuna.samplers
        with warnings.catch_warnings():  # multivariate and constant_liar are "experimental"
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            s = {
                "nsga2": lambda: S.NSGAIISampler(seed=seed),
                "tpe": lambda: S.TPESampler(multivariate=True, constant_liar=True, seed=seed),
                "gp": lambda: S.GPSampler(seed=seed),
            }[sampler]()
        self.study = optuna.create_study(sampler=s, directions=problem.goals)
        self.dists = {
            name: optuna.distributions.FloatDistribution(spec["min"], spec["max"])
            for name, spec in problem.parameters.items()
        }

    def ask(self) -> tuple[Any, dict[str, Any]]:
        t = self.study.ask(self.dists)
        return t, dict(t.params)

    def tell(self, handle: Any, values: Any) -> None:
        self.study.tell(handle, [float(v) for v in values])


METHODS: dict[str, Callable[[MOProblem, int], Any]] = {
    "sweepq": lambda p, s: SweepqMOAdapter(p, s, "bayes"),
    "sweepq-random": lambda p, s: SweepqMOAdapter(p, s, "random"),
    "optuna-nsga2": lambda p, s: OptunaMOAdapter(p, s, "nsga2"),
    "optuna-tpe": lambda p, s: OptunaMOAdapter(p, s, "tpe"),
    "optuna-gp": lambda p, s: OptunaMOAdapter(p, s, "gp"),
}
QUICK_METHODS = ("sweepq", "sweepq-random", "optuna-tpe")


def unavailable(method: str) -> str | None:
    """None if ``method``'s package can be imported here, else why not (a method whose package is
    there but which fails is recorded per run instead)."""
    needs = {"optuna-gp": ("optuna", "torch")}.get(method, ("optuna",) if method.startswith("optuna") else ())
    for package in needs:
        try:
            __import__(package)
        except ImportError as exc:
            return f"the {package} package is not installed ({exc})"
    return None


def probe_sweepq(method: str) -> str | None:
    """None if sweepq's ``method`` takes a multi-objective config with a finished trial, else the error."""
    problem = next(iter(PROBLEMS.values()))
    adapter = SweepqMOAdapter(problem, 0, method)
    try:
        for _ in range(2):
            h, params = adapter.ask()
            adapter.tell(h, problem.objective(params))
    except Exception as exc:  # noqa: BLE001 - any failure: say so, the runs record it too
        return f"{type(exc).__name__}: {exc}"[:200]
    return None


# --- one run ------------------------------------------------------------------------------------


def hv_of(problem: MOProblem, values: list[Any]) -> float:
    return hypervolume([list(v) for v in values if v is not None], problem.ref)


def run_one(task: tuple[str, str, int, int, int]) -> dict[str, Any]:
    """simulate() one (problem, method, workers, seed, budget); scored here, in the worker process.
    A method that raises gives a record with ``error`` instead of values."""
    pname, method, workers, seed, budget = task
    problem = PROBLEMS[pname]
    base = {"problem": pname, "method": method, "workers": workers, "seed": seed, "budget": budget}
    t0 = time.perf_counter()
    try:
        r = simulate(pname, method, workers, seed, budget, problems=PROBLEMS, methods=METHODS)
    except Exception as exc:  # noqa: BLE001 - a broken method never stops the benchmark
        return base | {"error": f"{type(exc).__name__}: {exc}"[:500], "wall_s": time.perf_counter() - t0}
    values = [[float(x) for x in v] for v in r["values"]]
    hv = {str(k): hv_of(problem, values[:k]) for k in sorted({min(EARLY, budget), budget})}
    return base | {
        "hv": hv,
        "front_size": len(front_indices(values, problem.goals)),
        "suggest_s": r["suggest_s"],
        "wall_s": time.perf_counter() - t0,
        "values": values,
    }


# --- summary, verdicts, report ------------------------------------------------------------------


def key(r: Mapping[str, Any]) -> tuple[str, str, int]:
    return (r["problem"], r["method"], int(r["seed"]))


def summarise(runs: list[dict[str, Any]], budget: int) -> dict[str, Any]:
    """{problem: {method: {median, min, max, hv: [per seed], hv_early, median_rank, suggest_s,
    seeds, errors}}}. Ranks are over the seeds that every method with results ran."""
    summary: dict[str, Any] = {}
    b, e = str(budget), str(min(EARLY, budget))
    for pname in PROBLEMS:
        mine = [r for r in runs if r["problem"] == pname]
        if not mine:
            continue
        methods = [m for m in METHODS if any(r["method"] == m for r in mine)]
        ok = {m: {r["seed"]: r for r in mine if r["method"] == m and "hv" in r} for m in methods}
        ranked = [m for m in methods if ok[m]]
        common = sorted(set.intersection(*(set(ok[m]) for m in ranked))) if ranked else []
        rank: dict[str, list[float]] = {m: [] for m in ranked}
        for s in common:
            for m, rk in zip(ranked, _ranks([ok[m][s]["hv"][b] for m in ranked], "maximize"), strict=True):
                rank[m].append(rk)
        summary[pname] = {}
        for m in methods:
            errors = {str(r["seed"]): r["error"] for r in mine if r["method"] == m and "error" in r}
            seeds = sorted(ok[m])
            row: dict[str, Any] = {"seeds": seeds, "errors": errors}
            if seeds:
                hv = [ok[m][s]["hv"][b] for s in seeds]
                early = [ok[m][s]["hv"][e] for s in seeds]
                row |= {
                    "median": float(np.median(hv)),
                    "min": float(min(hv)),
                    "max": float(max(hv)),
                    "hv": hv,
                    "hv_early": {
                        "trials": int(e),
                        "median": float(np.median(early)),
                        "min": float(min(early)),
                        "max": float(max(early)),
                    },
                    "gap": float(PROBLEMS[pname].true_hv - np.median(hv)),
                    "median_rank": float(np.median(rank[m])) if rank.get(m) else None,
                    "suggest_s": float(np.median([ok[m][s]["suggest_s"] for s in seeds])),
                    "front_size": float(np.median([ok[m][s]["front_size"] for s in seeds])),
                }
            summary[pname][m] = row
    return summary


def verdicts(summary: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Per problem: is sweepq's median HV >= the best Optuna method's that ran, and > sweepq-random's?"""
    out: dict[str, dict[str, Any]] = {}
    for pname, rows in summary.items():
        ours = rows.get("sweepq", {}).get("median")
        v: dict[str, Any] = {"sweepq": ours}
        optuna = {m: r["median"] for m, r in rows.items() if m.startswith("optuna") and "median" in r}
        rnd = rows.get("sweepq-random", {}).get("median")
        if ours is None:
            errs = rows.get("sweepq", {}).get("errors")
            v["line"] = "sweepq has no result" + (f" (failed: {next(iter(errs.values()))})" if errs else "")
            v["met"] = None
            out[pname] = v
            continue
        parts, met = [], True
        if optuna:
            best = max(optuna, key=lambda m: optuna[m])
            ge = ours >= optuna[best]
            met &= ge
            v["vs_optuna"] = {"best": best, "hv": optuna[best], "at_least": ge}
            parts.append(
                f"{'at least' if ge else 'BELOW'} the best Optuna method, {best} "
                f"({_fmt(ours)} vs {_fmt(optuna[best])})"
            )
        if rnd is not None:
            gt = ours > rnd
            met &= gt
            v["vs_random"] = {"hv": rnd, "above": gt}
            parts.append(f"{'above' if gt else 'NOT above'} sweepq-random ({_fmt(ours)} vs {_fmt(rnd)})")
        v["met"] = met if parts else None
        v["line"] = "sweepq's median HV is " + "; ".join(parts) if parts else "nothing to compare with"
        out[pname] = v
    return out


def report(summary: Mapping[str, Any], budget: int, workers: int, out: Any = None) -> None:
    out = out or sys.stdout
    verdict = verdicts(summary)
    e = min(EARLY, budget)
    for pname, rows in summary.items():
        p = PROBLEMS[pname]
        ref = ", ".join(f"{r:g}" for r in p.ref)
        print(
            f"\n#### {pname} ({len(p.objectives)} objectives, minimised): hypervolume after {budget} "
            f"trials, {workers} in flight; reference point ({ref}), true front HV {_fmt(p.true_hv)}\n",
            file=out,
        )
        print(
            f"| method | HV: median [min, max] | gap to true front | HV after {e}: median "
            "| median rank | front size | optimiser s/run | seeds |",
            file=out,
        )
        print("|---|---|---|---|---|---|---|---|", file=out)
        for m, row in rows.items():
            n = f"{len(row['seeds'])}/{len(row['seeds']) + len(row['errors'])}"
            if "median" not in row:
                err = next(iter(row["errors"].values()), "no result")
                print(f"| {m} | failed: {err[:100]} | – | – | – | – | – | {n} |", file=out)
                continue
            rk = f"{row['median_rank']:g}" if row["median_rank"] is not None else "–"
            print(
                f"| {m} | {_fmt(row['median'])} [{_fmt(row['min'])}, {_fmt(row['max'])}] "
                f"| {_fmt(row['gap'])} | {_fmt(row['hv_early']['median'])} | {rk} "
                f"| {row['front_size']:g} | {row['suggest_s']:.2f} | {n} |",
                file=out,
            )
        print(f"\nVerdict ({pname}): {verdict[pname]['line']}.", file=out)


# --- main ---------------------------------------------------------------------------------------


def load_previous(path: Path, protocol: Mapping[str, Any], fresh: bool) -> list[dict[str, Any]] | str:
    """The runs already in ``path`` (to merge with), or why they cannot be merged."""
    if fresh or not path.exists():
        return []
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        return f"{path} is not readable JSON ({exc})"
    theirs = {k: old.get("protocol", {}).get(k) for k in ("budget", "workers")}
    if theirs != {k: protocol[k] for k in ("budget", "workers")}:
        return f"{path} holds runs of another protocol ({theirs}); use --fresh or another --out"
    return list(old.get("runs", []))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--quick", action="store_true", help=f"seconds: 1 seed, 20 trials, {', '.join(QUICK_METHODS)}"
    )
    ap.add_argument("--problems", default=",".join(PROBLEMS))
    ap.add_argument("--methods", default=None, help=f"comma-separated, of {', '.join(METHODS)} (default all)")
    ap.add_argument("--seeds", type=int, default=3, help="seeds 0 .. N-1")
    ap.add_argument(
        "--first-seed", type=int, default=0, help="start the seeds here (add seeds to a results file)"
    )
    ap.add_argument("--budget", type=int, default=100)
    ap.add_argument("--workers", type=int, default=8, help="trials in flight")
    ap.add_argument("--jobs", type=int, default=1, help="processes (each single-threaded)")
    ap.add_argument("--out", default=str(DEFAULT_OUT), help="JSON results file (merged into)")
    ap.add_argument("--fresh", action="store_true", help="drop the runs already in --out")
    args = ap.parse_args(argv)
    if args.quick:
        args.seeds, args.budget = 1, 20
        args.methods = args.methods or ",".join(QUICK_METHODS)
    problems = args.problems.split(",")
    methods = (args.methods or ",".join(METHODS)).split(",")
    for kind, given, known in (("problem", problems, PROBLEMS), ("method", methods, METHODS)):
        if bad := [x for x in given if x not in known]:
            ap.error(f"unknown {kind}(s) {', '.join(bad)}; choose from {', '.join(known)}")
    protocol = {"budget": args.budget, "workers": args.workers, "early": min(EARLY, args.budget)}
    out = Path(args.out)
    previous = load_previous(out, protocol, args.fresh)
    if isinstance(previous, str):
        ap.error(previous)
    for m in list(methods):
        if why := unavailable(m):
            print(f"{m}: skipped, {why}")
            methods.remove(m)
        elif m.startswith("sweepq") and (why := probe_sweepq("bayes" if m == "sweepq" else "random")):
            print(f"{m}: unavailable here ({why}); its runs are recorded as failed")
    print(
        f"problems={problems} methods={methods} seeds={args.first_seed}..{args.first_seed + args.seeds - 1} budget={args.budget} "
        f"workers={args.workers}",
        flush=True,
    )
    print(f"numerics: {numeric_stack()}", flush=True)
    tasks = [
        (p, m, args.workers, s, args.budget)
        for p in problems
        for s in range(args.first_seed, args.first_seed + args.seeds)
        for m in methods
    ]
    tasks.sort(key=lambda t: t[1] == "optuna-gp")  # the slowest last
    t0 = time.time()
    runs: list[dict[str, Any]] = []

    def done(r: dict[str, Any]) -> None:
        runs.append(r)
        tag = f"error: {r['error'][:80]}" if "error" in r else f"HV {_fmt(r['hv'][str(args.budget)])}"
        print(
            f"  {len(runs)}/{len(tasks)} {r['problem']} {r['method']} seed {r['seed']}: {tag} "
            f"({r['wall_s']:.1f} s; {time.time() - t0:.0f} s in all)",
            file=sys.stderr,
            flush=True,
        )

    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as ex:
            futs = {ex.submit(run_one, t): t for t in tasks}
            for fut in as_completed(futs):
                try:
                    done(fut.result())
                except Exception as exc:  # noqa: BLE001 - e.g. a worker process that died
                    p, m, w, s, b = futs[fut]
                    done(
                        {"problem": p, "method": m, "workers": w, "seed": s, "budget": b}
                        | {"error": f"{type(exc).__name__}: {exc}"[:500], "wall_s": 0.0}
                    )
    else:
        for task in tasks:
            done(run_one(task))
    wall = time.time() - t0
    print(f"total wall {wall:.0f} s")
    new = {key(r) for r in runs}
    merged = [r for r in previous if key(r) not in new] + runs
    order = {(p, m): i for i, (p, m) in enumerate((p, m) for p in PROBLEMS for m in METHODS)}
    merged.sort(key=lambda r: (order[r["problem"], r["method"]], r["seed"]))
    summary = summarise(merged, args.budget)
    report(summary, args.budget, args.workers)
    record = {
        "protocol": protocol,
        "numerics": numeric_stack(),
        "problems": {
            p: {
                "objectives": PROBLEMS[p].objectives,
                "ref": list(PROBLEMS[p].ref),
                "true_hv": PROBLEMS[p].true_hv,
            }
            for p in PROBLEMS
        },
        "last_run": {"methods": methods, "problems": problems, "seeds": args.seeds, "wall_s": wall},
        "summary": summary,
        "verdicts": verdicts(summary),
        "runs": merged,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"\nresults: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
