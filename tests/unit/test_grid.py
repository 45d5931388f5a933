"""Grid search: W&B's order, dedupe and exhaustion (WANDB-COMPAT.md section 2.2), via the engine."""

from __future__ import annotations

import tracemalloc

import numpy
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from sweepq import engine
from sweepq.config import load_config, validate
from sweepq.search import grid


def config(parameters: dict, **extra) -> dict:
    return load_config({"method": "grid", "parameters": parameters, **extra})


def trial(params: dict, state: str = "finished", i: int = 0) -> dict:
    return {"id": f"t{i}", "params": params, "state": state, "metric": None, "history": []}


def run_all(cfg: dict, batch: int = 1) -> list[dict]:
    """Drive a sweep to exhaustion the way the controller does: each suggestion becomes a trial."""
    trials: list[dict] = []
    while True:
        got = engine.suggest(cfg, trials, n=batch)
        if not got:
            return [t["params"] for t in trials]
        assert len(got) <= batch
        trials += [trial(p, "queued", len(trials) + i) for i, p in enumerate(got)]


def test_order_sorted_keys_last_fastest_nested_at_parent_position():
    cfg = config({
        "z_lr": {"values": [0.1, 0.01]},
        "model": {"parameters": {"width": {"values": [64, 128]}, "act": {"value": "relu"},
                                 "block": {"parameters": {"depth": {"min": 1, "max": 2}}}}},
        "a_bs": {"values": [32]},
    })  # fmt: skip
    points = grid.points(cfg)
    assert len(points) == 8
    seq = [(p["model"]["block"]["depth"], p["model"]["width"], p["z_lr"]) for p in points]
    assert seq == [
        (1, 64, 0.1), (1, 64, 0.01), (1, 128, 0.1), (1, 128, 0.01),
        (2, 64, 0.1), (2, 64, 0.01), (2, 128, 0.1), (2, 128, 0.01),
    ]  # fmt: skip
    for p in points:  # constants and nesting kept in every point
        assert p["a_bs"] == 32 and p["model"]["act"] == "relu"
        assert set(p) == {"a_bs", "model", "z_lr"} and set(p["model"]) == {"act", "block", "width"}


def test_values_order_and_duplicates_later_object_wins():
    pts = grid.points(config({"a": {"values": [1, 2, 1, 1.0]}}))
    assert [p["a"] for p in pts] == [1.0, 2]
    assert type(pts[0]["a"]) is float
    pts = grid.points(
        config({"a": {"values": [True, 1, False, 0, None, {"x": 1, "y": 2}, {"y": 2, "x": 1}]}})
    )
    assert [p["a"] for p in pts] == [True, 1, False, 0, None, {"y": 2, "x": 1}]


def test_int_uniform_includes_max_q_uniform_excludes_it():
    assert [p["a"] for p in grid.points(config({"a": {"min": 3, "max": 6}}))] == [3, 4, 5, 6]
    q = {"distribution": "q_uniform", "min": 0, "max": 1, "q": 0.25}
    assert [p["a"] for p in grid.points(config({"a": q}))] == [0.0, 0.25, 0.5, 0.75]
    q = {"distribution": "q_uniform", "min": 0.001, "max": 0.02, "q": 0.006}
    assert [p["a"] for p in grid.points(config({"a": q}))] == [
        0.001,
        0.007,
        0.013000000000000001,
        0.019000000000000003,
    ]
    ints = grid.points(config({"a": {"distribution": "q_uniform", "min": 0, "max": 10, "q": 3}}))
    assert [p["a"] for p in ints] == [0, 3, 6, 9] and all(type(p["a"]) is int for p in ints)
    floats = grid.points(config({"a": {"distribution": "q_uniform", "min": 0, "max": 3}}))  # default q 1.0
    assert [p["a"] for p in floats] == [0.0, 1.0, 2.0] and all(type(p["a"]) is float for p in floats)
    mixed = grid.points(config({"a": {"distribution": "q_uniform", "min": 0, "max": 10.5, "q": 3}}))
    assert [p["a"] for p in mixed] == [0.0, 3.0, 6.0, 9.0] and all(type(p["a"]) is float for p in mixed)


@settings(max_examples=300, deadline=None)
@given(
    lo=st.one_of(st.integers(-1000, 1000), st.floats(-1e6, 1e6)),
    width=st.one_of(st.integers(1, 3000), st.floats(1e-3, 1e4)),
    q=st.one_of(st.integers(1, 50), st.floats(1e-3, 100)),
)
def test_q_uniform_values_are_numpy_arange(lo, width, q):
    """Grid values are computed, not listed: they must still be numpy.arange's, float noise and
    int-or-float type included (W&B enumerates numpy.arange)."""
    hi = lo + width
    assume(hi > lo and (hi - lo) / q <= 20_000)
    spec = {"distribution": "q_uniform", "min": lo, "max": hi, "q": q}
    values, errors, _ = validate({"method": "grid", "parameters": {"a": spec}})
    assume(values is not None)
    want = numpy.arange(lo, hi, q).tolist()
    got = [p["a"] for p in grid.points(values)]
    assert got == want and [type(v) for v in got] == [type(v) for v in want]
    # and every value maps back to its own point: a trial holding it covers exactly that one
    some = got[:: max(1, len(got) // 7)]
    rest = engine.suggest(values, [trial({"a": v}, i=i) for i, v in enumerate(some)], n=len(got))
    assert len(rest) == len(got) - len(some) and not {repr(v) for v in some} & {repr(p["a"]) for p in rest}


def test_only_constants_is_one_point():
    cfg = config({"a": {"value": 1}, "b": {"parameters": {"c": {"value": [1, 2]}}}})
    assert grid.points(cfg) == [{"a": 1, "b": {"c": [1, 2]}}]
    assert engine.suggest(cfg, [trial({"a": 1, "b": {"c": [1, 2]}})]) == []


@pytest.mark.parametrize("batch", [1, 2, 3, 7, 100])
def test_exhaustion_exact_batched_equals_sequential(batch):
    cfg = config({"a": {"values": [1, 2, 3]}, "g": {"parameters": {"b": {"min": 0, "max": 2},
                  "c": {"distribution": "q_uniform", "min": 0, "max": 1, "q": 0.5}}}})  # fmt: skip
    got = run_all(cfg, batch)
    assert got == grid.points(cfg)
    assert len(got) == 3 * 3 * 2
    assert len({repr(p) for p in got}) == len(got)


def test_every_state_covers_its_point():
    cfg = config({"a": {"values": [1, 2, 3, 4, 5, 6, 7]}})
    states = ["queued", "running", "finished", "failed", "crashed", "stopped", "canceled"]
    trials = [trial({"a": i + 1}, s, i) for i, s in enumerate(states)]
    assert engine.suggest(cfg, trials) == []
    assert engine.suggest(cfg, trials[:-1], n=5) == [{"a": 7}]


def test_dedupe_is_by_value():
    cfg = config({"a": {"values": [3000000, 2, True, {"x": 1, "y": [1, 2]}]}})
    trials = [trial({"a": 3e6}), trial({"a": 1}), trial({"a": {"y": [1, 2], "x": 1}})]
    # 3e6 covers 3000000; 1 does not cover True; key order does not matter
    assert engine.suggest(cfg, trials, n=10) == [{"a": 2}, {"a": True}]


def test_dict_values_ignore_keys_injected_at_run_time():
    cfg = config({"opt": {"values": [{"name": "adam"}, {"name": "sgd"}]}})
    trials = [trial({"opt": {"name": "adam", "injected_by_program": 1}})]
    assert engine.suggest(cfg, trials, n=10) == [{"opt": {"name": "sgd"}}]


def test_partial_or_odd_trials_cover_nothing():
    cfg = config({"a": {"values": [1, 2]}, "g": {"parameters": {"b": {"values": [1]}}}})
    trials = [trial({"a": 1}), trial({"a": 2, "g": 5}), {"id": "x", "params": None, "state": "queued"}]
    assert len(engine.suggest(cfg, trials, n=10)) == 2


def test_nested_trials_cover_by_full_path():
    cfg = config(
        {"g": {"parameters": {"x": {"values": [1, 2]}, "y": {"values": ["a", "b"]}}}, "x": {"values": [9]}}
    )
    trials = [trial({"g": {"x": 1, "y": "a"}, "x": 9}), trial({"g": {"x": 2, "y": "b"}, "x": 9})]
    rest = engine.suggest(cfg, trials, n=10)
    assert rest == [{"g": {"x": 1, "y": "b"}, "x": 9}, {"g": {"x": 2, "y": "a"}, "x": 9}]


def test_batch_never_repeats_and_respects_n():
    cfg = config({"a": {"values": list(range(10))}})
    first = engine.suggest(cfg, [], n=4)
    assert [p["a"] for p in first] == [0, 1, 2, 3]
    assert [p["a"] for p in engine.suggest(cfg, [trial(p) for p in first], n=4)] == [4, 5, 6, 7]
    assert engine.suggest(cfg, [], n=0) == []


def test_large_grid_is_lazy():
    cfg = config({f"p{i}": {"min": 0, "max": 99} for i in range(6)})  # 10^12 points
    got = engine.suggest(cfg, [], n=3)
    assert [p["p5"] for p in got] == [0, 1, 2] and all(p["p0"] == 0 for p in got)


def test_huge_grid_costs_what_its_trials_cost_not_its_size():
    """Six axes of 1,000,000 values (10^36 points, the most each axis may have): suggestions
    past 500 trials in a few MB (listing the grid axis by axis on every call would cost hundreds
    of MB per controller pass), and trials map back to their points wherever they lie."""
    cfg = config(
        {f"p{i}": {"min": 1, "max": 1_000_000} for i in range(5)}
        | {"q": {"distribution": "q_uniform", "min": 0.5, "max": 1000.5, "q": 0.001}}
    )
    qs = numpy.arange(0.5, 1000.5, 0.001)
    first = engine.suggest(cfg, [], n=500)
    assert [p["q"] for p in first] == qs[:500].tolist()
    far = {f"p{i}": 999_999 for i in range(5)} | {"q": qs[7].item()}
    as_floats = {f"p{i}": 1.0 for i in range(5)} | {"q": qs[500].item()}  # point 500, written otherwise
    trials = [trial(p, i=i) for i, p in enumerate([*first, far, as_floats])]
    tracemalloc.start()
    try:
        got = engine.suggest(cfg, trials, n=3)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2**20, f"{peak / 2**20:.1f} MiB"
    assert got == [{f"p{i}": 1 for i in range(5)} | {"q": v} for v in qs[501:504].tolist()]
