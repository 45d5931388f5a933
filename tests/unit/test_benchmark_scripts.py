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
def test_suggest_latency_runs_on_each_kind_of_space(bench_path: None, problem: str,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    import suggest_latency

    rc = suggest_latency.main(["--problem", problem, "--sizes", "15", "--cycles", "1",
                               "--methods", "sweepq-bayes,sweepq-bayes+8pending,wandb-bayes,optuna-tpe"])
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
