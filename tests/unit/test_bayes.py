"""Unit tests of sweepq's bayes strategy (pure: no Redis, no clock)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from scipy import stats

from sweepq.config import load_config
from sweepq.search import bayes
from sweepq.search import random as random_search


def cfg(parameters: dict[str, Any], goal: str = "minimize", **metric: Any) -> dict[str, Any]:
    return load_config(
        {
            "method": "bayes",
            "program": "train.py",
            "metric": {"name": "loss", "goal": goal, **metric},
            "parameters": parameters,
        }
    )


def trial(
    i: int,
    params: dict[str, Any],
    value: float | None,
    state: str = "finished",
    history: list[float] | None = None,
) -> dict[str, Any]:
    return {
        "id": str(i),
        "params": params,
        "state": state,
        "metric": value,
        "history": [value] if history is None and value is not None else (history or []),
    }


def run_sweep(config: dict[str, Any], f: Any, budget: int, seed: int = 0) -> list[dict[str, Any]]:
    trials: list[dict[str, Any]] = []
    for i in range(budget):
        (p,) = bayes.suggest(config, trials, 1, seed=seed)
        trials.append(trial(i, p, f(p)))
    return trials


def observed(config: dict[str, Any], f: Any, k: int, seed: int = 0) -> list[dict[str, Any]]:
    """k finished trials at one space-filling batch (one cheap call instead of a whole sweep)."""
    return [trial(i, p, f(p)) for i, p in enumerate(bayes.suggest(config, [], k, seed=seed))]


# --- convergence ---------------------------------------------------------------------------------


def test_converges_on_1d_quadratic() -> None:
    c = cfg({"x": {"min": -5.0, "max": 5.0}})
    trials = run_sweep(c, lambda p: (p["x"] - 1.3) ** 2, budget=15)
    assert min(t["metric"] for t in trials) < 1e-3


def test_converges_on_3d_rosenbrock() -> None:
    c = cfg({f"x{i}": {"min": -2.0, "max": 2.0} for i in range(3)})

    def rosen(p: dict[str, float]) -> float:
        x = [p["x0"], p["x1"], p["x2"]]
        return sum(100 * (x[i + 1] - x[i] ** 2) ** 2 + (1 - x[i]) ** 2 for i in range(2))

    trials = run_sweep(c, rosen, budget=40)
    # Random search with 40 trials ends at a median of ~21 on this box; bayes at 0.8-2.2 (seeds 0-2).
    assert min(t["metric"] for t in trials) < 4.0


def test_maximize() -> None:
    c = cfg({"x": {"min": -5.0, "max": 5.0}}, goal="maximize")
    trials = run_sweep(c, lambda p: 3.0 - (p["x"] + 2.0) ** 2, budget=15)
    best = max(t["metric"] for t in trials)
    assert best > 3.0 - 1e-3


# --- pending trials and batches ------------------------------------------------------------------


def _branin(p: dict[str, float]) -> float:
    x, y = p["x"], p["y"]
    return (
        (y - 5.1 / (4 * math.pi**2) * x * x + 5 / math.pi * x - 6) ** 2
        + 10 * (1 - 1 / (8 * math.pi)) * math.cos(x)
        + 10
    )


BRANIN = {"x": {"min": -5.0, "max": 10.0}, "y": {"min": 0.0, "max": 15.0}}


def _unit(ps: list[dict[str, float]]) -> np.ndarray:
    return np.array([[(p["x"] + 5) / 15, p["y"] / 15] for p in ps])


def _min_pairwise(X: np.ndarray) -> float:
    d = np.sqrt(((X[:, None, :] - X[None, :, :]) ** 2).sum(-1))
    return float(d[np.triu_indices(len(X), 1)].min())


@pytest.mark.parametrize("n_observed", [0, 15])
def test_batch_of_8_is_distinct_and_spread(n_observed: int) -> None:
    c = cfg(BRANIN)
    trials = observed(c, _branin, n_observed, seed=3)
    batch = bayes.suggest(c, trials, 8, seed=3)
    assert len(batch) == 8
    assert len({(p["x"], p["y"]) for p in batch}) == 8
    # W&B's kriging believer put such a batch within ~0.03 of one point (WANDB-COMPAT 2.4.7).
    assert _min_pairwise(_unit(batch)) > 0.03
    spread = _unit(batch).std(axis=0).sum()
    assert spread > 0.1


def test_pending_trials_repel_new_suggestions() -> None:
    c = cfg(BRANIN)
    trials = observed(c, _branin, 12, seed=4)
    pending = []
    for i in range(8):
        (p,) = bayes.suggest(c, trials + pending, 1, seed=100 + i)
        pending.append(trial(100 + i, p, None, state="running" if i % 2 else "queued"))
    X = _unit([t["params"] for t in pending])
    assert _min_pairwise(X) > 0.03
    # and none repeats an existing trial
    keys = {(t["params"]["x"], t["params"]["y"]) for t in trials}
    assert not keys & {(t["params"]["x"], t["params"]["y"]) for t in pending}


def test_batch_of_32_in_10_dimensions_is_distinct_and_spread() -> None:
    """A fleet's batch: 32 picks of one call must not pile up next to the incumbent."""
    c = cfg({f"x{i}": {"min": 0.0, "max": 1.0} for i in range(10)})

    def f(p: dict[str, float]) -> float:
        return sum((p[f"x{i}"] - 0.3) ** 2 for i in range(10))

    trials = observed(c, f, 25, seed=1)
    batch = bayes.suggest(c, trials, 32, seed=1)
    X = np.array([[p[f"x{i}"] for i in range(10)] for p in batch])
    assert len({tuple(row) for row in X}) == 32
    # a fleet's holes are small (0.01 length scales: the picks may close in on the optimum of this
    # bowl), but 32 picks do not pile up on one point as a lie-less batch does (within 1e-3)
    assert _min_pairwise(X) > 0.02
    assert float(np.median(np.sqrt(((X[:, None] - X[None]) ** 2).sum(-1)))) > 0.05


def test_fleet_settings_apply_only_past_the_gate(monkeypatch: pytest.MonkeyPatch) -> None:
    """Smaller holes and the polish are for fleets: at FLEET_IN_FLIGHT trials in flight or fewer,
    a call behaves as before (the settings measured for up to 8 in flight)."""
    assert bayes.penalty_radius(bayes.FLEET_IN_FLIGHT) == bayes.PENALTY_RADIUS
    assert bayes.penalty_radius(bayes.FLEET_IN_FLIGHT + 1) == bayes.FLEET_PENALTY_RADIUS
    c = cfg({f"x{i}": {"min": 0.0, "max": 1.0} for i in range(3)})
    trials = observed(c, lambda p: sum((v - 0.3) ** 2 for v in p.values()), 10, seed=2)
    calls: list[int] = []
    real = bayes._polish

    def counting(*args: Any) -> np.ndarray:
        calls.append(len(args[1]))
        return real(*args)

    monkeypatch.setattr(bayes, "_polish", counting)
    running = [trial(100 + i, p, None, "running") for i, p in enumerate(bayes.suggest(c, trials, 16, seed=5))]
    bayes.suggest(c, trials + running[:15], 1, seed=6)  # 16 in flight
    assert calls == []
    bayes.suggest(c, trials + running, 1, seed=6)  # 17 in flight
    assert calls == [bayes.POLISH]


def test_polish_climbs_the_acquisition_within_its_box() -> None:
    """The L-BFGS-B polish never leaves a candidate worse than it started, nor farther than
    POLISH_STEP from it, and its analytic gradient agrees with finite differences."""
    c = cfg({f"x{i}": {"min": 0.0, "max": 1.0} for i in range(4)})
    space = bayes._space_for(c["parameters"])
    rng = np.random.default_rng(0)
    X = rng.random((30, 4))
    y = ((X - 0.4) ** 2).sum(axis=1)
    z = bayes._warp(y)
    amp, ls, noise, _ = bayes._fit_hyper(X, y)
    post = bayes._Posterior(X, z, amp, ls, noise)
    pending = [rng.random(4) for _ in range(3)]
    ls_pen = np.minimum(ls, 1.0)
    best = float(z.min())

    def acq(C: np.ndarray) -> np.ndarray:
        mu, sd = post.predict(post.project(C))
        return bayes._log_ei(mu, sd, best) + bayes._log_penalty(C, pending, ls_pen)

    x = rng.random(4)
    val, grad = bayes._log_ei_grad(post, x, best, np.asarray(pending), ls_pen, bayes.PENALTY_RADIUS)
    assert val == pytest.approx(float(acq(x[None])[0]), abs=1e-9)
    fd = [(acq((x + e)[None])[0] - acq((x - e)[None])[0]) / 2e-6 for e in np.eye(4) * 1e-6]
    np.testing.assert_allclose(grad, fd, rtol=1e-4, atol=1e-6)

    starts = rng.random((5, 4))
    out = bayes._polish(space, starts, post, best, pending, ls_pen, bayes.PENALTY_RADIUS, np.asarray)
    assert out.shape == starts.shape
    assert np.all(np.abs(out - starts) <= bayes.POLISH_STEP + 1e-12)
    assert np.all(acq(out) >= acq(starts) - 1e-9)
    assert np.mean(acq(out) - acq(starts)) > 0.01  # and it does climb


def test_cold_start_is_space_filling_with_many_in_flight() -> None:
    c = cfg({f"x{i}": {"min": 0.0, "max": 1.0} for i in range(4)})
    trials: list[dict[str, Any]] = []
    for i in range(8):  # 8 workers start at once: no observation yet
        (p,) = bayes.suggest(c, trials, 1)  # no seed: fresh randomness, like separate calls
        trials.append(trial(i, p, None, state="queued"))
    X = np.array([[t["params"][f"x{i}"] for i in range(4)] for t in trials])
    assert _min_pairwise(X) > 0.25  # 8 uniform random points in [0,1]^4 have ~0.2


def test_seeded_calls_are_reproducible_and_cache_independent() -> None:
    c = cfg(BRANIN)
    trials = observed(c, _branin, 14, seed=5)
    a = bayes.suggest(c, trials, 3, seed=9)
    bayes._HYPER_CACHE.clear()
    bayes._SPACE_CACHE.clear()
    b = bayes.suggest(c, trials, 3, seed=9)
    assert a == b
    assert bayes.suggest(c, trials, 3, seed=10) != a


# --- parameter types -----------------------------------------------------------------------------


ALL_TYPES = {
    "const": {"value": "fixed"},
    "cat": {"values": [0, False, None, "", [1, 2], {"k": 1}]},
    "catp": {"values": ["a", "b", "c"], "probabilities": [0.5, 0.5, 0.0]},
    "i": {"min": -3, "max": 4},
    "u": {"min": -1.5, "max": 2.5},
    "qu": {"distribution": "q_uniform", "min": 0, "max": 100, "q": 5},
    "qf": {"distribution": "q_uniform", "min": 0.0, "max": 1.0, "q": 0.25},
    "lu": {"distribution": "log_uniform", "min": -5.0, "max": 0.0},
    "luv": {"distribution": "log_uniform_values", "min": 1e-6, "max": 1e-1},
    "qluv": {"distribution": "q_log_uniform_values", "min": 8, "max": 512, "q": 8},
    "ilu": {"distribution": "inv_log_uniform", "min": 0.0, "max": 5.0},
    "iluv": {"distribution": "inv_log_uniform_values", "min": 1e-3, "max": 1.0},
    "n": {"distribution": "normal", "mu": 10.0, "sigma": 2.0},
    "qn": {"distribution": "q_normal", "mu": 0.0, "sigma": 5.0, "q": 1},
    "ln": {"distribution": "log_normal", "mu": 0.0, "sigma": 0.5},
    "qln": {"distribution": "q_log_normal", "mu": 2.0, "sigma": 0.5, "q": 0.5},
    "b": {"distribution": "beta", "a": 2.0, "b": 5.0},
    "qb": {"distribution": "q_beta", "a": 1.0, "b": 1.0, "q": 0.1},
    "nest": {
        "parameters": {
            "act": {"values": ["relu", "tanh"]},
            "deep": {"parameters": {"w": {"min": 1, "max": 3}}},
        }
    },
}


def _check_types(p: dict[str, Any]) -> None:
    assert p["const"] == "fixed"
    assert p["cat"] in ALL_TYPES["cat"]["values"]
    assert p["catp"] in ("a", "b")  # probability 0 is never suggested
    assert type(p["i"]) is int and -3 <= p["i"] <= 4
    assert type(p["u"]) is float and -1.5 <= p["u"] <= 2.5
    assert type(p["qu"]) is int and p["qu"] % 5 == 0 and 0 <= p["qu"] <= 100
    assert type(p["qf"]) is float and p["qf"] in (0.0, 0.25, 0.5, 0.75, 1.0)
    assert math.exp(-5) - 1e-12 <= p["lu"] <= 1.0
    assert 1e-6 <= p["luv"] <= 1e-1
    assert type(p["qluv"]) is int and p["qluv"] % 8 == 0 and 8 <= p["qluv"] <= 512
    assert math.exp(-5) - 1e-12 <= p["ilu"] <= 1.0 + 1e-12
    assert 1e-3 <= p["iluv"] <= 1.0
    assert type(p["n"]) is float and 10 - 4 * 2 < p["n"] < 10 + 4 * 2
    assert type(p["qn"]) is int
    assert p["ln"] > 0
    assert abs(p["qln"] / 0.5 - round(p["qln"] / 0.5)) < 1e-9
    assert 0 <= p["b"] <= 1
    assert abs(p["qb"] * 10 - round(p["qb"] * 10)) < 1e-9 and 0 <= p["qb"] <= 1
    assert p["nest"]["act"] in ("relu", "tanh")
    assert type(p["nest"]["deep"]["w"]) is int and 1 <= p["nest"]["deep"]["w"] <= 3


def test_every_parameter_type_round_trips() -> None:
    c = cfg(ALL_TYPES)
    rng = np.random.default_rng(0)
    trials: list[dict[str, Any]] = []
    for i in range(22):  # space-filling phase (n_initial = 20 here), then the model phase
        (p,) = bayes.suggest(c, trials, 1, seed=1)
        _check_types(p)
        trials.append(trial(i, p, float(rng.normal() + p["u"] ** 2)))
    info = bayes.suggest_with_info(c, trials, 4, seed=2)
    assert info[1]["phase"] == "model"
    for p in info[0]:
        _check_types(p)
    # every category (falsy and unhashable ones included) is reachable and encodes as itself
    X, ok = bayes._space_for(c["parameters"]).encode_trials([t["params"] for t in trials])
    assert ok.all()


def test_categorical_is_one_hot_not_ordinal() -> None:
    space = bayes._space_for(cfg({"c": {"values": ["a", "b", "c", "d"]}})["parameters"])
    assert space.n_features == 4


def test_an_undersampled_category_stays_uncertain() -> None:
    """Two trials of category 'b', both far from the optimum that 16 trials of 'a' found, fit
    "the category does not matter" as well as anything: an unbounded length scale then copies
    'a's landscape onto 'b' (posterior sd at 'b's unexplored optimum 0.09 of the prior), and the
    model stops trying 'b'. The bounded one-hot length scale keeps 'b' uncertain there."""
    c = cfg({"x": {"min": 0.0, "max": 1.0}, "kind": {"values": ["a", "b", "c"]}})

    def f(p: dict[str, Any]) -> float:
        return (p["x"] - 0.3) ** 2

    trials = [
        trial(i, {"x": float(x), "kind": "a"}, f({"x": x})) for i, x in enumerate(np.linspace(0.02, 0.98, 16))
    ]
    trials += [trial(16 + i, {"x": x, "kind": "b"}, f({"x": x})) for i, x in enumerate([0.9, 0.95])]
    space = bayes._space_for(c["parameters"])
    data = bayes._collect(space, c["metric"], trials)
    amp, ls, noise, _ = bayes._fit_hyper(data.X_obs, data.y_obs, space.cat_mask)
    assert (ls[space.cat_mask] <= bayes.CAT_LS_MAX).all()
    post = bayes._Posterior(data.X_obs, bayes._warp(data.y_obs), amp, ls, noise)
    at = space.encode_trials([{"x": 0.3, "kind": k} for k in ("a", "b")])[0]
    _, sd = post.predict(post.project(at))
    sd_a, sd_b = sd / math.sqrt(amp)
    assert sd_a < 0.05  # 'a' is known there
    assert sd_b > 0.4  # 'b' is not (0.09 with an unbounded length scale)


# Two log-scale parameters whose good region is a diagonal in log space when they interact.
LOG_PAIR = {
    "a": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1e2},
    "b": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1.0},
    "u": {"min": 0.0, "max": 1.0},
}


def _ridge(p: dict[str, Any]) -> float:
    """Good where a / b = 10**1.5, whatever their scale (as a ridge regression's alpha / gamma)."""
    return (math.log10(p["a"]) - math.log10(p["b"]) - 1.5) ** 2 + 0.1 * (p["u"] - 0.5) ** 2


def _separable(p: dict[str, Any]) -> float:
    return (math.log10(p["a"]) + 1) ** 2 + (math.log10(p["b"]) + 2) ** 2 + 0.1 * (p["u"] - 0.5) ** 2


def _random_log_pair_points(n: int, seed: int) -> list[dict[str, Any]]:
    return random_search.suggest(cfg(LOG_PAIR), [], n, seed=seed)


def test_log_pair_features_follow_products_and_ratios() -> None:
    space = bayes._space_for(cfg(LOG_PAIR)["parameters"])
    assert len(space.log_pairs) == 1
    t = np.logspace(-1.5, 1.5, 7)
    same_product = space.encode_trials([{"a": 1e-2 * k, "b": 1e-2 / k, "u": 0.5} for k in t])[0]
    same_ratio = space.encode_trials([{"a": 1e-1 * k, "b": 1e-2 * k, "u": 0.5} for k in t])[0]
    fp, fr = space.model_features(same_product), space.model_features(same_ratio)
    assert fp.shape == (7, space.n_features + 2)
    np.testing.assert_array_equal(fp[:, : space.n_features], same_product)
    assert np.ptp(fp[:, -2]) < 1e-12 < np.ptp(fp[:, -1])  # sum constant along a * b = const
    assert np.ptp(fr[:, -1]) < 1e-12 < np.ptp(fr[:, -2])  # difference constant along a / b = const
    corners = space.encode_trials([{"a": a, "b": b, "u": 0.0} for a in (1e-4, 1e2) for b in (1e-4, 1.0)])[0]
    extra = space.model_features(corners)[:, -2:]
    assert extra.min() == pytest.approx(0.0) and extra.max() == pytest.approx(1.0)


def test_log_pair_features_need_two_to_four_log_parameters() -> None:
    one = bayes._space_for(cfg({"a": LOG_PAIR["a"], "u": LOG_PAIR["u"]})["parameters"])
    five = bayes._space_for(
        cfg({f"p{i}": LOG_PAIR["a"] for i in range(bayes.LOG_PAIRS_MAX + 1)})["parameters"]
    )
    for space in (one, five):
        assert space.log_pairs == []
        X = np.random.default_rng(0).random((3, space.n_features))
        assert space.model_features(X) is X
    four = bayes._space_for(cfg({f"p{i}": LOG_PAIR["a"] for i in range(bayes.LOG_PAIRS_MAX)})["parameters"])
    assert len(four.log_pairs) == 6


@pytest.mark.parametrize("seed", [0, 1])
def test_pair_features_enter_only_where_two_scales_interact(seed: int) -> None:
    """The pair features raise the marginal likelihood by 17-56 nats on a ratio ridge and by ~0 on a
    separable function (seeds 0-3, 15 and 30 random points; 0.4 at most), so the gate is far from both."""
    c = cfg(LOG_PAIR)
    space = bayes._space_for(c["parameters"])
    points = _random_log_pair_points(15 + 200, seed)
    held_out = space.encode_trials(points[15:])[0]
    for f, interacts in ((_ridge, True), (_separable, False)):
        data = bayes._collect(space, c["metric"], [trial(i, p, f(p)) for i, p in enumerate(points[:15])])
        amp, ls, noise, pairs = bayes._fit_model(space, data.X_obs, data.y_obs)
        assert pairs is interacts
        if interacts:  # and they let 15 points predict the ridge better than the plain model does
            mf = space.model_features
            post = bayes._Posterior(mf(data.X_obs), bayes._warp(data.y_obs), amp, ls, noise)
            amp0, ls0, noise0, _ = bayes._fit_hyper(data.X_obs, data.y_obs, space.cat_mask)
            plain = bayes._Posterior(data.X_obs, bayes._warp(data.y_obs), amp0, ls0, noise0)
            truth = np.array([f(p) for p in points[15:]])
            rho = stats.spearmanr(post.predict(post.project(mf(held_out)))[0], truth).statistic
            rho0 = stats.spearmanr(plain.predict(plain.project(held_out))[0], truth).statistic
            assert rho > 0.99 and rho > rho0


def test_batch_with_pending_trials_on_a_pair_model() -> None:
    c = cfg(LOG_PAIR)
    points = _random_log_pair_points(24, 3)
    trials = [trial(i, p, _ridge(p)) for i, p in enumerate(points[:20])]
    trials += [trial(20 + i, p, None, state="running") for i, p in enumerate(points[20:])]
    space = bayes._space_for(c["parameters"])
    data = bayes._collect(space, c["metric"], trials)
    assert bayes._fit_model(space, data.X_obs, data.y_obs)[3]  # this batch goes through the pair model
    out, info = bayes.suggest_with_info(c, trials, 6, seed=0)
    assert info["phase"] == "model" and len(out) == 6
    keys = {(p["a"], p["b"], p["u"]) for p in out} | {(p["a"], p["b"], p["u"]) for p in points}
    assert len(keys) == 6 + 24
    # the model has learned the ridge: the batch's median lies far closer to it than random points
    assert float(np.median([_ridge(p) for p in out])) < 0.2 * float(np.median([_ridge(p) for p in points]))


def test_probabilities_work_in_model_phase() -> None:
    c = cfg(
        {
            "opt": {"values": ["sgd", "adam", "never"], "probabilities": [0.2, 0.8, 0.0]},
            "x": {"min": 0.0, "max": 1.0},
        }
    )
    trials = run_sweep(c, lambda p: (p["x"] - 0.5) ** 2 + (0.0 if p["opt"] == "sgd" else 0.3), 20)
    assert all(t["params"]["opt"] != "never" for t in trials)
    late = [t["params"]["opt"] for t in trials[10:]]
    assert late.count("sgd") > len(late) / 2  # the model learned the better category


def test_finite_space_is_exhausted_without_duplicates() -> None:
    c = cfg({"a": {"values": ["x", "y"]}, "b": {"min": 1, "max": 3}})
    trials: list[dict[str, Any]] = []
    for i in range(6):
        (p,) = bayes.suggest(c, trials, 1, seed=0)
        trials.append(trial(i, p, float(i % 3)))
    assert len({(t["params"]["a"], t["params"]["b"]) for t in trials}) == 6
    assert bayes.suggest(c, trials, 2, seed=0) == []


def test_distributions_with_one_value_give_it_as_random_search_does() -> None:
    """A distribution whose draws are all equal is not searched; its value is the one random
    search draws (a multiple of q, exp(mu) for a log-normal; never NaN)."""
    fixed = {
        "qn": {"distribution": "q_normal", "mu": 0.3, "sigma": 0.0, "q": 1},
        "ln": {"distribution": "log_normal", "mu": 1.0, "sigma": 0.0},
        "b0": {"distribution": "beta", "a": 0.0, "b": 2.0},
    }
    c = cfg({**fixed, "x": {"min": 0.0, "max": 1.0}})
    (r,) = random_search.suggest(c, [], 1, seed=0)
    for p in bayes.suggest(c, [], 3, seed=0):
        assert {k: p[k] for k in fixed} == {k: r[k] for k in fixed} == {"qn": 0, "ln": math.e, "b0": 0.0}


def test_beta_with_both_shapes_zero_is_searched_as_its_two_values() -> None:
    c = cfg({"b": {"distribution": "beta", "a": 0.0, "b": 0.0}, "c": {"values": ["x", "y"]}})
    trials = run_sweep(c, lambda p: p["b"] + (p["c"] == "y"), 4)
    assert sorted((t["params"]["b"], t["params"]["c"]) for t in trials) == [
        (0.0, "x"),
        (0.0, "y"),
        (1.0, "x"),
        (1.0, "y"),
    ]
    assert bayes.suggest(c, trials, 1, seed=0) == []


def test_q_without_a_multiple_inside_its_bounds_is_one_value() -> None:
    """Rounding reaches the nearest multiple (0 here), as in random search; a finite space with
    such a parameter is not empty."""
    c = cfg({"q": {"distribution": "q_uniform", "min": 0.1, "max": 0.2, "q": 1}, "c": {"values": ["x", "y"]}})
    out = bayes.suggest(c, [], 3, seed=0)
    assert sorted((p["q"], p["c"]) for p in out) == [(0, "x"), (0, "y")]


def test_categories_of_trials_are_found_by_value() -> None:
    """A value equal to a category by grid's rule (an integral float equals its int) is that
    category: the trial is in the space."""
    c = cfg({"c": {"values": [1, 2]}, "x": {"min": 0.0, "max": 1.0}})
    X, ok = bayes._space_for(c["parameters"]).encode_trials([{"c": 1.0, "x": 0.5}, {"c": 3, "x": 0.5}])
    assert ok.tolist() == [True, False]


# --- observations, imputation and warnings -------------------------------------------------------


def test_missing_metric_warns_and_never_invents_zero() -> None:
    c = cfg(BRANIN)
    trials = [trial(i, p, None) for i, p in enumerate(bayes.suggest(c, [], 6, seed=0))]
    out, info = bayes.suggest_with_info(c, trials, 2, seed=0)
    assert len(out) == 2
    assert any("never logged" in w for w in info["warnings"])
    assert info["phase"] == "space-filling"
    bayes.suggest(c, trials, 1, seed=0)
    assert bayes.last_warnings and "never logged" in bayes.last_warnings[0]


def test_all_equal_metrics_warn() -> None:
    c = cfg(BRANIN)
    trials = [trial(i, p, 1.0) for i, p in enumerate(bayes.suggest(c, [], 12, seed=0))]
    out, info = bayes.suggest_with_info(c, trials, 3, seed=0)
    assert len(out) == 3
    assert any("equal" in w for w in info["warnings"])


def test_non_numeric_and_nan_metrics_do_not_raise() -> None:
    c = cfg(BRANIN)
    ps = bayes.suggest(c, [], 12, seed=0)
    trials = [trial(i, p, _branin(p)) for i, p in enumerate(ps)]
    trials[0]["metric"], trials[0]["history"] = float("nan"), [float("nan")]
    trials[1]["metric"], trials[1]["history"] = "oops", [True]
    out, info = bayes.suggest_with_info(c, trials, 2, seed=0)
    assert len(out) == 2 and info["phase"] == "model"


def test_imputation_rule() -> None:
    c = cfg(BRANIN)
    space = bayes._space_for(c["parameters"])
    ps = bayes.suggest(c, [], 7, seed=0)
    trials = [
        trial(0, ps[0], 5.0, history=[9.0, 5.0]),  # finished: best over history+summary
        trial(1, ps[1], 7.0, history=[20.0, 7.0]),  # finished; 20 is the worst value seen
        trial(2, ps[2], None, state="failed", history=[3.0]),  # failed: worst (not its own 3.0)
        trial(3, ps[3], 4.0, state="stopped", history=[6.0, 4.0]),  # stopped early: its own best
        trial(4, ps[4], None, state="crashed"),  # crashed, nothing logged: worst
        trial(5, ps[5], None, state="running", history=[1.0]),  # running: pending by default
        trial(6, ps[6], None, state="queued"),
    ]
    d = bayes._collect(space, c["metric"], trials)
    assert d.y_obs.tolist() == [5.0, 7.0, 20.0, 4.0, 20.0]
    assert len(d.X_pend) == 2
    d = bayes._collect(space, {**c["metric"], "impute": "latest", "impute_while_running": "best"}, trials)
    assert d.y_obs.tolist() == [5.0, 7.0, 3.0, 4.0, 20.0, 1.0]
    # latest is the last valid history value (W&B's rule), not the summary logged after it
    late = [
        trial(0, ps[0], 5.0, history=[9.0, 5.0]),
        trial(1, ps[1], 0.5, state="failed", history=[3.0, 2.0, float("nan")]),
    ]
    d = bayes._collect(space, {**c["metric"], "impute": "latest"}, late)
    assert d.y_obs.tolist() == [5.0, 2.0]
    # maximize flips the sign: the model always minimises
    d = bayes._collect(space, {**c["metric"], "goal": "maximize"}, trials[:2])
    assert d.y_obs.tolist() == [-9.0, -20.0]


def test_trials_outside_the_space_are_ignored_with_a_warning() -> None:
    c = cfg({"c": {"values": ["a", "b"]}, "x": {"min": 0.0, "max": 1.0}})
    trials = run_sweep(c, lambda p: p["x"], 8)
    trials.append(trial(99, {"c": "zzz", "x": 0.5}, 0.0))
    trials.append(trial(98, {"x": 0.5}, 0.0))
    out, info = bayes.suggest_with_info(c, trials, 1, seed=0)
    assert len(out) == 1
    assert any("outside the current search space" in w for w in info["warnings"])


def test_refit_schedule_is_sparse_at_scale() -> None:
    points = {bayes._refit_point(n) for n in range(1, 2001)}
    assert len(points) < 60
    assert all(bayes._refit_point(n) <= n for n in (1, 21, 500, 2000))


# --- the warp of the metric ----------------------------------------------------------------------


def test_warp_keeps_a_plateau_apart_next_to_a_heavy_tail() -> None:
    """Kernel ridge on the diabetes data looks like this: good values within 3 % of each other,
    bad ones up to 1e10. The GP must still see the good values apart (the old median/IQR warp put
    the best and a 1 %-worse value 0.0006 standard deviations apart, below the GP's noise)."""
    good = np.array([2923.7, 2925.5, 2930.0, 2941.0, 2960.0, 2975.0, 3000.0, 3030.0])
    tail = np.array([3.2e3, 4.4e3, 7.4e3, 5.7e4, 3.4e7, 3.0e10, 5.0e5, 1.2e4])
    z = bayes._warp(np.concatenate([good, tail]))
    assert np.all(np.diff(z[: len(good)]) > 0)  # monotone
    assert z[4] - z[0] > 0.05  # best vs 1.2 % worse: a visible gap (in standard deviations)
    assert (z[4] - z[0]) / np.ptp(z) > 0.01  # ... not negligible next to the whole range
    assert z.max() < 3.5  # the 3e10 run is compressed, not an outlier that sets the scale
    # shift and scale of the metric do not matter
    assert np.allclose(bayes._warp(3.0 * np.concatenate([good, tail]) - 2000.0), z)


def test_warp_degenerate_inputs() -> None:
    assert np.allclose(
        bayes._warp(np.array([1.0, 1.0, 1.0, 5.0])), bayes._warp(np.array([0.0, 0.0, 0.0, 1.0]))
    )
    z = bayes._warp(np.array([2.0, 2.0]))
    assert np.all(np.isfinite(z)) and np.allclose(z, 0.0)
