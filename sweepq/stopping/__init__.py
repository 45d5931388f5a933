"""Early termination: which running trials should stop now.

Every rule here is a pure function of ``(config, trials)`` and keeps no state between calls,
like W&B's ``stop_runs``. That is deliberate: the controller may call a rule as often as metrics
arrive, a restarted controller loses nothing, and the tests need no Redis, Celery or clock.

``config`` is the normalised sweep config of docs/design.md; only ``metric`` (``name``, ``goal``)
and ``early_terminate`` are read, and missing rule defaults are filled here as well, so a
hand-written dict works too. A trial is ``{"id", "params", "state", "metric", "history"}`` with
``history`` the values of ``metric.name`` in the order logged.

Shared rules of all three stoppers:

* **An iteration is one finite numeric logged value.** ``None``, NaN, +-inf, strings and bools
  in ``history`` are skipped (W&B's ``metric_history(filter_invalid=True)``), so
  ``[0.9, nan, 0.8]`` counts as 2 iterations and the second iteration is 0.8.
* **Maximize goals are negated** internally, so every rule compares "lower is better".
* **Only ``running`` trials are judged**; trials in every other state still count as evidence.
* Answers are trial ids in the order the trials were given.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from numbers import Real
from typing import Any

__all__ = ["RULES", "early_terminate", "iterations", "metric_spec", "signed_iterations", "to_stop"]

Trial = Mapping[str, Any]
StopRule = Callable[[Mapping[str, Any], Sequence[Trial]], list[str]]

RULES = ("hyperband", "asha", "median")
"""The ``early_terminate.type`` values sweepq understands (W&B knows only ``hyperband``)."""

RUNNING = "running"


def iterations(trial: Trial) -> list[float]:
    """The trial's finite numeric metric values, in logged order (see "An iteration" above)."""
    out: list[float] = []
    for value in trial.get("history") or ():
        # bool is a Real subclass; W&B drops it, and a logged True is never a loss value.
        if isinstance(value, bool) or not isinstance(value, Real):
            continue
        number = float(value)
        if math.isfinite(number):
            out.append(number)
    return out


def metric_spec(config: Mapping[str, Any]) -> tuple[str, str]:
    """``(name, goal)`` of the sweep metric; a stopping rule is meaningless without one."""
    metric = config.get("metric")
    if not isinstance(metric, Mapping) or not metric.get("name"):
        raise ValueError("early_terminate needs a metric: set metric.name (and metric.goal)")
    goal = metric.get("goal") or "minimize"
    if goal not in ("minimize", "maximize"):
        raise ValueError(f"metric.goal: must be minimize or maximize (got {goal!r})")
    return str(metric["name"]), goal


def signed_iterations(trial: Trial, goal: str) -> list[float]:
    """:func:`iterations`, negated for ``maximize`` so that lower is always better."""
    values = iterations(trial)
    return [-v for v in values] if goal == "maximize" else values


def early_terminate(config: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The ``early_terminate`` section, or None when the sweep has none."""
    section = config.get("early_terminate")
    if section is None:
        return None
    if not isinstance(section, Mapping):
        # W&B raises here too: `early_terminate: hyperband` (a bare string) is a common slip.
        raise ValueError(
            f"early_terminate: must be a mapping with a type key (got {section!r}); "
            "write early_terminate: {type: hyperband, min_iter: 3}"
        )
    return section


def _rules() -> dict[str, StopRule]:
    # Imported here, not at module top, so that the rule modules can import the helpers above
    # from this package without an import cycle.
    from sweepq.stopping import asha, hyperband, median

    return {"hyperband": hyperband.to_stop, "asha": asha.to_stop, "median": median.to_stop}


def to_stop(config: Mapping[str, Any], trials: Iterable[Trial]) -> list[str]:
    """Ids of the ``running`` trials that the sweep's early-termination rule would stop now.

    Returns ``[]`` when the config has no ``early_terminate``. Raises ``ValueError`` for an
    unknown ``early_terminate.type`` or invalid rule keys, since silently not stopping would
    burn the compute the user asked to save.
    """
    section = early_terminate(config)
    if section is None:
        return []
    kind = section.get("type")
    rules = _rules()
    if kind not in rules:
        raise ValueError(f"early_terminate.type: must be one of {', '.join(RULES)} (got {kind!r})")
    return rules[kind](config, list(trials))
