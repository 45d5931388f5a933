"""Plots and summary tables of the benchmark results in ``benchmarks/results/``.

Usage::

    python benchmarks/plots.py                    # write docs/img/bench-*.png
    python benchmarks/plots.py --tables           # also print the summary tables of docs/benchmarks.md
    python benchmarks/plots.py --results DIR --out DIR

Each plot is made from the raw JSON that a benchmark script writes with ``--json`` (the file names
are the ones docs/benchmarks.md gives in its commands); a plot whose results file is missing is
skipped, and the output says so. Nothing here measures anything.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _problems import PROBLEMS  # noqa: E402
from search_quality import _fmt as _num  # noqa: E402

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
OUT = HERE.parent / "docs" / "img"

#: One colour per method across every plot; sweepq's own methods in the warm colours.
COLOURS = {
    "sweepq-bayes": "#c0392b",
    "sweepq-bayes+8pending": "#e67e22",
    "sweepq-random": "#7f8c8d",
    "wandb-bayes": "#2471a3",
    "optuna-tpe": "#27ae60",
    "optuna-gp": "#8e44ad",
    "skopt-default": "#b7950b",
}
LABELS = {
    "sweepq-bayes": "sweepq bayes",
    "sweepq-bayes+8pending": "sweepq bayes, 8 pending",
    "sweepq-random": "sweepq random",
    "wandb-bayes": "W&B bayes (sweeps 0.2.0)",
    "optuna-tpe": "Optuna TPE",
    "optuna-gp": "Optuna GP",
    "skopt-default": "scikit-optimize GP",
}
DPI = 100


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {
            "font.size": 9,
            "axes.titlesize": 10,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "axes.spines.top": False,
            "axes.spines.right": False,
        }
    )
    return plt


def _save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    _plt().close(fig)
    return path


def load_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# -- search quality -------------------------------------------------------------------------------
def best_so_far(values: list[float], goal: str) -> np.ndarray:
    a = np.asarray(values, dtype=float)
    return np.maximum.accumulate(a) if goal == "maximize" else np.minimum.accumulate(a)


def quality_curves(runs: list[dict[str, Any]], problem: str, workers: int) -> dict[str, np.ndarray]:
    """Per method, the best-so-far curve of every seed (rows) over trials in start order."""
    goal = PROBLEMS[problem].goal
    by: dict[str, list[np.ndarray]] = {}
    for r in sorted(runs, key=lambda r: r["seed"]):
        if r["problem"] == problem and r["workers"] == workers:
            by.setdefault(r["method"], []).append(best_so_far(r["values"], goal))
    return {m: np.vstack(c) for m, c in by.items()}


def plot_quality(runs: list[dict[str, Any]], workers: int, path: Path) -> Path:
    """Median best-so-far (regret where the optimum is known) per problem, with the quartile band."""
    plt = _plt()
    problems = [p for p in PROBLEMS if any(r["problem"] == p for r in runs)]
    cols = 3
    rows = math.ceil(len(problems) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(11, 3.1 * rows), squeeze=False)
    for ax, pname in zip(axes.flat, problems, strict=False):
        prob = PROBLEMS[pname]
        curves_by = quality_curves(runs, pname, workers)
        for method in sorted(curves_by, key=_order):
            curves = curves_by[method]
            y = curves - prob.optimum if prob.optimum is not None else curves
            if prob.optimum is not None:
                y = np.maximum(y, 1e-9)
            q1, med, q3 = np.percentile(y, [25, 50, 75], axis=0)
            x = np.arange(1, y.shape[1] + 1)
            c = COLOURS.get(method)
            ax.plot(
                x, med, color=c, lw=2.0 if method == "sweepq-bayes" else 1.3, label=LABELS.get(method, method)
            )
            ax.fill_between(x, q1, q3, color=c, alpha=0.12, lw=0)
        if prob.optimum is not None:
            ax.set_yscale("log")
            ax.set_ylabel("regret (best − optimum)")
        else:
            ax.set_ylabel("best CV accuracy" if prob.goal == "maximize" else "best CV MSE")
        if pname == "svm_digits":
            ax.set_ylim(0.88, 0.915)
        if pname == "krr_diabetes":
            ax.set_ylim(2915, 3000)
        ax.set_title(f"{pname} ({prob.goal})")
        ax.set_xlabel("trials started")
    for ax in list(axes.flat)[len(problems) :]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    seeds = len({r["seed"] for r in runs})
    where = "sequential" if workers == 1 else f"{workers} trials in flight"
    fig.suptitle(f"Search quality, {where}: median over {seeds} seeds, band = quartiles", y=1.0)
    fig.legend(
        handles, labels, loc="lower center", ncol=len(labels), frameon=False, bbox_to_anchor=(0.5, -0.04)
    )
    fig.tight_layout()
    return _save(fig, path)


def _order(method: str) -> int:
    return list(COLOURS).index(method) if method in COLOURS else len(COLOURS)


def quality_summary(runs: list[dict[str, Any]], budgets: tuple[int, ...] = (50, 100)) -> str:
    """Median best value over seeds per problem and budget, methods side by side, per workers."""
    methods = sorted({r["method"] for r in runs}, key=_order)
    budgets = tuple(b for b in budgets if all(len(r["values"]) >= b for r in runs)) or (
        len(runs[0]["values"]),
    )
    out = []
    for w in sorted({r["workers"] for r in runs}):
        where = "sequential" if w == 1 else f"{w} in flight"
        out.append(f"\n{where}: median best value over seeds (lower is better unless maximize)\n")
        out.append("| problem | budget | " + " | ".join(methods) + " |")
        out.append("|---|---|" + "---|" * len(methods))
        for pname in PROBLEMS:
            curves = quality_curves(runs, pname, w)
            if not curves:
                continue
            for b in budgets:
                cells = [_num(float(np.median(curves[m][:, b - 1]))) if m in curves else "–" for m in methods]
                vals = {m: float(np.median(curves[m][:, b - 1])) for m in curves}
                best = (max if PROBLEMS[pname].goal == "maximize" else min)(vals.values())
                cells = [
                    f"**{c}**" if m in vals and vals[m] == best else c
                    for m, c in zip(methods, cells, strict=True)
                ]
                out.append(f"| {pname} ({PROBLEMS[pname].goal[:3]}) | {b} | " + " | ".join(cells) + " |")
    out.append("\nMean optimiser time per 100-trial run, s (suggest + tell; the objective excluded)\n")
    ws = sorted({r["workers"] for r in runs})
    out.append("| method | " + " | ".join("sequential" if w == 1 else f"{w} in flight" for w in ws) + " |")
    out.append("|---|" + "---|" * len(ws))
    for m in methods:
        cells = [
            f"{np.mean([r['suggest_s'] for r in runs if r['method'] == m and r['workers'] == w]):.2f}"
            for w in ws
        ]
        out.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(out)


# -- suggestion latency ---------------------------------------------------------------------------
def plot_latency(results: list[dict[str, Any]], path: Path) -> Path:
    """CPU ms per suggestion against completed trials, one panel per problem (log-log). CPU, not
    wall time: on a shared machine the wall time also counts waiting for a core."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(results), figsize=(5.2 * len(results), 3.6), squeeze=False)
    for ax, res in zip(axes.flat, results, strict=True):
        for method in dict.fromkeys(r["method"] for r in res["results"]):
            rs = sorted((r for r in res["results"] if r["method"] == method), key=lambda r: r["n"])
            x = [r["n"] for r in rs]
            med = [statistics.median(r["cpu_ms"]) for r in rs]
            lo = [m - min(r["cpu_ms"]) for m, r in zip(med, rs, strict=True)]
            hi = [max(r["cpu_ms"]) - m for m, r in zip(med, rs, strict=True)]
            ax.errorbar(
                x,
                med,
                yerr=[lo, hi],
                marker="o",
                ms=4,
                capsize=2,
                color=COLOURS.get(method),
                lw=2.0 if method == "sweepq-bayes" else 1.2,
                label=LABELS.get(method, method),
            )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(res["sizes"], [str(n) for n in res["sizes"]])
        ax.minorticks_off()
        ax.set_xlabel("completed trials in the sweep")
        ax.set_ylabel("CPU ms per suggestion (median, min–max)")
        ax.set_title(f"{res['problem']}")
        ax.yaxis.set_major_formatter(_plt().FuncFormatter(lambda v, _: f"{v:g}"))
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, frameon=False, bbox_to_anchor=(0.5, -0.12))
    fig.suptitle(
        "Time per suggestion, one thread (bars: min–max of the timed calls, a refit included)", y=1.0
    )
    fig.tight_layout()
    return _save(fig, path)


def latency_table(res: dict[str, Any]) -> str:
    sizes = res["sizes"]
    out = [
        f"\nsuggest_latency --problem {res['problem']}: wall ms per suggestion, median (min–max)\n",
        "| method | " + " | ".join(f"N={n}" for n in sizes) + " |",
        "|---|" + "---|" * len(sizes),
    ]
    for method in dict.fromkeys(r["method"] for r in res["results"]):
        cells = []
        for n in sizes:
            r = next((r for r in res["results"] if r["method"] == method and r["n"] == n), None)
            cells.append(
                "skipped"
                if r is None
                else f"{statistics.median(r['wall_ms']):.1f} ({min(r['wall_ms']):.1f}–{max(r['wall_ms']):.1f})"
            )
        out.append(f"| {method} | " + " | ".join(cells) + " |")
    out.append("\nCPU ms per suggestion, median (min–max)\n")
    out.append("| method | " + " | ".join(f"N={n}" for n in sizes) + " |")
    out.append("|---|" + "---|" * len(sizes))
    for method in dict.fromkeys(r["method"] for r in res["results"]):
        cells = [
            next(
                (
                    f"{statistics.median(r['cpu_ms']):.1f} ({min(r['cpu_ms']):.1f}–{max(r['cpu_ms']):.1f})"
                    for r in res["results"]
                    if r["method"] == method and r["n"] == n
                ),
                "skipped",
            )
            for n in sizes
        ]
        out.append(f"| {method} | " + " | ".join(cells) + " |")
    out.append("\nfirst call of a fresh process, ms\n")
    out.append("| method | " + " | ".join(f"N={n}" for n in sizes) + " |")
    out.append("|---|" + "---|" * len(sizes))
    for method in dict.fromkeys(r["method"] for r in res["results"]):
        cells = [
            next(
                (f"{r['cold_ms']:.0f}" for r in res["results"] if r["method"] == method and r["n"] == n),
                "skipped",
            )
            for n in sizes
        ]
        out.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(out)


# -- early stopping -------------------------------------------------------------------------------
def plot_early_stopping(workloads: dict[str, dict[str, Any]], path: Path) -> Path:
    """Epochs trained (% of no stopping) against the mean gap of the best final metric."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(workloads), figsize=(5.4 * len(workloads), 3.9), squeeze=False)
    markers = {"hyperband": "s", "asha": "^", "median": "o", "none": "*"}
    for ax, (name, data) in zip(axes.flat, workloads.items(), strict=True):
        for row in data["rows"]:
            method = row["method"]
            owner = (
                "sweepq"
                if method.startswith("sweepq")
                else "optuna"
                if method.startswith("optuna")
                else "none"
            )
            kind = next((k for k in markers if k in method), "none")
            colour = {"sweepq": COLOURS["sweepq-bayes"], "optuna": COLOURS["optuna-tpe"], "none": "black"}[
                owner
            ]
            x, y = 100 * row["steps_frac"], 100 * row["gap_rel_mean"]
            ax.scatter(x, y, marker=markers[kind], s=60 if kind == "none" else 40, color=colour, zorder=3)
            setting = method.rsplit(" ", 1)[1] if "/" in method else ""
            if setting:  # sweepq's below its point, Optuna's above: the two often land close together
                ax.annotate(
                    setting,
                    (x, y),
                    textcoords="offset points",
                    xytext=(5, -9 if owner == "sweepq" else 4),
                    fontsize=7,
                    color=colour,
                )
        ax.set_xlabel("epochs trained, % of no stopping")
        ax.set_ylabel("best final metric: mean gap to no stopping, %")
        ax.set_xlim(15, 105)
        ax.set_title(f"{name}: {data['rows'][0]['seeds']} seeds, 60 trials x 27 epochs, 4 in flight")
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], ls="", marker="o", color=COLOURS["sweepq-bayes"], label="sweepq's rules"),
        Line2D([], [], ls="", marker="o", color=COLOURS["optuna-tpe"], label="Optuna's pruners"),
        Line2D([], [], ls="", marker="*", color="black", label="no stopping"),
        Line2D([], [], ls="", marker="s", color="grey", label="hyperband (min_iter/eta)"),
        Line2D([], [], ls="", marker="^", color="grey", label="ASHA (min_iter/eta)"),
        Line2D([], [], ls="", marker="o", color="grey", label="median"),
    ]
    axes.flat[-1].legend(handles=handles, frameon=False, fontsize=8, loc="upper right")
    fig.suptitle("Early stopping: cost against quality (lower left is better)", y=1.0)
    fig.tight_layout()
    return _save(fig, path)


# -- dispatch -------------------------------------------------------------------------------------
#: dispatch.py's system names as its JSON records them
SYSTEM_LABELS = {
    "sweepq": "sweepq",
    "sweepq, 1 trial/message": "sweepq, 1 trial/message",
    "optuna-journal-redis": "Optuna, journal on Redis",
    "optuna-rdb-pg": "Optuna, RDB on PostgreSQL",
}
SYSTEM_COLOURS = {
    "sweepq": COLOURS["sweepq-bayes"],
    "sweepq, 1 trial/message": COLOURS["sweepq-bayes+8pending"],
    "optuna-journal-redis": COLOURS["optuna-tpe"],
    "optuna-rdb-pg": COLOURS["optuna-gp"],
}


def _save_with_legend_below(fig: Any, ax: Any, path: Path) -> Path:
    """One legend for the figure, under its panels (the labels of ``ax``), then save it."""
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(
        handles, labels, loc="lower center", ncol=len(labels), frameon=False, bbox_to_anchor=(0.5, -0.06)
    )
    fig.tight_layout()
    return _save(fig, path)


def plot_dispatch(results: list[dict[str, Any]], path: Path) -> Path:
    """Trials per second of the no-op workload, per system and number of workers."""
    plt = _plt()
    systems = list(dict.fromkeys(r["system"] for r in results))
    workers = sorted({r["workers"] for r in results})
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 3.8))
    width = 0.8 / len(systems)
    for i, s in enumerate(systems):
        tps = [
            next((r["tps"] for r in results if r["system"] == s and r["workers"] == w), 0.0) for w in workers
        ]
        over = [
            next(
                (
                    1e3 * statistics.median(r["overhead"])
                    for r in results
                    if r["system"] == s and r["workers"] == w
                ),
                0.0,
            )
            for w in workers
        ]
        xs = np.arange(len(workers)) + (i - (len(systems) - 1) / 2) * width
        for a, vals, fmt in ((ax, tps, "{:.0f}"), (ax2, over, "{:.1f}")):
            bars = a.bar(xs, vals, width, color=SYSTEM_COLOURS.get(s), label=SYSTEM_LABELS.get(s, s))
            a.bar_label(bars, [fmt.format(v) for v in vals], fontsize=7, padding=1)
    floor = 1 / statistics.median([r["floor"] for r in results])
    for a in (ax, ax2):
        a.set_xticks(np.arange(len(workers)), [f"{w} worker{'s' if w > 1 else ''}" for w in workers])
    ax.set_ylabel("trials per second")
    ax.set_title(f"Throughput, no-op trials (spawning alone: {floor:.0f}/s)")
    ax2.set_ylabel("ms per trial above spawning it (median)")
    ax2.set_title("Per-trial overhead")
    return _save_with_legend_below(fig, ax, path)


def plot_dispatch_long(results: list[dict[str, Any]], path: Path) -> Path:
    """Trials ended against time in one long run (``--trials 10000``), and the rate per window:
    where a system slows down as its study grows, and how fast it starts."""
    plt = _plt()
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 3.8))
    for r in results:
        if r.get("system") not in SYSTEM_LABELS or not r.get("ends"):
            continue
        ends = np.asarray(r["ends"])
        label = f"{SYSTEM_LABELS[r['system']]}, {r['workers']} workers"
        colour = SYSTEM_COLOURS.get(r["system"])
        ax.plot(ends, np.arange(1, len(ends) + 1), color=colour, label=label)
        edges = np.arange(0, len(ends) + 1, 500)
        rate = 500 / np.diff(np.concatenate([[0.0], ends[edges[1:] - 1]]))
        ax2.step(edges[1:], rate, where="pre", color=colour, label=label)
    ax.set_xlabel("seconds since the start")
    ax.set_ylabel("trials ended")
    ax.set_title("Trials ended over time")
    ax2.set_xlabel("trials ended")
    ax2.set_ylabel("trials per second (windows of 500)")
    ax2.set_ylim(bottom=0)
    ax2.set_title("Rate as the sweep (study) grows")
    return _save_with_legend_below(fig, ax, path)


# -- scale and web --------------------------------------------------------------------------------
def plot_scale(scale: dict[str, Any] | None, web: dict[int, dict[str, Any]], path: Path) -> Path:
    """Per-trial cost as the sweep grows, and the dashboard API's server time at 1k-10k trials."""
    plt = _plt()
    panels = int(bool(scale and scale.get("growth"))) + int(bool(web))
    fig, axes = plt.subplots(1, panels, figsize=(5.4 * panels, 3.6), squeeze=False)
    axs = list(axes.flat)
    if scale and scale.get("growth"):
        ax = axs.pop(0)
        ws = scale["growth"]["windows"]
        x = [w["at"] for w in ws]
        ax.plot(
            x,
            [1e3 * w["over_p50"] for w in ws],
            marker="o",
            color=COLOURS["sweepq-bayes"],
            label="per-trial cycle, p50",
        )
        ax.plot(
            x,
            [1e3 * w["ctl_cpu"] for w in ws],
            marker="s",
            color=COLOURS["wandb-bayes"],
            label="controller CPU per trial",
        )
        ax.plot(
            x,
            [1e3 * w["red_cpu"] for w in ws],
            marker="^",
            color=COLOURS["sweepq-random"],
            label="Redis CPU per trial",
        )
        ax.set_ylim(bottom=0)
        ax.set_xlabel("trials already in the sweep")
        ax.set_ylabel("ms")
        ax.set_title("Controller + store as one sweep grows")
        ax.legend(frameon=False, fontsize=8)
    if web:
        ax = axs.pop(0)
        sizes = sorted(web)
        series = [
            ("runs page (50, newest first)", "cold", "runs page, first call of a process", "--", "#7f8c8d"),
            ("all runs, unpaged (CLI list)", "warm", "all runs, unpaged", "-", "#2471a3"),
            ("runs page (50, newest first)", "warm", "runs page", "-", "#27ae60"),
            ("status", "warm", "status", "-", "#8e44ad"),
        ]
        for ep, kind, label, ls, colour in series:
            ys = [
                1e3 * (web[n]["cold_s"][ep] if kind == "cold" else statistics.median(web[n]["warm_s"][ep]))
                for n in sizes
            ]
            ax.plot(sizes, ys, marker="o", ls=ls, label=label, color=colour)
        ax.plot(
            sizes,
            [1e3 * statistics.median(web[n]["poll_changed_s"]) for n in sizes],
            marker="s",
            color=COLOURS["sweepq-bayes"],
            label="sweep page poll, 20 trials changed",
        )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(sizes, [f"{n:,}" for n in sizes])
        ax.minorticks_off()
        top = ax.get_ylim()[1]
        ticks = [t for t in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000) if t <= top]
        ax.set_yticks(ticks, [str(t) for t in ticks])
        ax.set_ylim(1, top)
        ax.set_xlabel("finished trials in the sweep")
        ax.set_ylabel("server ms (median of 30 calls)")
        ax.set_title("Dashboard API")
        ax.legend(frameon=False, fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


# -- main -----------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--tables", action="store_true", help="also print the summary tables")
    args = ap.parse_args(argv)
    res, out = args.results, args.out
    made: list[Path] = []

    def step(name: str, needs: list[Path], fn: Callable[[], Any]) -> None:
        if missing := [p.name for p in needs if not p.exists()]:
            print(f"{name}: skipped, no {', '.join(missing)} in {res}")
            return
        made.extend(p for p in [fn()] if isinstance(p, Path))

    quality = res / "search_quality.jsonl"
    if quality.exists():
        runs = load_jsonl(quality)
        for w, suffix in ((8, ""), (1, "-sequential")):
            if any(r["workers"] == w for r in runs):
                made.append(plot_quality(runs, w, out / f"bench-search-quality{suffix}.png"))
        if args.tables:
            print(quality_summary(runs))
    else:
        print(f"search quality: skipped, no {quality.name} in {res}")
    lat = [json.loads(p.read_text()) for p in sorted(res.glob("suggest_latency_*.json"))]
    lat.sort(key=lambda r: r["problem"] != "hartmann6")
    if lat:
        made.append(plot_latency(lat, out / "bench-suggest-latency.png"))
        if args.tables:
            for r in lat:
                print(latency_table(r))
    else:
        print(f"suggestion latency: skipped, no suggest_latency_*.json in {res}")
    es = {
        name: json.loads((res / f"early_stopping_{name}.json").read_text())[name]
        for name in ("synthetic", "sgd")
        if (res / f"early_stopping_{name}.json").exists()
    }
    step(
        "early stopping",
        [res / "early_stopping_synthetic.json"],
        lambda: plot_early_stopping(es, out / "bench-early-stopping.png"),
    )
    step(
        "dispatch",
        [res / "dispatch.json"],
        lambda: plot_dispatch(json.loads((res / "dispatch.json").read_text()), out / "bench-dispatch.png"),
    )
    step(
        "dispatch, 10,000 trials",
        [res / "dispatch_10000.json"],
        lambda: plot_dispatch_long(
            json.loads((res / "dispatch_10000.json").read_text()), out / "bench-dispatch-10000.png"
        ),
    )
    web = {int(p.stem.rsplit("_", 1)[1]): json.loads(p.read_text()) for p in res.glob("web_latency_*.json")}
    scale = json.loads((res / "scale.json").read_text()) if (res / "scale.json").exists() else None
    if scale or web:
        made.append(plot_scale(scale, web, out / "bench-scale.png"))
    else:
        print(f"scale: skipped, no scale.json or web_latency_*.json in {res}")
    for p in made:
        print(f"wrote {p}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
