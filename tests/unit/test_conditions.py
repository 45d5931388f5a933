"""Conditional parameters (``when:``): validation, grid counts, what random and bayes suggest,
and that no argv, ``SWEEPQ_PARAMS``-style JSON or preview ever holds an inactive parameter."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from sweepq import engine
from sweepq.cli import main
from sweepq.command import args_json_text, render
from sweepq.conditions import Conditions
from sweepq.config import load_config, validate
from sweepq.params import flatten, make
from sweepq.search import bayes, grid

# opt: sgd brings momentum (and a constant nesterov); adam brings beta and sched, and
# sched: cosine brings warmup (a chain of two conditions); rms brings nothing.
PARAMS: dict[str, Any] = {
    "opt": {"values": ["sgd", "adam", "rms"]},
    "lr": {"values": [0.1, 0.01]},
    "momentum": {"values": [0.5, 0.9], "when": {"opt": "sgd"}},
    "nesterov": {"value": True, "when": {"opt": "sgd"}},
    "beta": {"values": [0.9, 0.99, 0.999], "when": {"opt": ["adam"]}},
    "sched": {"values": ["const", "cosine"], "when": {"opt": "adam"}},
    "warmup": {"values": [1, 2, 3], "when": {"sched": "cosine"}},
}
# lr x (sgd: 2 momenta | adam: 3 betas x (const: 1 | cosine: 3 warmups) | rms: 1)
GRID_SIZE = 2 * (2 + 3 * (1 + 3) + 1)

OWN = {"momentum": "sgd", "nesterov": "sgd", "beta": "adam", "sched": "adam"}


def _config(method: str = "grid", params: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    cfg = {"method": method, "parameters": params or PARAMS, "program": "train.py", **extra}
    if method == "bayes":
        cfg.setdefault("metric", {"name": "loss", "goal": "minimize"})
    return load_config(cfg)


def _assert_only_active(p: dict[str, Any]) -> None:
    """Exactly the parameters this point's choices activate."""
    for name, opt in OWN.items():
        assert (name in p) == (p["opt"] == opt), p
    assert ("warmup" in p) == (p.get("sched") == "cosine"), p
    assert "opt" in p and "lr" in p, p


# --- validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "line"),
    [
        (
            {"a": {"values": [1, 2]}, "b": {"min": 0.0, "max": 1.0, "when": {"c": 1}}},
            "parameters.b.when.c: names no parameter; name a parameter by its path, dotted for a nested one",
        ),
        (
            {"optimizer": {"values": ["sgd"]}, "b": {"min": 0.0, "max": 1.0, "when": {"optimiser": "sgd"}}},
            "parameters.b.when.optimiser: names no parameter (did you mean optimizer?); name a "
            "parameter by its path, dotted for a nested one",
        ),
        (
            {"a": {"values": [1, 2]}, "b": {"min": 0.0, "max": 1.0, "when": {"a": 3}}},
            "parameters.b.when.a: 3 is not one of a's values (1, 2)",
        ),
        (
            {"a": {"values": [1, 2]}, "b": {"min": 0.0, "max": 1.0, "when": {"a": [2, "x"]}}},
            "parameters.b.when.a: 'x' is not one of a's values (1, 2)",
        ),
        (
            {"a": {"min": 1, "max": 4}, "b": {"min": 0.0, "max": 1.0, "when": {"a": 3}}},
            "parameters.b.when.a: a is an int_uniform parameter; a condition can only name a "
            "parameter with values: [...] (or value: ...)",
        ),
        (
            {"a": {"values": [1, 2], "when": {"b": 1}}, "b": {"values": [1, 2], "when": {"a": 2}}},
            "parameters.a.when: conditions form a cycle: a -> b -> a",
        ),
        (
            {"a": {"values": [1, 2], "when": {"a": 1}}},
            "parameters.a.when: conditions form a cycle: a -> a",
        ),
        (
            {"a": {"values": [1, 2]}, "b": {"min": 0.0, "max": 1.0, "when": "a"}},
            "parameters.b.when: must be a mapping such as {optimizer: sgd} (got the string 'a')",
        ),
        (
            {"a": {"values": [1, 2]}, "b": {"min": 0.0, "max": 1.0, "when": {"a": []}}},
            "parameters.b.when.a: must be a value or a non-empty list of values (got [])",
        ),
        (
            {"m": {"parameters": {"k": {"values": [1]}, "x": {"value": 1, "when": {"k": 1}}}}},
            "parameters.m.parameters.x.when.k: names no parameter (did you mean m.k?); name a "
            "parameter by its path, dotted for a nested one",
        ),
    ],
)
def test_validation_names_the_key_path(params: dict[str, Any], line: str) -> None:
    config, errors, _ = validate({"method": "random", "parameters": params})
    assert config is None
    assert errors == [line]


def test_validation_exit_2_one_line_each(tmp_path: Any) -> None:
    path = tmp_path / "sweep.yaml"
    path.write_text(
        "method: random\nparameters:\n  a: {values: [1, 2]}\n"
        "  b: {min: 0.0, max: 1.0, when: {a: 3}}\n  c: {min: 0.0, max: 1.0, when: {z: 1}}\n"
    )
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 2
    lines = [x for x in result.output.splitlines() if x.strip()]
    assert any("parameters.b.when.a: 3 is not one of a's values" in x for x in lines)
    assert any("parameters.c.when.z: names no parameter" in x for x in lines)
    assert "Traceback" not in result.output


def test_normalised_form_and_group_condition() -> None:
    cfg = load_config(
        {
            "method": "grid",
            "parameters": {
                "kind": {"values": ["cnn", "mlp"]},
                "cnn": {
                    "when": {"kind": "cnn"},
                    "parameters": {
                        "kernel": {"values": [3, 5]},
                        "depth": {"values": [1, 2], "when": {"cnn.kernel": 5}},
                    },
                },
            },
        }
    )
    assert cfg["parameters"]["cnn"]["when"] == {"kind": ["cnn"]}
    pts = grid.points(cfg)
    # cnn: kernel 3 | kernel 5 x depth 1, 2 ; mlp: nothing more
    assert pts == [
        {"cnn": {"kernel": 3}, "kind": "cnn"},
        {"cnn": {"depth": 1, "kernel": 5}, "kind": "cnn"},
        {"cnn": {"depth": 2, "kernel": 5}, "kind": "cnn"},
        {"kind": "mlp"},
    ]


def test_a_config_without_when_is_unchanged() -> None:
    """W&B configs: the same grid order and the same seeded random draws as without the feature
    (the order of leaves is flatten's when nothing is conditional)."""
    params = {"b": {"values": [1, 2, 3]}, "a": {"min": 0.0, "max": 1.0}, "c": {"value": 4}}
    cfg = load_config({"method": "random", "parameters": params, "seed": 3})
    cond = Conditions(cfg["parameters"])
    assert not cond and cond.order == [("a",), ("b",), ("c",)]
    rng = np.random.default_rng([3, 0])  # random search's generator for trial 0 with seed 3
    expected = {path[0]: make(spec).sample(rng) for path, spec in flatten(cfg["parameters"]).items()}
    assert engine.suggest(cfg, [], n=1)[0] == expected


# --- grid ---------------------------------------------------------------------------------------


def test_grid_enumerates_each_active_combination_once_and_ends() -> None:
    cfg = _config("grid")
    pts = grid.points(cfg)
    assert len(pts) == GRID_SIZE
    assert len({json.dumps(p, sort_keys=True) for p in pts}) == GRID_SIZE
    for p in pts:
        _assert_only_active(p)
        if p["opt"] == "sgd":
            assert p["nesterov"] is True
    # parents first: a choice's own parameters vary faster than the choice
    assert [p["opt"] for p in pts[:2]] == ["sgd", "sgd"]


def test_grid_resumes_from_trials_and_ignores_inactive_values() -> None:
    cfg = _config("grid")
    pts = grid.points(cfg)
    done = [{"params": dict(p), "state": "finished"} for p in pts[:7]]
    # a trial that carries a value its choice does not use covers the same point
    done[0]["params"]["beta"] = 0.9
    rest = engine.suggest(cfg, done, n=1000)
    assert rest == pts[7:]
    everything = done + [{"params": p, "state": "running"} for p in rest]
    assert engine.suggest(cfg, everything, n=5) == []


def test_grid_of_a_huge_inactive_branch_stays_lazy() -> None:
    params = {
        "arch": {"values": ["small", "huge"]},
        **{f"h{i}": {"min": 0, "max": 999, "when": {"arch": "huge"}} for i in range(6)},
    }
    cfg = _config("grid", params)
    first = engine.suggest(cfg, [], n=3)
    assert first[0] == {"arch": "small"}
    assert first[1] == {"arch": "huge", **{f"h{i}": 0 for i in range(6)}}


# --- random -------------------------------------------------------------------------------------


def test_random_draws_only_active_parameters_and_replays_with_a_seed() -> None:
    cfg = _config("random", seed=7)
    pts = engine.suggest(cfg, [], n=300)
    for p in pts:
        _assert_only_active(p)
    assert {p["opt"] for p in pts} == {"sgd", "adam", "rms"}
    assert any("warmup" in p for p in pts) and any(p.get("sched") == "const" for p in pts)
    assert engine.suggest(cfg, [], n=300) == pts


# --- bayes --------------------------------------------------------------------------------------


def _loss(p: dict[str, Any]) -> float:
    y = 1.0 + (math.log10(p["lr"]) + 2) ** 2 if isinstance(p["lr"], float) else 1.0
    if p["opt"] == "adam":
        y -= 0.5 + (0.3 if p.get("warmup") == 2 else 0.0)
    return y


def test_bayes_suggests_only_active_parameters_through_both_phases() -> None:
    params = {
        **PARAMS,
        "lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1.0},
        "momentum": {"min": 0.0, "max": 0.99, "when": {"opt": "sgd"}},
        "beta": {"min": 0.8, "max": 0.999, "when": {"opt": "adam"}},
    }
    cfg = _config("bayes", params)
    trials: list[dict[str, Any]] = []
    for k in range(30):
        batch = engine.suggest(cfg, trials, n=2, seed=k)
        assert len(batch) == 2
        for p in batch:
            _assert_only_active(p)
            trials.append({"params": p, "state": "finished", "metric": _loss(p), "history": []})
    _, info = bayes.suggest_with_info(cfg, trials, n=4, seed=99)
    assert info["phase"] == "model"
    assert not any("outside the current search space" in w for w in info["warnings"])


def test_bayes_treats_values_of_inactive_parameters_as_absent() -> None:
    cfg = _config("bayes", {**PARAMS, "lr": {"min": 0.001, "max": 0.1}})
    space = bayes._space_for(cfg["parameters"])
    a = {"opt": "rms", "lr": 0.05}
    b = {"opt": "rms", "lr": 0.05, "momentum": 0.9, "beta": 0.99}  # values rms does not use
    X, ok = space.encode_trials([a, b, {"opt": "sgd", "lr": 0.05}])
    assert ok.tolist() == [True, True, False]  # sgd without its momentum is not a point
    assert np.array_equal(X[0], X[1])
    decoded, _ = space.decode(X[0])
    assert decoded == a


def test_bayes_exhausts_a_finite_conditional_space_exactly() -> None:
    cfg = _config("bayes")
    space = bayes._space_for(cfg["parameters"])
    assert space.size() == GRID_SIZE
    assert space.active_dim == 5  # adam's branch: opt, lr, beta, sched, warmup
    trials: list[dict[str, Any]] = []
    while True:
        batch = engine.suggest(cfg, trials, n=4, seed=len(trials))
        if not batch:
            break
        for p in batch:
            _assert_only_active(p)
            trials.append({"params": p, "state": "finished", "metric": _loss(p), "history": []})
        assert len(trials) <= GRID_SIZE
    assert len({json.dumps(t["params"], sort_keys=True) for t in trials}) == GRID_SIZE


# --- what a trial is given ----------------------------------------------------------------------


@pytest.mark.parametrize("method", ["grid", "random", "bayes"])
def test_no_argv_holds_an_inactive_parameter(method: str) -> None:
    command = [
        "${interpreter}",
        "${program}",
        "${args}",
        "${args_no_hyphens}",
        "${args_no_boolean_flags}",
        "${args_json}",
    ]
    cfg = _config(method, command=command)
    points = engine.suggest(cfg, [], n=GRID_SIZE, seed=1)
    assert points
    for p in points:
        argv = " ".join(render(cfg, p, sweep_id="s", run_id="r", interpreter="python"))
        blob = argv + args_json_text(p)
        for name, opt in OWN.items():
            assert (name in blob) == (p["opt"] == opt), (name, argv)
        assert ("warmup" in blob) == ("warmup" in p)


def test_preview_shows_only_active_parameters(tmp_path: Any) -> None:
    path = tmp_path / "sweep.yaml"
    path.write_text(json.dumps({"method": "grid", "program": "train.py", "parameters": PARAMS}))
    result = CliRunner().invoke(main, ["preview", str(path), "-n", "100"])
    assert result.exit_code == 0, result.output
    lines = [x for x in result.output.splitlines() if x.startswith("python") or "train.py" in x]
    assert len(lines) == GRID_SIZE
    assert not any("--momentum" in x and "--opt=adam" in x for x in lines)
    given = CliRunner().invoke(main, ["preview", str(path), "--params", '{"opt": "adam", "sched": "cosine"}'])
    assert given.exit_code == 0, given.output
    assert "--warmup=" in given.output and "--beta=" in given.output and "--momentum" not in given.output


def test_bayes_batch_with_pending_trials_spreads_over_distinct_points() -> None:
    params = {
        "model": {"values": ["a", "b"]},
        "x": {"min": 0.0, "max": 1.0, "when": {"model": "a"}},
        "y": {"min": 0.0, "max": 1.0, "when": {"model": "b"}},
        "z": {"min": 0.0, "max": 1.0},
    }
    cfg = _config("bayes", params)
    rng = np.random.default_rng(0)
    trials: list[dict[str, Any]] = []
    for p in engine.suggest(cfg, [], n=16, seed=0):
        own = p.get("x", p.get("y"))
        loss = (
            (own - 0.3) ** 2 + (p["z"] - 0.6) ** 2 + (0.0 if p["model"] == "a" else 0.2) + 0.01 * rng.random()
        )
        trials.append({"params": p, "state": "finished", "metric": loss, "history": []})
    pending = engine.suggest(cfg, trials, n=4, seed=1)
    running = [{"params": p, "state": "running", "metric": None, "history": []} for p in pending]
    batch, info = bayes.suggest_with_info(cfg, trials + running, n=8, seed=2)
    assert info["phase"] == "model"
    keys = [json.dumps(p, sort_keys=True) for p in batch + pending]
    assert len(set(keys)) == len(keys)  # no repeats of each other or of the pending trials
    for p in batch:
        assert ("x" in p) == (p["model"] == "a") and ("y" in p) == (p["model"] == "b")
    # the pending points push the batch apart: no two picks of the same branch nearly coincide
    for i, p in enumerate(batch):
        for q in batch[i + 1 :]:
            if p["model"] == q["model"]:
                own = "x" if p["model"] == "a" else "y"
                assert abs(p[own] - q[own]) + abs(p["z"] - q["z"]) > 1e-3
