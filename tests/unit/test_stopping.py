"""Early-termination rules: W&B's hyperband exactly, ASHA and the median rule.

Configs are written by hand in their normalised form (docs/design.md), so these tests do not
depend on sweepq.config.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sweepq import stopping
from sweepq.stopping import asha, hyperband, median


def trial(tid: str, history: list[Any], state: str = "running") -> dict[str, Any]:
    last = next((v for v in reversed(history) if isinstance(v, float | int)), None)
    return {"id": tid, "params": {}, "state": state, "metric": last, "history": history}


def hb(goal: str = "minimize", **keys: Any) -> dict[str, Any]:
    et = {"type": "hyperband", "eta": 3, "strict": True, **keys}
    return {"method": "random", "metric": {"name": "loss", "goal": goal}, "early_terminate": et}


def rule(kind: str, goal: str = "minimize", **keys: Any) -> dict[str, Any]:
    return {
        "method": "random",
        "metric": {"name": "loss", "goal": goal},
        "early_terminate": {"type": kind, **keys},
    }


# --- dispatch -------------------------------------------------------------------------------


def test_no_early_terminate_stops_nothing() -> None:
    config = {"method": "random", "metric": {"name": "loss", "goal": "minimize"}}
    assert stopping.to_stop(config, [trial("a", [9.0] * 10), trial("b", [1.0] * 10)]) == []


def test_unknown_type_is_an_error() -> None:
    with pytest.raises(ValueError, match="early_terminate.type"):
        stopping.to_stop(rule("bogus"), [trial("a", [1.0])])


def test_bare_string_early_terminate_is_an_error() -> None:
    config = {"metric": {"name": "loss"}, "early_terminate": "hyperband"}
    with pytest.raises(ValueError, match="mapping"):
        stopping.to_stop(config, [])


def test_missing_metric_is_an_error() -> None:
    with pytest.raises(ValueError, match="metric"):
        stopping.to_stop({"early_terminate": {"type": "hyperband", "min_iter": 1}}, [trial("a", [1.0])])


def test_a_rule_reads_its_section_as_the_config_check_normalises_it() -> None:
    from sweepq.config import validate

    assert stopping.section(rule("asha", max_iter=None)) == {"type": "asha", "min_iter": 1, "eta": 3}
    assert stopping.section(rule("median")) == {"type": "median", "warmup_steps": 5, "min_trials": 5}
    assert stopping.section({"metric": {"name": "loss"}}) is None
    bad = rule("median", min_trials=0, warmup_steps="5")
    with pytest.raises(ValueError) as raised:
        stopping.to_stop(bad, [])
    _, errors, _ = validate({**bad, "parameters": {"x": {"values": [1]}}})
    assert (
        str(raised.value)
        == "; ".join(errors)
        == (
            "early_terminate.warmup_steps: must be an integer (got the string '5') (it is quoted: write the "
            "number without quotes); early_terminate.min_trials: must be at least 1 (got 0)"
        )
    )


def test_iterations_skip_non_finite_and_non_numbers() -> None:
    t = trial("a", [1.0, None, math.nan, "NaN", math.inf, -math.inf, True, 2, 3.5])
    assert stopping.iterations(t) == [1.0, 2.0, 3.5]
    assert stopping.iterations({"id": "b"}) == []


# --- hyperband: bands -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("max_iter", "s", "eta", "expected"),
    [
        (27, 2, 3, [3, 9]),
        (81, 3, 3, [3, 9, 27]),
        (27, 3, 3, [1, 3, 9]),
        (18, 2, 3, [2, 6]),
        (5, 2, 2, [1, 2]),
        (10, 5, 2, [1, 2, 5]),
    ],
)
def test_bands_from_max_iter(max_iter: int, s: int, eta: float, expected: list[int]) -> None:
    assert hyperband.bands(hb(max_iter=max_iter, s=s, eta=eta)) == expected


@pytest.mark.parametrize(
    ("min_iter", "eta", "prefix"),
    [(3, 3, [3, 9, 27, 81, 243]), (3, 2, [3, 6, 12, 24]), (30, 1.5, [30, 45, 67, 101, 151])],
)
def test_bands_from_min_iter(min_iter: int, eta: float, prefix: list[int]) -> None:
    band_list = hyperband.bands(hb(min_iter=min_iter, eta=eta))
    assert len(band_list) == 100
    assert band_list[: len(prefix)] == prefix


def test_max_iter_wins_over_min_iter() -> None:
    assert hyperband.bands(hb(max_iter=27, s=2, min_iter=1)) == [3, 9]


def test_no_band_is_an_error() -> None:
    with pytest.raises(ValueError, match="no band"):
        hyperband.bands(hb(max_iter=2, s=2))  # 2/3 < 1 at once
    with pytest.raises(ValueError, match="min_iter"):
        hyperband.bands(hb())
    with pytest.raises(ValueError, match="eta"):
        hyperband.bands(hb(min_iter=1, eta=1))
    with pytest.raises(ValueError, match="s"):
        hyperband.bands(hb(max_iter=27, s=1.5))


def test_eta_and_strict_defaults() -> None:
    config = {"metric": {"name": "loss"}, "early_terminate": {"type": "hyperband", "min_iter": 3}}
    assert hyperband.bands(config)[:3] == [3, 9, 27]
    late = [trial("x", [9, 9, 9, 1]), trial("a", [2, 2, 2], "finished"), trial("b", [3, 3, 3], "finished")]
    assert stopping.to_stop(config, late) == ["x"]  # strict by default


# --- hyperband: decisions -------------------------------------------------------------------


def test_lone_trial_is_never_stopped() -> None:
    assert stopping.to_stop(hb(min_iter=1), [trial("a", [100.0] * 50)]) == []


def test_late_bloomer_strict_vs_non_strict() -> None:
    trials = [
        trial("x", [9, 9, 9, 1]),
        trial("a", [2, 2, 2], "finished"),
        trial("b", [3, 3, 3], "finished"),
    ]
    assert stopping.to_stop(hb(min_iter=3, strict=True), trials) == ["x"]
    assert stopping.to_stop(hb(min_iter=3, strict=False), trials) == []


def test_wandb_readme_example() -> None:
    # sweeps' README example (eta 2, max_iter 5, s 2): 0.3.0 stops only b (0.2.0 also stopped c).
    trials = [
        trial("a", [10, 9], "finished"),
        trial("b", [10, 10]),
        trial("c", [10, 8, 8]),
        trial("d", [10, 7, 7]),
        trial("e", [10, 6, 6], "finished"),
    ]
    config = hb(max_iter=5, s=2, eta=2)
    assert hyperband.bands(config) == [1, 2]
    assert stopping.to_stop(config, trials) == ["b"]


def test_maximize_negates() -> None:
    trials = [trial("low", [0.1, 0.1, 0.1]), trial("mid", [0.5, 0.5, 0.5]), trial("high", [0.9, 0.9, 0.9])]
    # band 3 sorted (lower is better) [-0.9, -0.5, -0.1]; threshold = index 1 = -0.5.
    assert stopping.to_stop(hb("maximize", min_iter=3), trials) == ["low"]
    assert stopping.to_stop(hb("minimize", min_iter=3), trials) == ["high"]


def test_nan_and_missing_values_are_skipped() -> None:
    # x's iterations are [5, 5, 5]: NaN, None and the string do not count as iterations.
    trials = [
        trial("x", [5, math.nan, None, 5, "oops", 5]),
        trial("a", [1, 1, 1], "finished"),
        trial("b", [2, 2, 2], "finished"),
        trial("empty", []),
        trial("nothing", [math.nan, None]),
    ]
    assert stopping.to_stop(hb(min_iter=3), trials) == ["x"]
    # Two finite values are not yet band 3, however many NaNs sit between them.
    assert stopping.to_stop(hb(min_iter=3), [trial("x", [5, math.nan, 5]), *trials[1:3]]) == []


def test_only_running_trials_are_judged_but_all_count() -> None:
    trials = [
        trial("q", [0, 0, 0], "queued"),
        trial("f", [9, 9, 9], "failed"),
        trial("s", [9, 9, 9], "stopped"),
        trial("done", [1, 1, 1], "finished"),
        trial("ok", [2, 2, 2], "finished"),
        trial("r", [3, 3, 3]),
    ]
    # band 3 values [0, 1, 2, 3, 9, 9] -> threshold sorted[2] = 2: only the running r is stopped.
    assert stopping.to_stop(hb(min_iter=3), trials) == ["r"]
    trials[-1] = trial("r", [1.5, 1.5, 1.5])  # sorted [0, 1, 1.5, 2, 9, 9]: r is the threshold
    assert stopping.to_stop(hb(min_iter=3), trials) == []


def test_ties_survive() -> None:
    trials = [trial("a", [1, 1, 1]), trial("b", [1, 1, 1]), trial("c", [1, 1, 1])]
    assert stopping.to_stop(hb(min_iter=3), trials) == []


def test_judged_against_last_band_between_bands() -> None:
    # 5 values: past band 3, before band 9; judged on history[2] against band 3's threshold.
    trials = [
        trial("x", [1, 1, 7, 0, 0]),
        trial("a", [1, 1, 1], "finished"),
        trial("b", [2, 2, 2], "finished"),
    ]
    assert stopping.to_stop(hb(min_iter=3), trials) == ["x"]
    assert hyperband.explain(hb(min_iter=3), trials)["x"]["stop"] is True


def test_before_first_band_not_judged() -> None:
    trials = [trial("x", [9, 9]), trial("a", [1, 1, 1], "finished"), trial("b", [2, 2, 2], "finished")]
    assert stopping.to_stop(hb(min_iter=3), trials) == []


def test_threshold_keeps_floor_n_over_eta_plus_one() -> None:
    trials = [trial(str(i), [float(i)] * 3) for i in range(9)]
    # N = 9, eta 3: threshold = sorted[3] = 3.0, so 0..3 survive (4 = 9/3 + 1).
    assert stopping.to_stop(hb(min_iter=3), trials) == ["4", "5", "6", "7", "8"]


def test_explain_lines() -> None:
    trials = [trial("x", [9, 9, 9, 1]), trial("a", [2, 2, 2], "finished"), trial("b", [3, 3, 3], "finished")]
    info = hyperband.explain(hb(min_iter=3), trials)
    assert set(info) == {"x"}
    lines = info["x"]["lines"]
    assert lines[0] == "Bands: 3 = 3.0, 9 = inf"
    assert lines[1] == "Run: x Step: 4 (Band: 3 Metric: 9.000000 Threshold: 3.000000) STOP"
    assert info["x"]["bands"][:2] == [3, 9]
    early = hyperband.explain(hb(min_iter=3), [trial("y", [1.0])])
    assert early["y"]["lines"][1] == "Run: y Step: 1" and early["y"]["stop"] is False


def test_explain_shows_user_sign_for_maximize() -> None:
    trials = [trial("low", [0.1] * 3), trial("mid", [0.5] * 3), trial("high", [0.9] * 3)]
    info = hyperband.explain(hb("maximize", min_iter=3), trials)
    assert info["low"]["stop"] and not info["high"]["stop"]
    assert "Metric: 0.100000 Threshold: 0.500000) STOP" in info["low"]["lines"][1]


# --- ASHA -----------------------------------------------------------------------------------


def test_asha_rungs() -> None:
    assert asha.rungs(rule("asha", min_iter=1, eta=3), 100) == [1, 3, 9, 27, 81]
    assert asha.rungs(rule("asha", min_iter=2, eta=2, max_iter=16), 100) == [2, 4, 8]
    assert asha.rungs(rule("asha"), 10) == [1, 3, 9]  # defaults min_iter 1, eta 3
    assert asha.rungs(rule("asha", min_iter=1, eta=1.2), 3) == [1, 2, 3]  # 1, 1.2, 1.44, 1.73, 2.07, .., 3.58


def test_asha_keeps_top_fraction() -> None:
    trials = [trial(c, [v]) for c, v in zip("abcd", [0.2, 0.5, 0.6, 0.9], strict=True)]
    assert stopping.to_stop(rule("asha", min_iter=1, eta=3), trials) == ["b", "c", "d"]


def test_asha_continues_while_rung_has_fewer_than_eta_trials() -> None:
    trials = [trial("a", [0.2]), trial("b", [0.9])]
    assert stopping.to_stop(rule("asha", min_iter=1, eta=3), trials) == []
    assert stopping.to_stop(rule("asha", min_iter=1, eta=2), trials) == ["b"]


def test_asha_promotion_to_next_rung() -> None:
    # Rung 1: 6 trials, keep 2 (0.1, 0.2). "p" was promoted and now sits at rung 3 with 2 peers
    # there (< eta), so it continues even though its rung-3 value is the worst.
    config = rule("asha", min_iter=1, eta=3)
    trials = [
        trial("p", [0.2, 0.9, 0.9]),
        trial("q", [0.1, 0.1, 0.1], "finished"),
        trial("r", [0.5], "stopped"),
        trial("s", [0.6], "stopped"),
        trial("t", [0.7], "stopped"),
        trial("u", [0.8]),
    ]
    assert stopping.to_stop(config, trials) == ["u"]
    # A third trial reaching rung 3 (N = 3, keep 1) ends p's run: 0.9 > 0.1.
    trials.append(trial("v", [0.05, 0.05, 0.05], "finished"))
    assert stopping.to_stop(config, trials) == ["p", "u"]


def test_asha_ties_and_maximize() -> None:
    ties = [trial(c, [0.5]) for c in "abc"]
    assert stopping.to_stop(rule("asha", eta=3), ties) == []
    acc = [trial("a", [0.9]), trial("b", [0.5]), trial("c", [0.1])]
    assert stopping.to_stop(rule("asha", "maximize", eta=3), acc) == ["b", "c"]


def test_asha_no_rung_at_max_iter() -> None:
    config = rule("asha", min_iter=1, eta=3, max_iter=9)
    # Trials at 9 values have finished their budget; judged at rung 3, where all tie -> none stop.
    trials = [
        trial(c, [0.5, 0.5, 0.5, 1, 1, 1, 1, 1, v]) for c, v in zip("abc", [0.1, 0.2, 0.9], strict=True)
    ]
    assert stopping.to_stop(config, trials) == []


def test_asha_only_running_and_nan_skipped() -> None:
    trials = [
        trial("a", [0.9], "finished"),
        trial("b", [0.8], "stopped"),
        trial("c", [math.nan, None, 0.1]),
        trial("d", [math.nan]),
    ]
    assert stopping.to_stop(rule("asha", eta=3), trials) == []
    trials.append(trial("e", [0.85]))
    assert stopping.to_stop(rule("asha", eta=3), trials) == ["e"]


# --- median ---------------------------------------------------------------------------------


def _peers(step_values: list[float], length: int = 3) -> list[dict[str, Any]]:
    return [trial(f"p{i}", [v] * length, "finished") for i, v in enumerate(step_values)]


def test_median_stops_worse_than_median() -> None:
    config = rule("median", warmup_steps=2, min_trials=3)
    peers = _peers([0.4, 0.5, 0.6, 0.7])  # median at step 3 = 0.55
    assert stopping.to_stop(config, [trial("bad", [0.9, 0.7, 0.65]), *peers]) == ["bad"]
    # best-so-far (0.5) is what is compared, not the latest value (0.8)
    assert stopping.to_stop(config, [trial("ok", [0.9, 0.5, 0.8]), *peers]) == []


def test_median_warmup() -> None:
    config = rule("median", warmup_steps=3, min_trials=3)
    peers = _peers([0.1, 0.1, 0.1], length=10)
    assert stopping.to_stop(config, [trial("x", [9, 9, 9]), *peers]) == []
    assert stopping.to_stop(config, [trial("x", [9, 9, 9, 9]), *peers]) == ["x"]


def test_median_defaults_warmup_5_min_trials_5() -> None:
    config = rule("median")
    five = _peers([0.1] * 5, length=10)
    assert stopping.to_stop(config, [trial("x", [9] * 5), *five]) == []
    assert stopping.to_stop(config, [trial("x", [9] * 6), *five]) == ["x"]
    assert stopping.to_stop(config, [trial("x", [9] * 6), *five[:4]]) == []


def test_median_min_trials_counts_peers_at_the_same_step() -> None:
    config = rule("median", warmup_steps=0, min_trials=3)
    short = _peers([0.1, 0.1, 0.1], length=2)  # none reached step 3
    assert stopping.to_stop(config, [trial("x", [9, 9, 9]), *short]) == []
    assert stopping.to_stop(config, [trial("x", [9, 9]), *short]) == ["x"]


def test_median_ties_maximize_and_running_peers() -> None:
    config = rule("median", warmup_steps=0, min_trials=2)
    assert stopping.to_stop(config, [trial("x", [0.5]), trial("a", [0.5]), trial("b", [0.5])]) == []
    acc = rule("median", "maximize", warmup_steps=0, min_trials=2)
    trials = [trial("x", [0.2]), trial("a", [0.8]), trial("b", [0.6], "stopped")]
    assert stopping.to_stop(acc, trials) == ["x"]


def test_median_only_running_judged_and_nan_skipped() -> None:
    config = rule("median", warmup_steps=0, min_trials=2)
    trials = [
        trial("f", [9.0], "failed"),
        trial("a", [0.1], "finished"),
        trial("b", [0.2], "finished"),
        trial("n", [math.nan, None]),
    ]
    assert stopping.to_stop(config, trials) == []


def test_median_bad_keys() -> None:
    with pytest.raises(ValueError, match="warmup_steps"):
        median.to_stop(rule("median", warmup_steps=-1), [])


# --- hyperband against W&B's own engine -----------------------------------------------------
#
# The installed reference is `sweeps` 0.2.0, whose rule differs from 0.3.0's in exactly one way
# (WANDB-COMPAT section 3): it reads band b at index b (not b-1) and needs more than b values,
# and it always judges min(history) (0.3.0's strict: false). Prepending one value that can never
# be the best turns 0.2.0 into 0.3.0 non-strict, so the two must agree on every input.

_values = st.one_of(
    st.sampled_from([0.0, 1.0, 2.0, 3.0, 0.5, 2.5, 3.0, 1.0, math.nan, None]),  # ties and gaps
    st.floats(-5, 5, allow_nan=False),
    st.sampled_from([math.inf, -math.inf, True, "NaN"]),
)
_trials = st.lists(
    st.tuples(
        st.sampled_from(["running", "running", "running", "finished", "stopped", "failed", "queued"]),
        st.lists(_values, min_size=1, max_size=14),
    ),
    min_size=2,
    max_size=8,
)
_early = st.one_of(
    st.builds(lambda m, e: {"min_iter": m, "eta": e}, st.integers(1, 4), st.sampled_from([2, 3, 1.5, 4])),
    st.builds(
        lambda m, s, e: {"max_iter": m, "s": s, "eta": e},
        st.integers(2, 40),
        st.integers(1, 4),
        st.sampled_from([2, 3, 1.5]),
    ),
)


@settings(max_examples=150, deadline=None)
@given(early=_early, goal=st.sampled_from(["minimize", "maximize"]), runs=_trials)
def test_hyperband_matches_wandb_engine(early: dict[str, Any], goal: str, runs: list[Any]) -> None:
    sweeps = pytest.importorskip("sweeps")
    from sweeps import RunState, SweepRun

    wb_state = {"running": RunState.running, "finished": RunState.finished}
    never_best = 1e12 if goal == "minimize" else -1e12
    config = hb(goal, strict=False, **early)
    try:
        hyperband.bands(config)
    except ValueError:
        return  # W&B raises too ("Bands must be an array of length at least 1")
    ours = [trial(f"r{i}", list(h), state) for i, (state, h) in enumerate(runs)]
    theirs = [
        SweepRun(
            name=f"r{i}",
            state=wb_state.get(state, RunState.killed),
            sampledHistory=[{"loss": v} for v in [never_best, *h]],
        )
        for i, (state, h) in enumerate(runs)
    ]
    wb_config = {
        "method": "random",
        "metric": {"name": "loss", "goal": goal},
        "early_terminate": {"type": "hyperband", **early},
        "parameters": {"x": {"values": [1, 2]}},
    }
    expected = [r.name for r in sweeps.stop_runs(wb_config, theirs)]
    assert stopping.to_stop(config, ours) == expected


def test_hyperband_sections_that_give_no_band_are_refused_at_validation() -> None:
    """W&B finds these only when the sweep runs (every pass would fail); sweepq says so before."""
    from sweepq.config import validate

    base = {"method": "random", "metric": {"name": "l"}, "parameters": {"x": {"min": 0.0, "max": 1.0}}}
    for early, expect in [
        ({"max_iter": 2, "s": 2, "eta": 3}, "early_terminate: these keys give no band"),
        ({"max_iter": 27, "min_iter": 1}, "early_terminate.s: max_iter needs s"),
    ]:
        cfg, errors, _ = validate({**base, "early_terminate": {"type": "hyperband", **early}})
        assert cfg is None and any(e.startswith(expect) for e in errors), (early, errors)
    cfg, errors, _ = validate({**base, "early_terminate": {"type": "hyperband", "max_iter": 27, "s": 2}})
    assert cfg is not None and not errors, errors
