"""Multi-objective sweeps in the HTTP API, through Flask's test client on a real Redis namespace:
``objectives`` in the runs, ``best`` as the Pareto front, the ``pareto`` endpoint (ties, missing
values, a mix of goals, thinning) and single-metric sweeps answering exactly as before."""

from __future__ import annotations

import itertools
import json
import time
from typing import Any

import pytest

from sweepq.store import Store

pytestmark = pytest.mark.redis

TWO = [{"name": "acc", "goal": "maximize"}, {"name": "size", "goal": "minimize"}]
THREE = [
    {"name": "loss", "goal": "minimize"},
    {"name": "acc", "goal": "maximize"},
    {"name": "latency", "goal": "minimize"},
]


@pytest.fixture
def client(store: Store):  # noqa: ANN201
    from sweepq.web import create_app

    return create_app(store, {"api_token": None}).test_client()


def mo_sweep(store: Store, objectives: list[dict[str, str]], **over: Any) -> str:
    from sweepq.config import load_config

    cfg = {
        "method": "random",
        "metric": objectives,
        "program": "train.py",
        "parameters": {"x": {"min": 0.0, "max": 1.0}},
        **over,
    }
    return store.create_sweep(load_config(cfg))


def run_mo(
    store: Store,
    sid: str,
    tid: str,
    values: dict[str, Any],
    state: str = "finished",
    first_goal: str = "minimize",
) -> None:
    """One trial through the store's real transitions, logging ``values`` (its objectives' summary
    values, as the worker sends them); ``state="running"`` leaves it running."""
    owner = f"o-{tid}"
    assert store.claim(sid, tid, owner, "worker-1@test", 30).ok
    first = next(iter(values.values()), None)
    history = [float(first)] if isinstance(first, (int, float)) else []
    rows = [json.dumps({**values, "_step": 0})]
    objs = json.dumps(values)
    assert store.log_metrics(sid, tid, owner, history, rows, objectives=objs)
    if state != "running":
        assert store.finish_trial(
            sid, tid, owner, state, 0 if state == "finished" else 1, goal=first_goal, objectives=objs
        )


def two_objective_sweep(store: Store) -> tuple[str, list[str]]:
    """acc (maximize) and size (minimize): a tie on the front, a missing value, a value that is
    not a number, runs that are not finished (better than everything, and never on the front)."""
    sid = mo_sweep(store, TWO)
    tids = store.create_trials(sid, [{"x": i / 12} for i in range(12)])
    finished = {
        0: {"acc": 0.90, "size": 1200},  # front (tied with 3)
        1: {"acc": 0.80, "size": 1000},  # front
        2: {"acc": 0.70, "size": 1300},  # dominated by 0 and 1
        3: {"acc": 0.90, "size": 1200},  # front: equal vectors do not dominate each other
        4: {"acc": 0.95, "size": 2000},  # front (best acc)
        5: {"acc": 0.60, "size": 900},  # front (best size)
        6: {"acc": 0.85},  # size never logged: not a point
        10: {"acc": 0.80, "size": 1100},  # dominated by 1 (same acc, larger)
        11: {"acc": 0.97, "size": "n/a"},  # not a number: not a point
    }
    for i, values in finished.items():
        run_mo(store, sid, tids[i], values, first_goal="maximize")
    run_mo(store, sid, tids[7], {"acc": 0.99, "size": 100}, state="running")
    run_mo(store, sid, tids[8], {"acc": 0.99, "size": 50}, state="failed")
    # tids[9]: queued
    return sid, tids


def dominates(a: list[float], b: list[float], goals: list[str]) -> bool:
    sa = [-v if g == "maximize" else v for v, g in zip(a, goals, strict=True)]
    sb = [-v if g == "maximize" else v for v, g in zip(b, goals, strict=True)]
    return all(x <= y for x, y in zip(sa, sb, strict=True)) and sa != sb


# -- runs ---------------------------------------------------------------------------------------
def test_runs_carry_objectives(client, store: Store) -> None:  # noqa: ANN001
    sid, tids = two_objective_sweep(store)
    r = client.get(f"/api/sweeps/{sid}/runs")
    assert r.status_code == 200
    by_id = {x["id"]: x for x in r.json}
    assert [x["id"] for x in r.json] == tids
    assert all(set(x["objectives"]) == {"acc", "size"} for x in r.json)
    assert by_id[tids[0]]["objectives"] == {"acc": 0.9, "size": 1200.0}
    assert by_id[tids[0]]["metric"] == 0.9  # the first objective's value
    assert by_id[tids[6]]["objectives"] == {"acc": 0.85, "size": None}
    assert by_id[tids[11]]["objectives"] == {"acc": 0.97, "size": None}
    assert by_id[tids[7]]["state"] == "running" and by_id[tids[7]]["objectives"]["size"] == 100.0
    assert by_id[tids[9]]["objectives"] == {"acc": None, "size": None}
    # the same shape as the store's (sweepq runs --json)
    cli = store.get_runs(store.trial_ids(sid), ["acc", "size"])
    assert r.json == json.loads(json.dumps(cli))

    # paged and sorted by one objective: runs without the value last either way
    page = client.get(f"/api/sweeps/{sid}/runs?state=finished&sort=objectives.size&limit=3").json
    assert [x["objectives"]["size"] for x in page] == [900.0, 1000.0, 1100.0]
    desc = client.get(f"/api/sweeps/{sid}/runs?state=finished&sort=-objectives.size").json
    sizes = [x["objectives"]["size"] for x in desc]
    assert sizes[:2] == [2000.0, 1300.0] and sizes[-2:] == [None, None]
    assert client.get(f"/api/sweeps/{sid}/runs?sort=objectives.nosuch").status_code == 400

    d = client.get(f"/api/sweeps/{sid}/runs/{tids[4]}").json
    assert d["objectives"] == {"acc": 0.95, "size": 2000.0} and d["metric"] == 0.95
    assert d["history"] == [0.95] and {"acc", "size"} <= set(d["keys"])


def test_status_lists_objectives(client, store: Store) -> None:  # noqa: ANN001
    sid, _ = two_objective_sweep(store)
    st = client.get(f"/api/sweeps/{sid}").json
    assert st["objectives"] == TWO and st["pareto_size"] == 5
    assert st["metric"] == {"name": "acc", "goal": "maximize"}
    assert client.get("/api/sweeps").json == [json.loads(json.dumps(store.status(sid)))]


def test_objective_list_is_read_once(client, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    sid, tids = two_objective_sweep(store)
    calls: list[str] = []
    real = Store.sweep_objectives

    def counted(self: Store, s: str) -> list[dict[str, str]]:
        calls.append(s)
        return real(self, s)

    monkeypatch.setattr(Store, "sweep_objectives", counted)
    for _ in range(3):
        assert client.get(f"/api/sweeps/{sid}/runs?limit=2").status_code == 200
        assert client.get(f"/api/sweeps/{sid}/pareto").status_code == 200
        assert client.get(f"/api/sweeps/{sid}/runs/{tids[0]}").json["objectives"]["acc"] == 0.9
        assert "pareto" in client.get(f"/api/sweeps/{sid}/best").json
    assert calls == [sid]


# -- best ---------------------------------------------------------------------------------------
def test_best_is_the_pareto_front(client, store: Store) -> None:  # noqa: ANN001
    sid, tids = two_objective_sweep(store)
    r = client.get(f"/api/sweeps/{sid}/best")
    assert r.status_code == 200 and list(r.json) == ["pareto"]
    front = r.json["pareto"]
    # best first on acc (maximize), the tie in creation order, then size
    assert [x["id"] for x in front] == [tids[4], tids[0], tids[3], tids[1], tids[5]]
    assert r.json == json.loads(json.dumps({"pareto": store.pareto_front(sid)}))
    assert all(x["state"] == "finished" and set(x["objectives"]) == {"acc", "size"} for x in front)


def test_best_is_404_until_a_run_has_every_objective(client, store: Store) -> None:  # noqa: ANN001
    sid = mo_sweep(store, TWO)
    a, b = store.create_trials(sid, [{"x": 0.1}, {"x": 0.2}])
    run_mo(store, sid, a, {"acc": 0.5}, first_goal="maximize")
    r = client.get(f"/api/sweeps/{sid}/best")
    assert r.status_code == 404 and "every objective" in r.json["error"]
    run_mo(store, sid, b, {"acc": 0.4, "size": 10}, first_goal="maximize")
    time.sleep(0.25)  # past the cache's refresh interval
    assert [x["id"] for x in client.get(f"/api/sweeps/{sid}/best").json["pareto"]] == [b]


# -- pareto -------------------------------------------------------------------------------------
def test_pareto_two_objectives(client, store: Store) -> None:  # noqa: ANN001
    sid, tids = two_objective_sweep(store)
    r = client.get(f"/api/sweeps/{sid}/pareto")
    assert r.status_code == 200
    p = r.json
    assert p["objectives"] == TWO
    # finished runs with every value, in creation order; the running and failed ones are not
    # points even though they would dominate every other
    assert [x["id"] for x in p["points"]] == [tids[i] for i in (0, 1, 2, 3, 4, 5, 10)]
    assert all(set(x) == {"id", "values", "front", "state"} and x["state"] == "finished" for x in p["points"])
    values = {x["id"]: x["values"] for x in p["points"]}
    assert values[tids[0]] == [0.9, 1200.0] and values[tids[10]] == [0.8, 1100.0]
    assert p["front"] == [tids[4], tids[0], tids[3], tids[1], tids[5]]
    assert {x["id"] for x in p["points"] if x["front"]} == set(p["front"])
    assert p["total"] == 7 and p["incomplete"] == 2  # no size / a size that is not a number
    assert p["front"] == [x["id"] for x in client.get(f"/api/sweeps/{sid}/best").json["pareto"]]


def test_pareto_three_objectives_mixed_goals(client, store: Store) -> None:  # noqa: ANN001
    """loss (minimize), acc (maximize), latency (minimize): the front equals a brute-force
    check of every pair, and is ordered best first on loss, ties broken by the next objectives."""
    sid = mo_sweep(store, THREE)
    grid = list(itertools.product([0.1, 0.3, 0.2], [0.7, 0.9], [5.0, 3.0]))
    tids = store.create_trials(sid, [{"x": i / len(grid)} for i in range(len(grid) + 1)])
    for tid, (loss, acc, lat) in zip(tids, grid, strict=False):
        run_mo(store, sid, tid, {"loss": loss, "acc": acc, "latency": lat})
    run_mo(store, sid, tids[-1], {"loss": 0.1, "latency": 1.0})  # no acc
    p = client.get(f"/api/sweeps/{sid}/pareto").json
    goals = [o["goal"] for o in THREE]
    pts = {x["id"]: x["values"] for x in p["points"]}
    assert len(pts) == len(grid) and p["incomplete"] == 1 and tids[-1] not in pts
    expect = {i for i, v in pts.items() if not any(dominates(w, v, goals) for w in pts.values())}
    assert set(p["front"]) == expect
    # here one point dominates all others: loss 0.1, acc 0.9, latency 3.0
    assert [pts[i] for i in p["front"]] == [[0.1, 0.9, 3.0]]
    assert [x["front"] for x in p["points"]].count(True) == 1

    # a genuine trade-off: several on the front, ordered by loss then acc (best first)
    sid2 = mo_sweep(store, THREE)
    vals = [
        (0.1, 0.6, 9.0),
        (0.2, 0.9, 9.0),
        (0.2, 0.8, 1.0),
        (0.3, 0.95, 9.0),
        (0.3, 0.5, 9.5),
        (0.1, 0.6, 9.0),
    ]
    t2 = store.create_trials(sid2, [{"x": i / 10} for i in range(len(vals))])
    for tid, (loss, acc, lat) in zip(t2, vals, strict=True):
        run_mo(store, sid2, tid, {"loss": loss, "acc": acc, "latency": lat})
    p2 = client.get(f"/api/sweeps/{sid2}/pareto").json
    assert p2["front"] == [t2[0], t2[5], t2[1], t2[2], t2[3]]  # t2[4] is dominated by t2[0]
    assert [x["front"] for x in p2["points"]] == [True, True, True, True, False, True]


def test_pareto_limit_keeps_the_front(client, store: Store) -> None:  # noqa: ANN001
    sid, tids = two_objective_sweep(store)
    few = client.get(f"/api/sweeps/{sid}/pareto?limit=3").json
    assert [x["id"] for x in few["points"] if x["front"]] == [tids[i] for i in (0, 1, 3, 4, 5)]
    assert len(few["points"]) == 5 and few["total"] == 7
    six = client.get(f"/api/sweeps/{sid}/pareto?limit=6").json
    assert len(six["points"]) == 6 and sum(not x["front"] for x in six["points"]) == 1
    for bad in ("0", "x", "999999"):
        assert client.get(f"/api/sweeps/{sid}/pareto?limit={bad}").status_code == 400


def test_pareto_empty_and_errors(client, store: Store) -> None:  # noqa: ANN001
    sid = mo_sweep(store, TWO)
    store.create_trials(sid, [{"x": 0.5}])
    p = client.get(f"/api/sweeps/{sid}/pareto").json
    assert p == {"objectives": TWO, "points": [], "front": [], "total": 0, "incomplete": 0}
    r = client.get("/api/sweeps/nosuchsweep/pareto")
    assert r.status_code == 404 and r.json["error"]
    assert client.get("/api/sweeps/NO:such/pareto").status_code == 400


# -- single-metric sweeps -----------------------------------------------------------------------
def test_single_metric_sweep_unchanged(client, store: Store) -> None:  # noqa: ANN001
    from sweepq.config import load_config

    sid = store.create_sweep(
        load_config(
            {
                "method": "random",
                "metric": {"name": "loss", "goal": "minimize"},
                "program": "train.py",
                "parameters": {"x": {"min": 0.0, "max": 1.0}},
            }
        )
    )
    tids = store.create_trials(sid, [{"x": 0.1}, {"x": 0.2}])
    for tid, loss in zip(tids, [0.5, 0.3], strict=True):
        owner = f"o-{tid}"
        assert store.claim(sid, tid, owner, "w@test", 30).ok
        assert store.log_metrics(sid, tid, owner, [loss], [json.dumps({"loss": loss})])
        assert store.finish_trial(sid, tid, owner, "finished", 0)
    runs = client.get(f"/api/sweeps/{sid}/runs").json
    assert runs == json.loads(json.dumps([Store.run_json(t) for t in store.get_trials(tids, history=False)]))
    assert all("objectives" not in r for r in runs)
    assert "objectives" not in client.get(f"/api/sweeps/{sid}/runs/{tids[0]}").json
    st = client.get(f"/api/sweeps/{sid}").json
    assert "objectives" not in st and "pareto_size" not in st
    assert client.get(f"/api/sweeps/{sid}/best").json == {
        "run_id": tids[1],
        "value": 0.3,
        "params": {"x": 0.2},
    }
    assert client.get(f"/api/sweeps/{sid}/pareto").json == {
        "objectives": [],
        "points": [],
        "front": [],
        "total": 0,
        "incomplete": 0,
    }
    assert client.get(f"/api/sweeps/{sid}/runs?sort=objectives.loss").status_code == 400


def test_openapi_describes_pareto(client) -> None:  # noqa: ANN001
    spec = client.get("/api/openapi.json").json
    schemas = spec["components"]["schemas"]
    assert "/api/sweeps/{id}/pareto" in spec["paths"]
    assert set(schemas["ParetoPoints"]["required"]) == {"objectives", "points", "front"}
    assert "objectives" in schemas["Run"]["properties"] and "pareto_size" in schemas["Status"]["properties"]
    best = spec["paths"]["/api/sweeps/{id}/best"]["get"]["responses"]["200"]
    assert best["content"]["application/json"]["schema"]["oneOf"][1] == {
        "$ref": "#/components/schemas/Pareto"
    }
