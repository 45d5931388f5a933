"""Early termination: which running trials should stop now.

Every rule here is a pure function of ``(config, trials)`` and keeps no state between calls,
like W&B's ``stop_runs``. That is deliberate: the controller may call a rule as often as metrics
arrive, a restarted controller loses nothing, and the tests need no Redis, Celery or clock.

Each rule module owns its ``early_terminate`` section: its keys (``KEYS``), their defaults and
what values they accept (``check``). :func:`validate` is how ``sweepq.config`` checks the section;
:func:`section` is how the rules read it, through the same check, so a hand-written config
(defaults missing, a key set to ``None`` for its default) means what it would mean after
validation, and an invalid one raises ``ValueError`` with the messages ``sweepq validate`` prints.

``config`` is the sweep config of docs/design.md; only ``metric`` (``name``, ``goal``) and
``early_terminate`` are read. A trial is ``{"id", "params", "state", "metric", "history"}`` with
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

from collections.abc import Callable, Iterable, Mapping, Sequence
from types import ModuleType
from typing import Any

from sweepq.checks import Checker, describe, did_you_mean
from sweepq.model import TrialState, finite_number

__all__ = [
    "RULES",
    "iterations",
    "metric_spec",
    "rule_section",
    "section",
    "signed_iterations",
    "to_stop",
    "validate",
]

Trial = Mapping[str, Any]
Decision = Callable[[Mapping[str, Any], str, Sequence[Trial]], list[str]]
"""A rule's ``decide(early, goal, trials)``: ids to stop, given its normalised section."""

RULES = ("hyperband", "asha", "median")
"""The ``early_terminate.type`` values sweepq understands (W&B knows only ``hyperband``)."""

RUNNING = TrialState.RUNNING.value


def iterations(trial: Trial) -> list[float]:
    """The trial's finite numeric metric values, in logged order (see "An iteration" above)."""
    out: list[float] = []
    for value in trial.get("history") or ():
        number = finite_number(value)
        if number is not None:
            out.append(number)
    return out


def metric_spec(config: Mapping[str, Any]) -> tuple[str, str]:
    """``(name, goal)`` of the sweep metric (the first objective of a list: the documented rule
    for multi-objective sweeps); a stopping rule is meaningless without one."""
    metric = config.get("metric")
    if isinstance(metric, list) and metric:
        metric = metric[0]
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


def _rules() -> dict[str, ModuleType]:
    # Imported here, not at module top, so that the rule modules can import the helpers above
    # from this package without an import cycle.
    from sweepq.stopping import asha, hyperband, median

    return {"hyperband": hyperband, "asha": asha, "median": median}


def validate(ck: Checker, early: Any) -> dict[str, Any] | None:
    """The normalised ``early_terminate`` section (``type`` first, the rule's defaults filled),
    or None after recording its problems in ``ck``. Accepts anything."""
    if not isinstance(early, Mapping):
        ck.error(
            "early_terminate",
            f"must be a mapping such as {{type: hyperband, min_iter: 3}} (got {describe(early)})",
        )
        return None
    kind = ck.choice("early_terminate.type", early.get("type"), RULES)
    if "type" not in early:
        ck.errors[-1] = f"early_terminate.type: missing; must be one of {', '.join(RULES)}"
    if kind is None:
        return None
    rule = _rules()[kind]
    n_errors = len(ck.errors)
    allowed = ("type", *rule.KEYS)
    for key in early:
        if key not in allowed:
            ck.error(
                f"early_terminate.{key}",
                f"is not a key of {kind}{did_you_mean(key, allowed)}; allowed: {', '.join(rule.KEYS)}",
            )
    out: dict[str, Any] = rule.check(ck, early)
    return out if len(ck.errors) == n_errors else None


def section(config: Mapping[str, Any]) -> dict[str, Any] | None:
    """The config's ``early_terminate`` section as :func:`validate` normalises it, or None when
    the config has none. Keys set to ``None`` take their defaults. Raises ``ValueError`` (the
    validation messages, joined by ``; ``) for an invalid section, since silently not stopping
    would burn the compute the user asked to save."""
    early = config.get("early_terminate")
    return None if early is None else _checked(early)


def rule_section(config: Mapping[str, Any], rule: str) -> dict[str, Any]:
    """:func:`section` for a rule's own functions: a config without the section reads as
    ``{type: rule}`` (that rule's defaults, or the error saying what it needs)."""
    early = config.get("early_terminate")
    return _checked({"type": rule} if early is None else early)


def _checked(early: Any) -> dict[str, Any]:
    if isinstance(early, Mapping):
        early = {k: v for k, v in early.items() if v is not None}
    ck = Checker()
    out = validate(ck, early)
    if out is None:
        raise ValueError("; ".join(ck.errors))
    return out


def to_stop(config: Mapping[str, Any], trials: Iterable[Trial]) -> list[str]:
    """Ids of the ``running`` trials that the sweep's early-termination rule would stop now.

    Returns ``[]`` when the config has no ``early_terminate``; ``ValueError`` as :func:`section`.
    """
    early = section(config)
    if early is None:
        return []
    _, goal = metric_spec(config)
    decide: Decision = _rules()[early["type"]].decide
    return decide(early, goal, list(trials))
