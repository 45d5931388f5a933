"""Asynchronous successive halving (ASHA, Li et al. 2020) as a stopping rule.

ASHA promotes a trial from rung ``k`` to rung ``k+1`` only if it is in the top ``1/eta`` of the
trials that reached rung ``k``; it never waits for a rung to fill, which is what makes it suit
asynchronous workers. sweepq applies it as a stopping rule (as Ray Tune's ``ASHAScheduler`` and
Optuna's ``SuccessiveHalvingPruner`` do): "not promoted" means "stopped".

Keys (``early_terminate: {type: asha, ...}``):

* ``min_iter`` (grace period / minimum resource, default 1): the first rung, in iterations
  (finite logged values of the metric).
* ``eta`` (reduction factor, default 3): rungs are ``int(min_iter * eta**k)``, and about 1 in
  ``eta`` trials continues past each rung.
* ``max_iter`` (optional): the length of a full trial. Rungs stop *below* it, because judging a
  trial at the iteration where it finishes anyway saves nothing and would turn a finished trial
  into a stopped one.

Decision, for each ``running`` trial, on every call:

1. Take its highest rung ``r <= len(history)``; before the first rung it is not judged.
2. Collect ``history[r-1]`` of every trial (any state, the candidate included) with at least
   ``r`` values: N values.
3. While ``N < eta`` the rung has too little evidence to cut anything: the trial continues.
4. Otherwise ``keep = floor(N / eta)`` (at least 1) and the cutoff is the ``keep``-th best value.
   The trial continues iff its value at the rung is ``<=`` the cutoff (ties survive), else stops.

Like W&B's hyperband, the rule is stateless: a trial between rungs ``k`` and ``k+1`` is judged
again at rung ``k`` on every call, so a trial that passed early, when few peers had reached the
rung, can still be stopped once better peers arrive. Compared with W&B's hyperband threshold
(``sorted[int(N/eta)]``, which keeps ``floor(N/eta) + 1`` trials and lets a lone trial pass),
ASHA keeps exactly the top ``floor(N/eta)``.

Example (min_iter 1, eta 3, minimize): four trials reached rung 1 with values 0.2, 0.5, 0.6,
0.9: keep = floor(4/3) = 1, cutoff 0.2; only the 0.2 trial continues. At rung 3 only two trials
have values (N = 2 < 3), so both continue until a third one arrives there.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from sweepq.checks import Checker
from sweepq.stopping import RUNNING, Trial, metric_spec, rule_section, signed_iterations

__all__ = ["KEYS", "check", "decide", "rungs", "to_stop"]

KEYS = ("min_iter", "max_iter", "eta")
"""The keys of ``early_terminate: {type: asha, ...}``."""


def check(ck: Checker, early: Mapping[str, Any]) -> dict[str, Any]:
    """The section with its defaults filled (``min_iter`` 1, ``eta`` 3), problems recorded in
    ``ck``: integers >= 1, ``eta`` > 1, ``max_iter`` (optional) at least ``min_iter``."""
    out: dict[str, Any] = {"type": "asha"}
    out["min_iter"] = ck.integer("early_terminate.min_iter", early.get("min_iter", 1), minimum=1)
    out["eta"] = ck.number("early_terminate.eta", early.get("eta", 3), minimum=1, exclusive=True)
    if "max_iter" in early:
        max_iter = ck.integer("early_terminate.max_iter", early["max_iter"], minimum=1)
        if max_iter is not None and out["min_iter"] is not None and max_iter < out["min_iter"]:
            ck.error(
                "early_terminate.max_iter", f"must be at least min_iter ({out['min_iter']}) (got {max_iter})"
            )
        out["max_iter"] = max_iter
    return out


def _rungs(early: Mapping[str, Any], up_to: int) -> list[int]:
    min_iter, eta, max_iter = early["min_iter"], early["eta"], early.get("max_iter")
    out: list[int] = []
    k = 0
    while True:
        rung = int(min_iter * eta**k)
        if rung > up_to or (max_iter is not None and rung >= max_iter):
            return out
        if not out or rung != out[-1]:
            out.append(rung)
        k += 1


def rungs(config: Mapping[str, Any], up_to: int) -> list[int]:
    """The rungs ``int(min_iter * eta**k)`` that are ``<= up_to`` (and ``< max_iter`` if set).

    Rungs are unbounded without ``max_iter``, so the caller says how far to look (the longest
    history). Duplicates from a small ``eta`` (e.g. 1, 1, 2 for min_iter 1, eta 1.2) are merged.
    """
    return _rungs(rule_section(config, "asha"), up_to)


def decide(early: Mapping[str, Any], goal: str, trials: Sequence[Trial]) -> list[str]:
    """Ids of running trials outside the top ``1/eta`` at their highest rung (module docstring),
    for a section :func:`check` normalised."""
    eta = early["eta"]
    signed = [signed_iterations(t, goal) for t in trials]
    longest = max(
        (len(h) for h, t in zip(signed, trials, strict=True) if t.get("state") == RUNNING), default=0
    )
    rung_list = _rungs(early, longest)
    if not rung_list:
        return []
    cutoffs: dict[int, float] = {}
    for r in rung_list:
        values = sorted(h[r - 1] for h in signed if len(h) >= r)
        if len(values) >= eta:
            cutoffs[r] = values[max(1, math.floor(len(values) / eta)) - 1]
    stop: list[str] = []
    for trial, history in zip(trials, signed, strict=True):
        if trial.get("state") != RUNNING:
            continue
        reached = [r for r in rung_list if r <= len(history)]
        if not reached:
            continue
        rung = reached[-1]
        cutoff = cutoffs.get(rung)
        if cutoff is not None and history[rung - 1] > cutoff:
            stop.append(str(trial["id"]))
    return stop


def to_stop(config: Mapping[str, Any], trials: Sequence[Trial]) -> list[str]:
    """Ids of running trials outside the top ``1/eta`` at their highest rung (module docstring)."""
    _, goal = metric_spec(config)
    return decide(rule_section(config, "asha"), goal, trials)
