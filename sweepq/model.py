"""What sweepq's records are: the states of trials and sweeps, the shape of a trial, and the one
way a number is read from a training program or from Redis.

Everything else (the store, the controller, the engine, the CLI, the web) takes these from here,
so a state or a coercion rule is defined once. States are ``StrEnum``s: they compare equal to the
plain strings stored in Redis and written in JSON, so records stay plain dicts (the engine's
contract, docs/design.md "Trials") while code can name them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from enum import StrEnum
from typing import Any, TypedDict


class TrialState(StrEnum):
    """A trial's state. ``queued`` and ``running`` are in flight; the others are final."""

    QUEUED = "queued"
    RUNNING = "running"
    FINISHED = "finished"  # its program exited 0
    FAILED = "failed"  # its program exited non-zero, could not start, or ran past trial_timeout
    CRASHED = "crashed"  # its worker vanished and no retry was left
    STOPPED = "stopped"  # early-terminated (or stopped with its sweep)
    CANCELED = "canceled"


class SweepState(StrEnum):
    """A sweep's state. ``running``, ``paused`` and ``stopped`` (running trials finishing) are
    active; ``canceled``, ``finished`` and ``failed`` are final."""

    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"
    CANCELED = "canceled"
    FINISHED = "finished"
    FAILED = "failed"  # its first trials all failed, or the controller could not run it


TRIAL_STATES: tuple[str, ...] = tuple(s.value for s in TrialState)
SWEEP_STATES: tuple[str, ...] = tuple(s.value for s in SweepState)
IN_FLIGHT: frozenset[str] = frozenset({TrialState.QUEUED.value, TrialState.RUNNING.value})
FINAL_STATES: frozenset[str] = frozenset(TRIAL_STATES) - IN_FLIGHT
# final states of trials whose program ran to a verdict of its own (it could log metrics)
RAN_STATES: frozenset[str] = frozenset(
    {TrialState.FINISHED.value, TrialState.FAILED.value, TrialState.STOPPED.value}
)
DEFAULT_QUEUE = "sweepq"  # the Celery queue of a sweep that names none (config key ``queue``)

SWEEP_FINAL: frozenset[str] = frozenset(
    {SweepState.CANCELED.value, SweepState.FINISHED.value, SweepState.FAILED.value}
)


class Trial(TypedDict, total=False):
    """A trial as the engine and the readers see it (a plain dict; ``id``, ``params``, ``state``,
    ``metric`` and ``history`` are the engine's contract, the rest are the store's record)."""

    id: str
    sweep: str
    n: int
    state: str
    params: dict[str, Any]
    metric: float | None  # the summary: the last finite value of the sweep metric logged
    history: list[float]  # every finite value of the sweep metric, in the order logged
    steps: int
    queued_at: float | None
    started_at: float | None
    ended_at: float | None
    worker: str | None
    exit_code: int | None
    attempt: int
    reason: str
    log_tail: str
    stop: str
    published: bool
    queue: str
    gpus: str
    published_at: float | None
    log_path: str
    # a multi-objective sweep's summary value of each objective by name (None: none logged yet)
    objectives: dict[str, float | None] | None


def finite_number(v: Any) -> float | None:
    """A value a program logged as a float, if it is a real, finite number; else None.

    Bools and strings are not metric values (``"0.5"`` stays a string in the rows), numpy scalars
    are, and a JSON integer beyond float range is not (``float()`` would overflow)."""
    if isinstance(v, bool):
        return None
    if type(v) is not float and type(v) is not int:
        try:
            import numpy as np  # numpy scalars from a script's run.log; numpy is always installed
        except ImportError:  # pragma: no cover
            return None
        if not isinstance(v, int | float | np.integer | np.floating):
            return None
    try:
        f = float(v)
    except OverflowError:
        return None
    return f if math.isfinite(f) else None


def stored_number(text: Any) -> float | None:
    """A number field read back from Redis (a string, or ``''``/None for none)."""
    if text in (None, ""):
        return None
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def objectives(config: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The sweep's objectives in order, each ``{name, goal, ...}``: a list metric as it is, one
    metric as a list of one, none as ``[]``. Readers that need only what drives early termination,
    the sweep's ``best`` and ``target`` take the first (:func:`primary_metric`)."""
    metric = config.get("metric")
    if isinstance(metric, list):
        return list(metric)
    return [dict(metric)] if isinstance(metric, Mapping) else []


def primary_metric(config: Mapping[str, Any]) -> dict[str, Any]:
    """The first objective (``{}`` without a metric): what early termination judges, what the
    sweep's running ``best`` and ``status`` track, and ``metric`` in the run JSON."""
    found = objectives(config)
    return dict(found[0]) if found else {}


def is_multi_objective(config: Mapping[str, Any]) -> bool:
    """True for a sweep whose ``metric`` is a list of objectives."""
    return isinstance(config.get("metric"), list)
