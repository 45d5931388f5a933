"""The dashboard's plot data for sweeps with conditional parameters (``when``): a run that lacks
a parameter is absent on that axis and in that parameter's importance, never a value.

The pure functions of :mod:`sweepq.web.data` need no Redis; the last test reads the same data
through the HTTP API of a real store, for a sweep whose config has ``when``.
"""

from __future__ import annotations

import json
import random
from typing import Any

import numpy as np
import pytest

from sweepq.web import data


def trial(i: int, params: dict[str, Any], metric: float | None, state: str = "finished") -> dict[str, Any]:
    return {"id": f"s-{i}", "n": i, "params": params, "metric": metric, "state": state}


def optimizer_runs(n: int = 40, seed: int = 0) -> list[dict[str, Any]]:
    """Runs of ``opt: [sgd, adam]``, ``lr`` always, ``momentum`` and ``sched`` only for sgd,
    ``beta`` only for adam. The metric depends on ``momentum`` among the sgd runs, on ``beta``
    among the adam runs, and on the branch itself."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        lr = rng.uniform(0.001, 0.1)
        if i % 2:
            momentum = rng.uniform(0.0, 0.99)
            p = {
                "opt": "sgd",
                "lr": lr,
                "momentum": momentum,
                "sched": rng.choice(["constant", "invscaling"]),
            }
            loss = 1.0 + 2.0 * (momentum - 0.9) ** 2
        else:
            beta = rng.choice([0.9, 0.99, 0.999])
            p = {"opt": "adam", "lr": lr, "beta": beta}
            loss = 0.5 + (0.999 - beta)
        out.append(trial(i, p, loss + 0.01 * lr))
    return out


# -- parallel coordinates -------------------------------------------------------------------------
def test_parallel_absent_value_is_null_not_a_number_or_a_category() -> None:
    runs = optimizer_runs()
    par = data.parallel(runs, "minimize")
    by_id = {t["id"]: t for t in runs}
    dims = {d["name"]: d for d in par["dimensions"]}
    assert set(dims) == {"opt", "lr", "momentum", "sched", "beta"}
    for d in dims.values():  # every run keeps a place on every axis: no line is dropped
        assert len(d["values"]) == len(par["ids"]) == len(runs)
    for name in ("momentum", "beta"):
        d = dims[name]
        assert d["type"] == "numeric"
        for rid, v in zip(par["ids"], d["values"], strict=True):
            has = name in by_id[rid]["params"]
            assert (v is None) == (not has)
            if has:
                assert v == by_id[rid]["params"][name]
        assert d["absent"] == sum(1 for t in runs if name not in t["params"]) == 20
    sched = dims["sched"]
    assert sched["type"] == "categorical"
    assert sched["ticktext"] == ["constant", "invscaling"]  # no "null", "None" or "undefined" tick
    assert sched["absent"] == 20
    for rid, code in zip(par["ids"], sched["values"], strict=True):
        p = by_id[rid]["params"]
        assert code is None if "sched" not in p else sched["ticktext"][code] == p["sched"]
    # always-present axes say nothing about absence
    assert "absent" not in dims["opt"] and "absent" not in dims["lr"]
    assert None not in dims["opt"]["values"] and None not in dims["lr"]["values"]


def test_parallel_nested_conditional_group_uses_dotted_names() -> None:
    runs = [
        trial(0, {"model": {"kind": "tree", "depth": 3}}, 0.3),
        trial(1, {"model": {"kind": "linear"}}, 0.5),
        trial(2, {"model": {"kind": "tree", "depth": 5}}, 0.2),
        trial(3, {"model": {"kind": "linear"}}, 0.6),
    ]
    dims = {d["name"]: d for d in data.parallel(runs, "minimize")["dimensions"]}
    assert dims["model.depth"]["values"] == [5, 3, None, None]  # best first
    assert dims["model.depth"]["absent"] == 2
    assert dims["model.kind"]["ticktext"] == ["linear", "tree"]


def test_parallel_null_value_held_by_a_run_is_a_category_not_absence() -> None:
    runs = [
        trial(0, {"a": "x", "init": None}, 0.1),
        trial(1, {"a": "x", "init": 0.5}, 0.2),
        trial(2, {"a": "y"}, 0.3),
    ]
    d = next(d for d in data.parallel(runs, "minimize")["dimensions"] if d["name"] == "init")
    assert d["type"] == "categorical" and d["ticktext"] == ["0.5", "null"]
    assert d["values"] == [1, 0, None] and d["absent"] == 1


def test_parallel_keeps_an_axis_whose_only_variation_is_presence() -> None:
    runs = [
        trial(i, {"opt": {"s": "sgd", "a": "adam"}[o], **({"nesterov": True} if o == "s" else {})}, float(i))
        for i, o in enumerate("sasa")
    ]
    dims = {d["name"]: d for d in data.parallel(runs, "minimize")["dimensions"]}
    assert dims["nesterov"]["ticktext"] == ["true"] and dims["nesterov"]["values"] == [0, None, 0, None]
    # a parameter every run holds with one value is still left out
    runs = [trial(i, {**t["params"], "epochs": 5}, t["metric"]) for i, t in enumerate(runs)]
    assert "epochs" not in {d["name"] for d in data.parallel(runs, "minimize")["dimensions"]}


# -- importance -----------------------------------------------------------------------------------
def test_importance_judges_a_conditional_parameter_only_on_runs_that_have_it() -> None:
    runs = optimizer_runs()
    imp = data.importance(runs)
    rows = {r["param"]: r for r in imp["params"]}
    assert imp["n"] == 40 and imp["too_few"] == []
    assert set(rows) == {"opt", "lr", "momentum", "sched", "beta"}
    assert rows["opt"]["n"] == rows["lr"]["n"] == 40
    assert rows["momentum"]["n"] == rows["sched"]["n"] == rows["beta"]["n"] == 20
    # exactly the forest of the sgd runs alone (where opt is constant): the adam runs, which
    # lack momentum, count neither as some momentum value nor as a category "absent"
    sgd = [t for t in runs if t["params"]["opt"] == "sgd"]
    alone = {r["param"]: r for r in data.importance(sgd)["params"]}
    assert rows["momentum"]["importance"] == pytest.approx(alone["momentum"]["importance"])
    assert rows["sched"]["importance"] == pytest.approx(alone["sched"]["importance"])
    assert rows["momentum"]["importance"] > 0.5  # the metric of the sgd runs is momentum's
    # the correlation too is over the runs that have the parameter
    m = np.array([t["params"]["momentum"] for t in sgd])
    y = np.array([t["metric"] for t in sgd])
    assert rows["momentum"]["correlation"] == pytest.approx(float(np.corrcoef(m, y)[0, 1]))
    # the parameters every run has share one forest over all runs: their shares sum to 1
    assert rows["opt"]["importance"] + rows["lr"]["importance"] == pytest.approx(1.0)
    assert rows["opt"]["importance"] > rows["lr"]["importance"]


def test_importance_without_conditions_is_one_forest_summing_to_one() -> None:
    rng = random.Random(1)
    runs = [trial(i, {"x": (x := rng.random()), "k": rng.choice("ab")}, (x - 0.3) ** 2) for i in range(20)]
    imp = data.importance(runs)
    assert {r["n"] for r in imp["params"]} == {20} and imp["too_few"] == []
    assert sum(r["importance"] for r in imp["params"]) == pytest.approx(1.0)
    assert imp["params"][0]["param"] == "x"


def test_importance_lists_parameters_present_in_too_few_runs() -> None:
    runs = optimizer_runs(12)  # 6 sgd runs, 6 adam runs
    runs += [trial(100 + i, {"opt": "rmsprop", "lr": 0.01, "rho": 0.9 + i / 100}, 0.7) for i in range(3)]
    imp = data.importance(runs)
    assert imp["too_few"] == ["rho"]
    assert "rho" not in {r["param"] for r in imp["params"]}
    assert {"momentum", "beta"} <= {r["param"] for r in imp["params"]}
    # nothing judged yet: a note that says why
    few = data.importance([trial(i, {"a": i} if i < 3 else {"b": i}, float(i)) for i in range(5)])
    assert few["params"] == [] and few["too_few"] == ["a", "b"] and "each parameter" in few["note"]


# -- through the HTTP API ---------------------------------------------------------------------------
YAML = """\
method: random
metric: {name: loss, goal: minimize}
parameters:
  opt: {values: [sgd, adam]}
  lr: {min: 0.001, max: 0.1}
  momentum: {min: 0.0, max: 0.99, when: {opt: sgd}}
  sched: {values: [constant, invscaling], when: {opt: sgd}}
  beta: {values: [0.9, 0.99, 0.999], when: {opt: adam}}
program: train.py
"""


@pytest.mark.redis
def test_api_parallel_and_importance_of_a_conditional_sweep(store) -> None:  # noqa: ANN001
    from sweepq.config import load_config
    from sweepq.web import create_app

    cfg = load_config(YAML)
    assert cfg["parameters"]["momentum"]["when"] == {"opt": ["sgd"]}
    sid = store.create_sweep(cfg)
    runs = optimizer_runs(16)
    tids = store.create_trials(sid, [t["params"] for t in runs])
    for tid, t in zip(tids, runs, strict=True):
        owner = f"o-{tid}"
        assert store.claim(sid, tid, owner, "w@test", 30).ok
        assert store.log_metrics(sid, tid, owner, [t["metric"]], [json.dumps({"loss": t["metric"]})])
        assert store.finish_trial(sid, tid, owner, "finished", 0)
    client = create_app(store, {"api_token": None}).test_client()

    listed = {r["id"]: r["params"] for r in client.get(f"/api/sweeps/{sid}/runs").json}
    assert all(("momentum" in p) == (p["opt"] == "sgd") for p in listed.values())

    par = client.get(f"/api/sweeps/{sid}/parallel").json
    dims = {d["name"]: d for d in par["dimensions"]}
    for rid, v in zip(par["ids"], dims["momentum"]["values"], strict=True):
        assert (v is None) == (listed[rid]["opt"] == "adam")
    assert dims["beta"]["absent"] == dims["momentum"]["absent"] == 8
    assert "null" not in dims["sched"]["ticktext"]

    imp = client.get(f"/api/sweeps/{sid}/importance").json
    rows = {r["param"]: r for r in imp["params"]}
    assert rows["momentum"]["n"] == rows["beta"]["n"] == 8 and rows["opt"]["n"] == 16
