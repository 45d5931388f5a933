"""A multi-objective sweep through the whole system: a real controller, real Redis, real
``celery worker`` processes, and a program that logs two objectives (``tests/programs/mo_trial.py``).

What must hold: every trial's summary values are the values its program logged last; the front that
``sweepq best --json`` returns is exactly the non-dominated set of those values (checked here by brute
force); ``runs --csv`` has a column per objective; ``status`` counts the front; bayes hands out
distinct points and the sweep ends at its run_cap.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PROGRAMS, wait_for

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def mo_config(method: str, **over: object) -> dict:
    return {
        "method": method,
        "program": str(PROGRAMS / "mo_trial.py"),
        "command": ["${env}", "${interpreter}", "${program}", "${args}"],
        "metric": [{"name": "f1", "goal": "minimize"}, {"name": "f2", "goal": "minimize"}],
        "parameters": {
            "x1": {"values": [0.0, 0.25, 0.5, 1.0]} if method == "grid" else {"min": 0.0, "max": 1.0},
            "x2": {"values": [0.0, 0.5]} if method == "grid" else {"min": 0.0, "max": 1.0},
            "x3": {"value": 0.0},
            "steps": {"value": 3},
        },
        **over,
    }


def brute_front(values: dict[str, tuple[float, float]]) -> set[str]:
    def dom(a: tuple[float, float], b: tuple[float, float]) -> bool:
        return a[0] <= b[0] and a[1] <= b[1] and a != b

    return {i for i, v in values.items() if not any(dom(w, v) for j, w in values.items() if j != i)}


def cli(sq_env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sweepq.cli", *args], env=sq_env, capture_output=True, text=True, timeout=60
    )


def test_grid_front_is_the_brute_force_front_of_what_was_logged(
    store,
    start_worker,
    controller,
    sq_env,
    tmp_path: Path,  # noqa: ANN001
) -> None:
    from sweepq.config import load_config

    rec = tmp_path / "rec"
    rec.mkdir()
    sid = store.create_sweep(load_config(mo_config("grid")))
    start_worker(concurrency=2, env={"SWEEPQ_TEST_RECORD": str(rec)})
    controller()
    wait_for(lambda: sid not in store.active_sweeps(), 120, what="grid end", info=lambda: store.status(sid))
    trials = store.get_trials(store.trial_ids(sid), history=True)
    assert len(trials) == 8 and all(t["state"] == "finished" for t in trials)
    logged = {t["id"]: json.loads((rec / f"{t['id']}.json").read_text()) for t in trials}
    for t in trials:  # the summary is the last value logged, per objective
        assert t["objectives"] == {k: v for k, v in logged[t["id"]].items() if v is not None}
        assert t["metric"] == logged[t["id"]]["f1"]
    complete = {i: (v["f1"], v["f2"]) for i, v in logged.items() if v["f2"] is not None}
    assert len(complete) == 6  # x1 = 0.5 never logged f2

    r = cli(sq_env, "best", sid, "--json")
    assert r.returncode == 0, r.stderr
    front = json.loads(r.stdout)["pareto"]
    assert {run["id"] for run in front} == brute_front(complete)
    assert [run["objectives"]["f1"] for run in front] == sorted(run["objectives"]["f1"] for run in front)
    assert all(
        set(run["objectives"]) == {"f1", "f2"} and run["metric"] == run["objectives"]["f1"] for run in front
    )

    table = cli(sq_env, "best", sid)
    assert table.returncode == 0 and f"{len(front)} run(s) on the Pareto front" in table.stdout
    st = json.loads(cli(sq_env, "status", sid, "--json").stdout)
    assert st["pareto_size"] == len(front) and [o["name"] for o in st["objectives"]] == ["f1", "f2"]
    rows = list(csv.DictReader(io.StringIO(cli(sq_env, "runs", sid, "--csv").stdout)))
    assert len(rows) == 8 and "f1" in rows[0] and "f2" in rows[0] and "metric" not in rows[0]
    by_id = {row["id"]: row for row in rows}
    for i, (f1, f2) in complete.items():
        assert float(by_id[i]["f1"]) == f1 and float(by_id[i]["f2"]) == f2


def test_bayes_two_objective_sweep_runs_to_its_cap(store, start_worker, controller, sq_env) -> None:  # noqa: ANN001
    from sweepq.config import load_config

    sid = store.create_sweep(load_config(mo_config("bayes", run_cap=16, seed=3)))
    start_worker(concurrency=3)
    controller()
    wait_for(lambda: sid not in store.active_sweeps(), 180, what="bayes end", info=lambda: store.status(sid))
    trials = store.get_trials(store.trial_ids(sid), history=False)
    assert len(trials) == 16 and all(t["state"] == "finished" for t in trials), [t["state"] for t in trials]
    points = {(t["params"]["x1"], t["params"]["x2"]) for t in trials}
    assert len(points) == 16  # no point twice
    st = store.status(sid)
    assert st["state"] == "finished" and st["end_reason"] == "run_cap 16 reached"
    assert st["pareto_size"] >= 1
    front = json.loads(cli(sq_env, "best", sid, "--json").stdout)["pareto"]
    vals = {t["id"]: (t["objectives"]["f1"], t["objectives"]["f2"]) for t in trials}
    assert {run["id"] for run in front} == brute_front(vals)


def test_runs_csv_names_an_objective_that_shares_a_run_column(store, sq_env) -> None:  # noqa: ANN001
    """An objective called ``params`` (a W&B script logging its model's parameter count) gets the
    column ``objective.params``; the run's own ``params`` column is left as it is."""
    from sweepq.config import load_config

    cfg = mo_config("random", metric=[{"name": "acc", "goal": "maximize"}, {"name": "params"}])
    sid = store.create_sweep(load_config(cfg))
    (tid,) = store.create_trials(sid, [{"x1": 0.5, "x2": 0.5, "x3": 0.0, "steps": 1}])
    values = json.dumps({"acc": 0.9, "params": 1200.0})
    assert store.claim(sid, tid, "o", "w@test", 30).ok
    assert store.finish_trial(sid, tid, "o", "finished", 0, values=[0.9], rows=[values], objectives=values)
    (row,) = list(csv.DictReader(io.StringIO(cli(sq_env, "runs", sid, "--csv").stdout)))
    assert json.loads(row["params"])["x1"] == 0.5
    assert float(row["acc"]) == 0.9 and float(row["objective.params"]) == 1200.0
