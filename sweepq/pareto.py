"""The Pareto front of a multi-objective sweep, and the hypervolume that measures one: pure functions.

A trial is on the front when it finished, logged every objective (a finite summary value each)
and no other such trial is at least as good on every objective and better on one. Equal vectors
do not dominate each other, so ties are all on the front. The front is ordered by the first
objective (best first, by its goal), then by the next ones, then by trial number, so every
reader (``sweepq best``, the API, the dashboard) shows the same order.

Values are compared as the user logged them; ``goal: maximize`` objectives are negated inside
(:func:`minimised`), so all the arithmetic below minimises.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from sweepq.model import finite_number

__all__ = ["front", "front_indices", "hypervolume", "minimised", "objective_values"]


def objective_values(trial: Mapping[str, Any], names: Sequence[str]) -> list[float | None]:
    """A trial's summary value of each objective, in order (None where missing or not finite).

    Reads the engine's shape (``metric`` a list in objective order) or the store's (``objectives``
    by name, ``metric`` the first objective's value)."""
    metric = trial.get("metric")
    if isinstance(metric, (list, tuple)):
        vals = [finite_number(v) for v in metric[: len(names)]]
        return vals + [None] * (len(names) - len(vals))
    by_name = trial.get("objectives") or {}
    out = [finite_number(by_name.get(name)) for name in names]
    if names and out[0] is None:
        out[0] = finite_number(metric)
    return out


def minimised(values: Sequence[float], goals: Sequence[str]) -> list[float]:
    """``values`` with every ``maximize`` objective negated: lower is better everywhere."""
    return [-v if g == "maximize" else v for v, g in zip(values, goals, strict=True)]


def _dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    return all(x <= y for x, y in zip(a, b, strict=True)) and any(x < y for x, y in zip(a, b, strict=True))


def front_indices(points: Sequence[Sequence[float | None]], goals: Sequence[str]) -> list[int]:
    """Indices of the non-dominated points among those with every value present, ordered by the
    first objective (best first), then the next ones, then index.

    Sorting by the minimised vector first means a point can only be dominated by one before it,
    so each is compared with the front found so far: O(n * front size)."""
    full = [
        (minimised([float(v) for v in p], goals), i)  # type: ignore[arg-type]
        for i, p in enumerate(points)
        if len(p) == len(goals) and all(v is not None and math.isfinite(v) for v in p)
    ]
    full.sort()
    kept: list[tuple[list[float], int]] = []
    for vec, i in full:
        if not any(_dominates(k, vec) for k, _ in kept):
            kept.append((vec, i))
    return [i for _, i in kept]


def front(
    trials: Sequence[Mapping[str, Any]], objectives: Sequence[Mapping[str, Any]]
) -> list[Mapping[str, Any]]:
    """The finished trials on the Pareto front of ``objectives`` (``[{name, goal}, ...]``), ordered
    as :func:`front_indices` orders them (ties in every value keep the order given: the store
    lists a sweep's trials in the order they were created)."""
    names = [o["name"] for o in objectives]
    goals = [o.get("goal", "minimize") for o in objectives]
    done = [t for t in trials if t.get("state") == "finished"]
    return [done[i] for i in front_indices([objective_values(t, names) for t in done], goals)]


def hypervolume(points: Sequence[Sequence[float]], ref: Sequence[float]) -> float:
    """The volume that ``points`` (minimised) dominate inside the box below ``ref``; exact.

    Slices along the last objective: between two consecutive values, the dominated cross-section
    is the hypervolume of the points at or below the slice in one dimension fewer. O(n^(m-1) log n)
    for m objectives, instant for the fronts of a sweep (tens to hundreds of points, m <= 4)."""
    pts = [tuple(float(v) for v in p) for p in points if all(v < r for v, r in zip(p, ref, strict=True))]
    return _hv(pts, tuple(float(r) for r in ref))


def _hv(pts: list[tuple[float, ...]], ref: tuple[float, ...]) -> float:
    if not pts:
        return 0.0
    m = len(ref)
    if m == 1:
        return ref[0] - min(p[0] for p in pts)
    if m == 2:
        total, best_y = 0.0, ref[1]
        for x, y in sorted(pts):
            if y < best_y:
                total += (ref[0] - x) * (best_y - y)
                best_y = y
        return total
    pts = sorted(pts, key=lambda p: p[-1])
    total = 0.0
    for k, p in enumerate(pts):
        upper = pts[k + 1][-1] if k + 1 < len(pts) else ref[-1]
        if upper > p[-1]:
            total += (upper - p[-1]) * _hv([q[:-1] for q in pts[: k + 1]], ref[:-1])
    return total
