"""Multi-objective sweeps, the pure parts: the config's list metric, the Pareto front, the
hypervolume, the box decomposition and closed-form EHVI of bayes, and the engine's suggestions."""

from __future__ import annotations

import itertools
import json
import math
import random

import numpy as np
import pytest

from sweepq import engine
from sweepq.config import load_config, to_yaml, validate
from sweepq.model import is_multi_objective, objectives, primary_metric
from sweepq.pareto import front, front_indices, hypervolume, objective_values
from sweepq.search import _bayes_mo as mo

TWO = [{"name": "acc", "goal": "maximize"}, {"name": "size", "goal": "minimize"}]


def cfg(**over: object) -> dict:
    return {
        "method": "bayes",
        "metric": TWO,
        "parameters": {"a": {"min": 0.0, "max": 1.0}, "b": {"min": 0.0, "max": 1.0}},
        **over,
    }


# -- config ----------------------------------------------------------------------------------------
def test_list_metric_is_normalised_and_round_trips() -> None:
    c = load_config(cfg(metric=[{"name": "acc", "goal": "maximize"}, {"name": "size"}]))
    assert c["metric"] == [{"name": "acc", "goal": "maximize"}, {"name": "size", "goal": "minimize"}]
    assert is_multi_objective(c) and primary_metric(c) == {"name": "acc", "goal": "maximize"}
    assert [o["name"] for o in objectives(c)] == ["acc", "size"]
    # a stored config is re-validated: JSON (the store) and YAML (sweepq config) give it back unchanged
    assert load_config(json.loads(json.dumps(c))) == c
    assert load_config(to_yaml(c)) == c
    single = load_config(cfg(metric={"name": "loss"}))
    assert not is_multi_objective(single) and objectives(single) == [primary_metric(single)]


@pytest.mark.parametrize(
    ("metric", "expected"),
    [
        ([{"name": "a"}], "metric: a list of objectives needs 2 to 4 entries (got 1)"),
        ([{"name": str(i)} for i in range(5)], "metric: a list of objectives needs 2 to 4 entries (got 5)"),
        ([{"name": "a"}, {"name": "a"}], "metric[1].name: 'a' is already an objective"),
        ([{"name": "a"}, {"goal": "minimize"}], "metric[1]: needs a name"),
        ([{"name": "a"}, {"name": "b", "goal": "up"}], "metric[1].goal:"),
        ([{"name": "a", "target": 0.1}, {"name": "b"}], "metric[0].target: is a single-metric setting"),
        ([{"name": "a"}, {"name": "b", "impute": "best"}], "metric[1].impute: is a single-metric setting"),
        ([{"name": "a"}, {"name": "b", "wieght": 2}], "metric[1].wieght: unknown key"),
        ([{"name": "a"}, "b"], "metric[1]: must be a mapping"),
    ],
)
def test_bad_list_metrics_get_one_line_naming_the_key(metric: object, expected: str) -> None:
    config, errors, _ = validate(cfg(metric=metric))
    assert config is None
    assert any(e.startswith(expected) for e in errors), errors


def test_wandb_metrics_key_points_to_the_list_metric() -> None:
    _, errors, _ = validate({**cfg(), "metric": None, "metrics": TWO} | {"metric": TWO[0]})
    assert any("metric: [{name: acc" in e for e in errors), errors


def test_early_termination_judges_the_first_objective() -> None:
    c = load_config(cfg(early_terminate={"type": "median", "warmup_steps": 1, "min_trials": 2}))
    # acc is maximised: the trial whose acc history is lowest is the one stopped
    trials = [
        {"id": "good", "state": "finished", "metric": [0.9, 1.0], "history": [0.8, 0.9, 0.9]},
        {"id": "also", "state": "finished", "metric": [0.8, 1.0], "history": [0.7, 0.8, 0.8]},
        {"id": "bad", "state": "running", "metric": [0.1, 0.0], "history": [0.1, 0.1, 0.1]},
    ]
    assert engine.to_stop(c, trials) == ["bad"]


# -- the front -------------------------------------------------------------------------------------
def test_front_with_ties_missing_values_and_mixed_goals() -> None:
    objs = [{"name": "acc", "goal": "maximize"}, {"name": "size", "goal": "minimize"}]
    trials = [
        {"id": "a", "state": "finished", "objectives": {"acc": 0.9, "size": 10.0}},
        {"id": "b", "state": "finished", "objectives": {"acc": 0.9, "size": 10.0}},  # a tie: both kept
        {"id": "c", "state": "finished", "objectives": {"acc": 0.8, "size": 5.0}},
        {"id": "d", "state": "finished", "objectives": {"acc": 0.8, "size": 6.0}},  # dominated by c
        {"id": "e", "state": "finished", "objectives": {"acc": 0.99}},  # size missing: off the front
        {"id": "f", "state": "running", "objectives": {"acc": 1.0, "size": 1.0}},  # not finished
        {"id": "g", "state": "finished", "objectives": {"acc": float("nan"), "size": 1.0}},
        {"id": "h", "state": "finished", "objectives": {"acc": 0.95, "size": 20.0}},
        {"id": "i", "state": "finished", "objectives": {"acc": 0.9, "size": 11.0}},  # same acc, bigger
    ]
    assert [t["id"] for t in front(trials, objs)] == ["h", "a", "b", "c"]


def test_objective_values_reads_the_engine_and_the_store_shapes() -> None:
    assert objective_values({"metric": [1.0, None]}, ["x", "y"]) == [1.0, None]
    assert objective_values({"metric": 2.0, "objectives": {"y": 3}}, ["x", "y"]) == [2.0, 3.0]
    assert objective_values({"metric": None, "objectives": None}, ["x", "y"]) == [None, None]


def test_front_indices_matches_brute_force_on_random_points() -> None:
    rng = random.Random(4)
    for _ in range(50):
        m = rng.choice([2, 3, 4])
        pts = [[float(rng.randint(0, 4)) for _ in range(m)] for _ in range(rng.randint(1, 30))]
        goals = [rng.choice(["minimize", "maximize"]) for _ in range(m)]
        signed = [[-v if g == "maximize" else v for v, g in zip(p, goals, strict=True)] for p in pts]

        def dominated(i: int, signed: list = signed) -> bool:
            return any(
                all(a <= b for a, b in zip(q, signed[i], strict=True)) and q != signed[i] for q in signed
            )

        assert sorted(front_indices(pts, goals)) == [i for i in range(len(pts)) if not dominated(i)]


# -- hypervolume, boxes, EHVI -----------------------------------------------------------------------
def test_hypervolume_known_values() -> None:
    assert hypervolume([[1, 1]], [2, 2]) == 1.0
    assert hypervolume([[0, 1], [1, 0]], [2, 2]) == 3.0
    assert hypervolume([[0, 1], [1, 0], [1, 1], [3, 0]], [2, 2]) == 3.0  # dominated and outside add nothing
    assert hypervolume([[0, 0, 0]], [1, 2, 3]) == 6.0
    # three boxes of 2, each pair meeting in the unit cube [1, 2]^3 that all three share: 6 - 3 + 1
    assert hypervolume([[0, 1, 1], [1, 0, 1], [1, 1, 0]], [2, 2, 2]) == 4.0
    # ZDT1's true front sampled densely approaches 121 - 1/3 with reference point (11, 11)
    f1 = np.linspace(0, 1, 20001)
    assert hypervolume(np.column_stack([f1, 1 - np.sqrt(f1)]).tolist(), [11, 11]) == pytest.approx(
        121 - 1 / 3, abs=1e-3
    )


def brute_hv(points: np.ndarray, ref: np.ndarray, lo: np.ndarray) -> float:
    """Hypervolume by the union of boxes on the grid of all coordinates (exact for these sizes)."""
    axes = [np.unique(np.concatenate([points[:, k], [lo[k], ref[k]]])) for k in range(len(ref))]
    total = 0.0
    for cell in itertools.product(*[range(len(a) - 1) for a in axes]):
        low = np.array([axes[k][c] for k, c in enumerate(cell)])
        high = np.array([axes[k][c + 1] for k, c in enumerate(cell)])
        if (points <= low).all(axis=1).any():
            total += float(np.prod(high - low))
    return total


@pytest.mark.parametrize("m", [2, 3, 4])
def test_hypervolume_and_boxes_agree_with_brute_force(m: int) -> None:
    rng = np.random.default_rng(m)
    for _ in range(5):
        P = rng.integers(0, 5, size=(rng.integers(1, 9), m)).astype(float)
        ref = np.full(m, 5.0)
        lo = np.zeros(m)
        want = brute_hv(P, ref, lo)
        assert hypervolume(P.tolist(), ref.tolist()) == pytest.approx(want)
        # the boxes cover exactly the part of the reference box that no point dominates
        L, U = mo.boxes(mo.nondominated(P), ref)
        free = np.prod(np.maximum(U - np.maximum(L, lo), 0.0), axis=1).sum()
        assert free + want == pytest.approx(float(np.prod(ref - lo)))


def test_ehvi_closed_form_matches_monte_carlo() -> None:
    rng = np.random.default_rng(0)
    P = mo.nondominated(rng.uniform(0, 1, size=(12, 3)))
    ref = np.full(3, 1.2)
    L, U = mo.boxes(P, ref)
    mu = np.array([[0.4, 0.5, 0.3], [0.9, 0.9, 0.9], [0.1, 0.2, 1.5]])
    sd = np.array([[0.2, 0.1, 0.3], [0.05, 0.05, 0.05], [0.3, 0.3, 0.3]])
    exact = mo.ehvi(mu, sd, L, U)
    base = hypervolume(P.tolist(), ref.tolist())
    for i in range(len(mu)):
        draws = rng.normal(mu[i], sd[i], size=(4000, 3))
        mc = np.mean([hypervolume(np.vstack([P, d]).tolist(), ref.tolist()) - base for d in draws])
        assert exact[i] == pytest.approx(mc, abs=0.004 + 0.03 * mc)


# -- the engine ------------------------------------------------------------------------------------
def zdt1(p: dict) -> list[float]:
    g = 1 + 9 * p["b"]
    return [p["a"], g * (1 - math.sqrt(p["a"] / g))]


def test_bayes_suggests_distinct_points_and_is_reproducible() -> None:
    c = cfg(metric=[{"name": "f1"}, {"name": "f2"}], seed=1)
    trials: list[dict] = []
    for i in range(14):
        p = engine.suggest(c, trials, n=1)[0]
        trials.append({"id": str(i), "params": p, "state": "finished", "metric": zdt1(p), "history": []})
    batch = engine.suggest(c, trials, n=8)
    assert len({(p["a"], p["b"]) for p in batch}) == 8
    assert engine.suggest(c, trials, n=8) == batch  # same seed, same trials: same answer
    # pending trials steer the next batch away from themselves
    pending = trials + [
        {"id": f"p{i}", "params": p, "state": "running", "metric": [None, None], "history": []}
        for i, p in enumerate(batch)
    ]
    again = engine.suggest(c, pending, n=4)
    assert not {(p["a"], p["b"]) for p in again} & {(p["a"], p["b"]) for p in batch}


def test_bayes_finds_a_better_front_than_random_on_zdt1() -> None:
    def run(method: str) -> float:
        c = cfg(method=method, metric=[{"name": "f1"}, {"name": "f2"}], seed=2)
        trials: list[dict] = []
        for i in range(30):
            p = engine.suggest(c, trials, n=1)[0]
            trials.append({"id": str(i), "params": p, "state": "finished", "metric": zdt1(p), "history": []})
        return hypervolume([t["metric"] for t in trials], [11, 11])

    assert run("bayes") > run("random")


def test_bayes_handles_failed_and_incomplete_trials() -> None:
    from sweepq.search import bayes

    c = load_config(cfg(metric=[{"name": "f1"}, {"name": "f2"}], seed=0))
    rng = random.Random(0)
    trials = []
    for i in range(12):
        p = {"a": rng.random(), "b": rng.random()}
        state = "failed" if i % 5 == 0 else "finished"
        metric = zdt1(p) if state == "finished" else [None, None]
        if i == 3:
            metric = [metric[0], None]  # f2 never logged
        trials.append({"id": str(i), "params": p, "state": state, "metric": metric, "history": []})
    out, info = bayes.suggest_with_info(c, trials, n=3, seed=0)
    assert len(out) == 3 and info["phase"] == "model"
    assert any("did not log every objective" in w for w in info["warnings"])


def test_random_and_grid_take_a_list_metric_unchanged() -> None:
    grid = cfg(method="grid", parameters={"a": {"values": [1, 2]}, "b": {"values": [3]}})
    assert engine.suggest(grid, [], n=5) == [{"a": 1, "b": 3}, {"a": 2, "b": 3}]
    single = engine.suggest(cfg(method="random", metric={"name": "f1"}, seed=3), [], n=4)
    assert engine.suggest(cfg(method="random", seed=3), [], n=4) == single


def test_bayes_with_several_objectives_on_categories_only() -> None:
    """No numeric feature to polish or move to a bound: the search still answers, distinct points."""
    c = cfg(
        metric=[{"name": "f1"}, {"name": "f2"}],
        parameters={
            "a": {"values": ["x", "y", "z"]},
            "b": {"values": [1, 2, 3, 4, 5, 6]},
            "c": {"values": [1, 2]},
        },
        seed=0,
    )
    trials: list[dict] = []
    for i in range(12):
        p = engine.suggest(c, trials, n=1)[0]
        f1 = {"x": 0.0, "y": 0.5, "z": 1.0}[p["a"]] + p["b"] / 6
        trials.append(
            {"id": str(i), "params": p, "state": "finished", "metric": [f1, 2 - f1 + p["c"]], "history": []}
        )
    batch = engine.suggest(c, trials, n=4)
    seen = {json.dumps(t["params"], sort_keys=True) for t in trials}
    assert len(batch) == 4 and not {json.dumps(p, sort_keys=True) for p in batch} & seen
