"""The median stopping rule (Golovin et al. 2017, Google Vizier), in Optuna's MedianPruner form.

The rule needs no schedule to tune: a trial whose best value so far is worse than what the
typical trial had at the same point is unlikely to end best. Of the published variants, sweepq
uses Optuna's (``MedianPruner`` = ``PercentilePruner(50)``) decision quantity, because it is the
one most users have met and its step alignment is exact:

* ``t`` = the trial's number of iterations (finite logged values of the metric);
* the trial's **best value so far**, ``min(history)`` (``max`` for maximize), is compared with
* the **median of the other trials' values at iteration t** (``history[t-1]``; for an even
  count the mean of the two middle values, as ``numpy.nanpercentile(.., 50)``).
* Stop iff best-so-far is strictly worse than that median (ties survive).

Keys (``early_terminate: {type: median, ...}``):

* ``warmup_steps`` (default 5): the first ``warmup_steps`` iterations are never judged, i.e. a
  trial is judged once ``t > warmup_steps`` (Optuna's ``n_warmup_steps`` with 0-based steps).
* ``min_trials`` (default 5): at least this many *other* trials must have a value at iteration
  ``t``, otherwise the trial continues (Optuna's ``n_min_trials``).

Where sweepq differs from Optuna and from Golovin et al.: the peers are all other trials that
logged ``t`` values, in any state (running, finished, stopped, failed), not only completed ones.
Both originals compare against completed trials, and Optuna's ``n_startup_trials`` waits for that
many completions, which in an asynchronous sweep means the first several trials always run in
full and the rule cannot act until a few full trainings have been paid for. Golovin et al. also
compare against running *averages*; sweepq (like Optuna) compares against the values themselves.

Example (warmup_steps 2, min_trials 3, minimize): peers have values 0.40, 0.50, 0.60, 0.70 at
iteration 3. A running trial that logged [0.9, 0.7, 0.65] has best 0.65 > median 0.55: stop.
One that logged [0.9, 0.5, 0.8] has best 0.5 <= 0.55: it continues.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from sweepq.checks import Checker
from sweepq.stopping import RUNNING, Trial, metric_spec, rule_section, signed_iterations

__all__ = ["KEYS", "check", "decide", "to_stop"]

KEYS = ("warmup_steps", "min_trials")
"""The keys of ``early_terminate: {type: median, ...}``."""


def check(ck: Checker, early: Mapping[str, Any]) -> dict[str, Any]:
    """The section with its defaults filled (``warmup_steps`` 5, ``min_trials`` 5), problems
    recorded in ``ck``: integers, ``warmup_steps`` >= 0, ``min_trials`` >= 1."""
    return {
        "type": "median",
        "warmup_steps": ck.integer("early_terminate.warmup_steps", early.get("warmup_steps", 5), minimum=0),
        "min_trials": ck.integer("early_terminate.min_trials", early.get("min_trials", 5), minimum=1),
    }


def decide(early: Mapping[str, Any], goal: str, trials: Sequence[Trial]) -> list[str]:
    """Ids of running trials whose best-so-far is worse than the peers' median at their step,
    for a section :func:`check` normalised."""
    warmup_steps, min_trials = early["warmup_steps"], early["min_trials"]
    signed = [signed_iterations(t, goal) for t in trials]
    stop: list[str] = []
    for index, (trial, history) in enumerate(zip(trials, signed, strict=True)):
        t = len(history)
        if trial.get("state") != RUNNING or t <= warmup_steps or t == 0:
            continue
        peers = [h[t - 1] for j, h in enumerate(signed) if j != index and len(h) >= t]
        if len(peers) < min_trials:
            continue
        if min(history) > statistics.median(peers):
            stop.append(str(trial["id"]))
    return stop


def to_stop(config: Mapping[str, Any], trials: Sequence[Trial]) -> list[str]:
    """Ids of running trials whose best-so-far is worse than the peers' median at their step."""
    _, goal = metric_spec(config)
    return decide(rule_section(config, "median"), goal, trials)
