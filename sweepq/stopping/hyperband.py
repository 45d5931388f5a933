"""W&B's ``early_terminate: {type: hyperband}`` rule, exactly as ``sweeps`` 0.3.0 applies it.

Users tune ``min_iter``/``eta`` against W&B's behaviour, so existing configs must keep their
meaning here (ruling 9). This is not full Hyperband (no brackets, no resource allocation): it is
a successive-halving *stopping* rule applied to whatever trials exist.

Bands (checkpoints, counted in iterations = finite logged values of the metric):

* ``max_iter`` + ``s`` (wins when both forms are given): ``b = max_iter``; ``s`` times
  ``b /= eta``, stop once ``b < 1``, record ``int(b)``; sorted ascending. ``max_iter`` itself is
  never a band: (27, s=2, eta=3) -> [3, 9].
* ``min_iter`` only: ``int(min_iter * eta**k)`` for k = 0..99 (100 bands): (3, 3) -> 3, 9, 27...

Thresholds: for band ``b``, take the b-th value (``history[b-1]``) of every trial, in any state and
including the candidate, that has at least ``b`` values; sort; ``threshold = sorted[int(N/eta)]``
(+inf when N = 0). So roughly the best N/eta + 1 trials survive, and a lone trial never stops.

Decision, for ``running`` trials only: take the largest band ``b <= len(history)`` (none -> not
judged). The judged value is ``history[b-1]`` when ``strict`` (default true) or ``min(history)``
when not. Stop iff ``value > threshold`` (ties survive). A trial between bands keeps being judged
against its last band, with thresholds recomputed from all trials on every call.

Example (min_iter 3, eta 3, minimize): finished trials logged [2, 2, 2] and [3, 3, 3]; running
trial ``x`` logged [9, 9, 9, 1]. Band 3 values are [2, 3, 9], threshold = sorted[int(3/3)] = 3.
Strict judges history[2] = 9 > 3: stop. Non-strict judges min = 1 <= 3: keep.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from sweepq.checks import Checker, describe
from sweepq.stopping import RUNNING, Trial, metric_spec, rule_section, signed_iterations

__all__ = ["KEYS", "bands", "check", "decide", "explain", "thresholds", "to_stop"]

KEYS = ("min_iter", "max_iter", "s", "eta", "strict")
"""The keys of ``early_terminate: {type: hyperband, ...}``."""

_MIN_ITER_BANDS = 100  # W&B's fixed count of min_iter bands


def check(ck: Checker, early: Mapping[str, Any]) -> dict[str, Any]:
    """The section with its defaults filled (``eta`` 3, ``strict`` true), problems recorded in
    ``ck``. W&B's schema: ``min_iter``, or ``max_iter`` with ``s``; integers; ``eta`` > 1."""
    out: dict[str, Any] = {"type": "hyperband"}
    n_errors = len(ck.errors)
    if "min_iter" not in early and not ("max_iter" in early and "s" in early):
        ck.error("early_terminate", "hyperband needs min_iter, or max_iter together with s")
    if "min_iter" in early:
        out["min_iter"] = ck.integer("early_terminate.min_iter", early["min_iter"], minimum=1)
    if "max_iter" in early:
        out["max_iter"] = ck.integer("early_terminate.max_iter", early["max_iter"], minimum=1)
    if "s" in early:
        # W&B types s as a number but uses it as a count (range(s)); 2.0 is fine, 2.5 is not.
        out["s"] = ck.integer("early_terminate.s", early["s"], minimum=1)
    out["eta"] = ck.number("early_terminate.eta", early.get("eta", 3), minimum=1, exclusive=True)
    strict = early.get("strict", True)
    if not isinstance(strict, bool):
        ck.error("early_terminate.strict", f"must be true or false (got {describe(strict)})")
    out["strict"] = strict
    if len(ck.errors) == n_errors:
        # what W&B only finds when the sweep runs (a rule with no checkpoint never stops anything)
        try:
            _bands(out)
        except ValueError as exc:
            path, _, message = str(exc).partition(": ")
            ck.error(path, message)
    return out


def _bands(early: Mapping[str, Any]) -> list[int]:
    eta = early["eta"]
    result: list[int] = []
    if "max_iter" in early:
        s = early.get("s")
        if s is None:
            # max_iter with min_iter passes W&B's schema; its rule then needs s all the same
            raise ValueError("early_terminate.s: max_iter needs s, the number of bands counted down from it")
        band: float = early["max_iter"]
        for _ in range(s):
            band /= eta
            if band < 1:
                break
            result.append(int(band))
        result.sort()
    else:
        # Repeated multiplication, not min_iter * eta**k, to land on W&B's floats exactly.
        band = early["min_iter"]
        for _ in range(_MIN_ITER_BANDS):
            result.append(int(band))
            band *= eta
    if not result:
        raise ValueError(
            "early_terminate: these keys give no band; increase s, decrease eta, or increase min_iter"
        )
    return result


def bands(config: Mapping[str, Any]) -> list[int]:
    """The band list W&B 0.3.0 builds from ``early_terminate`` (see the module docstring).

    Raises ``ValueError`` when the keys give no band at all, as W&B does ("try increasing s,
    decreasing eta, or increasing min_iter"), because a rule with no checkpoint never stops.
    """
    return _bands(rule_section(config, "hyperband"))


def thresholds(band_list: Sequence[int], histories: Sequence[Sequence[float]], eta: float) -> list[float]:
    """Per band, the value a trial must not exceed: ``sorted(values at b)[int(N/eta)]``.

    ``histories`` are the signed (lower is better) iterations of *every* trial, whatever its
    state, which is why finished and already-stopped trials keep raising the bar.
    """
    r = 1.0 / eta
    longest = max((len(h) for h in histories), default=0)
    out: list[float] = []
    for b in band_list:
        if b > longest:
            # No trial has reached this band: W&B's +inf, without scanning every history for
            # each of the 100 min_iter bands on every call (the controller calls this often).
            out.append(math.inf)
            continue
        values = sorted(h[b - 1] for h in histories if len(h) >= b)
        out.append(values[int(r * len(values))] if values else math.inf)
    return out


def _judge(
    history: Sequence[float], band_list: Sequence[int], limits: Sequence[float], strict: bool
) -> tuple[int, float, float] | None:
    """``(band, judged value, threshold)`` for one running trial, or None before its first band."""
    chosen: tuple[int, float] | None = None
    for b, limit in zip(band_list, limits, strict=True):
        if b <= len(history):
            chosen = (b, limit)
        else:
            break
    if chosen is None:
        return None
    b, limit = chosen
    value = history[b - 1] if strict else min(history)
    return b, value, limit


def _evaluate(early: Mapping[str, Any], goal: str, trials: Sequence[Trial]) -> dict[str, Any]:
    band_list = _bands(early)
    signed = [signed_iterations(t, goal) for t in trials]
    limits = thresholds(band_list, [h for h in signed if h], early["eta"])
    judged: list[tuple[Trial, int, tuple[int, float, float] | None]] = []
    for trial, history in zip(trials, signed, strict=True):
        if trial.get("state") != RUNNING:
            continue
        judged.append((trial, len(history), _judge(history, band_list, limits, early["strict"])))
    return {"goal": goal, "bands": band_list, "thresholds": limits, "judged": judged}


def decide(early: Mapping[str, Any], goal: str, trials: Sequence[Trial]) -> list[str]:
    """Ids of the running trials whose judged value is strictly above their band's threshold,
    for a section :func:`check` normalised."""
    return [
        str(trial["id"])
        for trial, _, verdict in _evaluate(early, goal, trials)["judged"]
        if verdict is not None and verdict[1] > verdict[2]
    ]


def to_stop(config: Mapping[str, Any], trials: Sequence[Trial]) -> list[str]:
    """Ids of the running trials whose judged value is strictly above their band's threshold."""
    _, goal = metric_spec(config)
    return decide(rule_section(config, "hyperband"), goal, trials)


def _shown(value: float, goal: str) -> float:
    # Lines show the metric in the user's own sign; W&B shows its internal negated values
    # for maximize, which reads as nonsense next to the run's logged accuracy.
    return -value if goal == "maximize" else value


def explain(config: Mapping[str, Any], trials: Sequence[Trial]) -> dict[str, dict[str, Any]]:
    """W&B-style ``early_terminate_info`` for each running trial, keyed by trial id.

    Each value is ``{"lines": [bands line, run line], "bands", "thresholds", "stop"}``, e.g.
    ``["Bands: 3 = 3.0, 9 = inf, ...", "Run: x Step: 4 (Band: 3 Metric: 9.000000 Threshold:
    3.000000) STOP"]``; the dashboard shows these so a user can see why a trial was stopped.
    A trial before its first band gets a run line without the parenthesis and ``stop`` False.
    Values and thresholds are in the metric's own sign (W&B prints negated values for maximize).
    """
    _, goal = metric_spec(config)
    result = _evaluate(rule_section(config, "hyperband"), goal, trials)
    shown_limits = [_shown(t, goal) for t in result["thresholds"]]
    # The full 100-band min_iter list would swamp the line; show bands up to the first +inf.
    pairs: list[str] = []
    for b, limit in zip(result["bands"], shown_limits, strict=True):
        pairs.append(f"{b} = {limit}")
        if math.isinf(limit):
            break
    bands_line = "Bands: " + ", ".join(pairs)
    info: dict[str, dict[str, Any]] = {}
    for trial, steps, verdict in result["judged"]:
        line = f"Run: {trial['id']} Step: {steps}"
        stop = False
        if verdict is not None:
            b, value, limit = verdict
            stop = value > limit
            line += f" (Band: {b} Metric: {_shown(value, goal):f} Threshold: {_shown(limit, goal):f})" + (
                " STOP" if stop else ""
            )
        info[str(trial["id"])] = {
            "lines": [bands_line, line],
            "bands": list(result["bands"]),
            "thresholds": shown_limits,
            "stop": stop,
        }
    return info
