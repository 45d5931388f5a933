"""The benchmark scripts still run (tiny sizes): they are how performance claims are checked, so a
broken script would silently stop the numbers in docs/benchmarks.md from being reproducible."""

from __future__ import annotations

from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture
def bench_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(BENCH))
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # the scripts set these
        monkeypatch.setenv(var, "1")


# W&B's engine fits scikit-learn's GP with length-scale bounds its data often reaches
@pytest.mark.filterwarnings("ignore:The optimal value found for dimension")
@pytest.mark.parametrize("problem", ["hartmann6", "mixed"])
def test_suggest_latency_runs_on_each_kind_of_space(
    bench_path: None, problem: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import suggest_latency

    rc = suggest_latency.main(
        [
            "--problem",
            problem,
            "--sizes",
            "15",
            "--cycles",
            "1",
            "--methods",
            "sweepq-bayes,sweepq-bayes+8pending,wandb-bayes,optuna-tpe",
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0
    assert f"problem={problem}" in out
    for method in ("sweepq-bayes", "sweepq-bayes+8pending", "wandb-bayes", "optuna-tpe"):
        assert f"| {method} | " in out and f"{method} N=15: median" in out
    assert "skipped" not in out.split("Wall ms per cycle")[1]


def test_search_quality_simulates_a_parallel_sweep(bench_path: None) -> None:
    import search_quality

    r = search_quality.simulate("mixed", "sweepq-bayes", 4, 0, 14)
    assert len(r["values"]) == 14 and all(isinstance(v, float) for v in r["values"])
    assert len({repr(v) for v in r["values"]}) == 14  # 14 distinct points were evaluated


# W&B's engine fits scikit-learn's GP with length-scale bounds its data often reaches
@pytest.mark.filterwarnings("ignore:The optimal value found for dimension")
def test_conditional_quick_run_scores_every_method(
    bench_path: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import importlib.util
    import json

    import conditional

    out_file = tmp_path / "conditional.json"
    assert conditional.main(["--quick", "--out", str(out_file)]) == 0
    out = capsys.readouterr().out
    # a peer is left out only where its package is missing, and the script says why
    missing = {
        m: pkg
        for m, pkg in (("wandb-flat", "sweeps"), ("optuna-tpe", "optuna"))
        if not importlib.util.find_spec(pkg)
    }
    skipped = {line.split(":")[0] for line in out.splitlines() if ": skipped, " in line}
    assert skipped == set(missing), out
    assert all(f"{m}: skipped, the {pkg} package is not installed" in out for m, pkg in missing.items())
    ran = [m for m in conditional.METHODS if m not in missing]
    for m in ran:
        assert out.count(f"| {m} | ") == len(conditional.PROBLEMS)
    assert out.count("Verdict, sweepq's median regret:") == len(conditional.PROBLEMS)
    record = json.loads(out_file.read_text())
    assert len(record["runs"]) == len(conditional.PROBLEMS) * len(ran)
    assert all(
        len(r["values"]) == 10 and all(isinstance(v, float) for v in r["values"]) for r in record["runs"]
    )
    assert all(row["median"] >= 0 for rows in record["summary"].values() for row in rows.values())


def test_multi_objective_quick_run_scores_every_problem(
    bench_path: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A method that raises is recorded per run (an error string), never a crash; the ones that
    must work here (sweepq's random search, Optuna's TPE) have a hypervolume for every problem."""
    import json
    import math

    import multi_objective

    out_file = tmp_path / "multi_objective.json"
    assert multi_objective.main(["--quick", "--out", str(out_file)]) == 0
    out = capsys.readouterr().out
    assert out.count("Verdict (") == len(multi_objective.PROBLEMS)
    record = json.loads(out_file.read_text())
    methods = multi_objective.QUICK_METHODS
    assert {(r["problem"], r["method"]) for r in record["runs"]} == {
        (p, m) for p in multi_objective.PROBLEMS for m in methods
    }
    for r in record["runs"]:
        assert ("error" in r) != ("hv" in r), r
        if "hv" in r:
            assert len(r["values"]) == 20 and all(len(v) == len(r["values"][0]) for v in r["values"])
    for pname, problem in multi_objective.PROBLEMS.items():
        rows = record["summary"][pname]
        for m in ("sweepq-random", "optuna-tpe"):
            assert f"| {m} | " in out
            assert 0 < rows[m]["median"] < problem.true_hv and math.isfinite(rows[m]["suggest_s"])
        assert "median" in rows["sweepq"] or rows["sweepq"]["errors"]


def test_conditional_benchmark_rejects_a_method_that_ignores_when(bench_path: None) -> None:
    """A conditional method is scored only if its trials hold exactly the active parameters."""
    import conditional
    import search_quality

    problem = conditional.PROBLEMS["chain"]
    flat = search_quality.SweepqAdapter(conditional.flattened(problem), 0, "random")
    with pytest.raises(AssertionError, match="active parameters"):
        conditional.ActiveOnly(flat, problem.parameters).ask()


@pytest.mark.filterwarnings("ignore:The optimal value found for dimension")
def test_json_results_make_every_plot(
    bench_path: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The scripts' ``--json`` files are what plots.py reads: a tiny run of each, then the plots."""
    import json

    import early_stopping
    import plots
    import search_quality
    import suggest_latency

    res, img = tmp_path / "results", tmp_path / "img"
    res.mkdir()
    assert (
        search_quality.main(
            [
                "--problems",
                "branin",
                "--methods",
                "sweepq-random,optuna-tpe",
                "--seeds",
                "2",
                "--budgets",
                "12",
                "--workers",
                "1,8",
                "--json",
                str(res / "search_quality.jsonl"),
            ]
        )
        == 0
    )
    assert (
        suggest_latency.main(
            [
                "--problem",
                "hartmann6",
                "--sizes",
                "12",
                "--cycles",
                "1",
                "--methods",
                "sweepq-random,optuna-tpe",
                "--json",
                str(res / "suggest_latency_hartmann6.json"),
            ]
        )
        == 0
    )
    lat = json.loads((res / "suggest_latency_hartmann6.json").read_text())
    assert {(r["method"], r["n"]) for r in lat["results"]} == {("sweepq-random", 12), ("optuna-tpe", 12)}
    assert all(len(r["wall_ms"]) == 1 and r["cold_ms"] > 0 for r in lat["results"])
    assert (
        early_stopping.main(
            [
                "--workload",
                "synthetic",
                "--seeds",
                "2",
                "--trials",
                "8",
                "--methods",
                "sweepq asha 3/η3,optuna asha 3/η3",
                "--json",
                str(res / "early_stopping_synthetic.json"),
            ]
        )
        == 0
    )
    # dispatch, scale and web need a real Redis and Celery workers: their records, as the scripts write them
    run = {"workers": 1, "trials": 3, "tps": 200.0, "floor": 0.001, "overhead": [0.002, 0.003, 0.004]}
    (res / "dispatch.json").write_text(
        json.dumps([run | {"system": "sweepq"}, run | {"system": "optuna-journal-redis", "tps": 180.0}])
    )
    (res / "dispatch_10000.json").write_text(
        json.dumps(
            [
                run | {"system": "sweepq", "trials": 1000, "ends": [0.002 * i for i in range(1, 1001)]},
                run
                | {
                    "system": "optuna-journal-redis",
                    "trials": 1000,
                    "ends": [0.004 * i for i in range(1, 1001)],
                },
            ]
        )
    )
    window = {"over_p50": 0.003, "ctl_cpu": 0.0007, "red_cpu": 0.0003}
    (res / "scale.json").write_text(
        json.dumps({"growth": {"windows": [window | {"at": 100}, window | {"at": 200}]}})
    )
    for n in (100, 200):
        eps = ("status", "runs page (50, newest first)", "all runs, unpaged (CLI list)")
        (res / f"web_latency_{n}.json").write_text(
            json.dumps(
                {
                    "cold_s": {e: 0.01 for e in eps},
                    "warm_s": {e: [0.002, 0.003] for e in eps},
                    "poll_finished_s": [0.005],
                    "poll_changed_s": [0.006],
                }
            )
        )
    capsys.readouterr()
    assert plots.main(["--results", str(res), "--out", str(img), "--tables"]) == 0
    out = capsys.readouterr().out
    assert "skipped" not in out and "| branin (min) | 12 |" in out
    made = sorted(p.name for p in img.glob("*.png"))
    assert made == [
        "bench-dispatch-10000.png",
        "bench-dispatch.png",
        "bench-early-stopping.png",
        "bench-scale.png",
        "bench-search-quality-sequential.png",
        "bench-search-quality.png",
        "bench-suggest-latency.png",
    ]
    assert all((img / name).stat().st_size > 10_000 for name in made)


@pytest.mark.redis
@pytest.mark.slow
def test_capacity_quick_run_measures_models_and_simulates(
    bench_path: None, redis_server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Part A's per-unit costs, part B's table and part C's check, at tiny sizes; nothing of the
    run (keys, workers, stand-ins) is left behind."""
    import json
    import secrets

    import capacity
    import redis

    prefix = f"sqtcap{secrets.token_hex(3)}"
    out_file = tmp_path / "capacity.json"
    assert (
        capacity.main(["--quick", "--redis", redis_server, "--json", str(out_file), "--prefix", prefix]) == 0
    )
    out = capsys.readouterr().out
    assert "Per-unit costs" in out and "Simulation check" in out
    assert out.count("| 1 s | ") >= 1 and "| 1 h | " in out
    record = json.loads(out_file.read_text())
    lean = record["costs"]["lean"]
    assert lean["trial"]["processed"] > 5 and lean["trial"]["cmds"].get("evalsha", 0) > 0
    assert lean["idle_per_min"]["cmds"].get("brpop", 0) > 0
    assert lean["busy_per_min"]["cmds"].get("blpop", 0) > 0
    (sim,) = record["sims"]
    assert sim["measured"]["tps"] > 0 and sim["measured"]["processed"] > 0
    assert set(sim["error_pct"]) >= {"cpu", "processed", "bytes", "ctl_cpu", "tps"}
    r = redis.Redis.from_url(redis_server)
    assert not list(r.scan_iter(match=f"{prefix}*", count=1000))
