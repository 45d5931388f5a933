"""Grid search with W&B's order and dedupe rules (WANDB-COMPAT.md section 2.2).

* Axes are the non-constant leaf parameters in :func:`sweepq.params.flatten` order (keys sorted
  at each level, a nested group at its parent's position); the Cartesian product varies the
  *last* axis fastest and walks each axis's values in list order. Constants join every point.
* An axis is what :meth:`sweepq.params.Distribution.grid` enumerates: a categorical's values
  (duplicates collapsed, the later object kept), an int_uniform's ``range(min, max + 1)``, or a
  q_uniform's ``numpy.arange(min, max, q)`` (max excluded, float noise kept, exactly as W&B).
* Every trial, in *any* state, covers its point, so failed points are not retried (W&B does the
  same; sweepq retries *crashed* trials elsewhere, by re-running the same trial). Values compare
  by :func:`sweepq.params.canonical`: dicts regardless of key order, ``3000000.0 == 3000000``,
  ``True != 1``. For a dict-valued axis, keys of a trial's dict that appear in no grid value are
  ignored (keys a program injected at run time). A trial missing an axis covers nothing.
* No point is suggested twice, neither across calls (it is covered by the trial made from it) nor
  inside one batch; ``[]`` means the grid is exhausted.

Conditional parameters (:mod:`sweepq.conditions`): the axes are taken parents first, and a
point holds only the parameters its choices activate; an inactive axis has the one digit ``-1``
(absent). So the walk visits each *active* combination exactly once and ends exactly, with a
parent varying slower than the parameters it brings (a trial covers the point of its active
parameters; values it holds for inactive ones are ignored). Without conditions nothing changes.

Lazy, with bounded memory and CPU whatever the grid's size (six int_uniform axes of 1,000,000
values are 10^36 points): nothing is enumerated up front. A point is a tuple of digits, one per
axis; int_uniform and q_uniform values are computed from their digit (q_uniform exactly as
``numpy.arange`` computes its elements) and mapped back by arithmetic. The walk in grid order
skips at most one point per covering trial, so a call costs O(axes x (trials + n)) time and
O(axes x trials + categorical values) memory. Axis values are distinct (categoricals are
deduplicated, and validation refuses a q too fine for the range's float precision), so distinct
digits are distinct points.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from sweepq.conditions import Conditions
from sweepq.params import GridAxis, ParamPath, flatten, get_path, make, unflatten

__all__ = ["points", "suggest"]

_MISSING = object()


class _Grid:
    """The grid of a normalised config: its constants, its axes, and point <-> digits (one digit
    per axis, the last axis fastest). Digits, not one big number: with thousands of axes a
    number would cost big-integer arithmetic per trial."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.order: list[ParamPath] = []
        self.constants: dict[ParamPath, Any] = {}
        self.paths: list[ParamPath] = []
        self.axes: list[GridAxis] = []
        specs = flatten(config["parameters"])
        self.order = list(specs)
        self.cond = Conditions(config["parameters"])
        for path in self.cond.order:
            spec = specs[path]
            dist = make(spec)
            axis = dist.grid()
            if axis is None:
                raise ValueError(
                    f"parameters {'.'.join(path)}: grid search cannot enumerate a {dist.name} distribution"
                )
            if dist.searchable:
                self.paths.append(path)
                self.axes.append(axis)
            else:
                self.constants[path] = axis.value(0)

    def digits(self, params: Any) -> tuple[int, ...] | None:
        """The point a trial's params cover, or None (not a mapping, an axis missing or off-grid)."""
        if not isinstance(params, Mapping):
            return None
        if self.cond:
            return self._conditional_digits(params)
        out = []
        for path, axis in zip(self.paths, self.axes, strict=True):
            v = get_path(params, path, _MISSING)
            if v is _MISSING:
                return None  # W&B: a partial point never matches
            i = axis.index(v)
            if i is None:
                return None
            out.append(i)
        return tuple(out)

    def point(self, digits: Sequence[int]) -> dict[str, Any]:
        flat = {path: copy.deepcopy(v) for path, v in self.constants.items()}
        for path, axis, i in zip(self.paths, self.axes, digits, strict=True):
            if i >= 0:
                flat[path] = axis.value(i)
        if self.cond:
            flat = self.cond.prune(flat)  # constants whose condition does not hold
        return unflatten({path: flat[path] for path in self.order if path in flat})

    def walk(self) -> Iterator[tuple[int, ...]]:
        """Every point's digits in grid order (an odometer: O(1) amortised per step)."""
        sizes = [a.size for a in self.axes]
        if any(n <= 0 for n in sizes):
            return
        if self.cond:
            yield from self._conditional_walk(sizes)
            return
        digits = [0] * len(sizes)
        while True:
            yield tuple(digits)
            j = len(digits) - 1
            while j >= 0 and digits[j] == sizes[j] - 1:
                digits[j] = 0
                j -= 1
            if j < 0:
                return
            digits[j] += 1

    # --- conditional grids: an axis is active or absent (-1) by the digits of its parents ------

    def _active_values(self, digits: Sequence[int], upto: int) -> dict[ParamPath, Any]:
        """Values of the active axes before position ``upto``, and of every constant."""
        active = dict(self.constants)
        for path, axis, i in zip(self.paths[:upto], self.axes[:upto], digits[:upto], strict=True):
            if i >= 0:
                active[path] = axis.value(i)
        return active

    def _settle(self, digits: list[int], start: int) -> None:
        """Set every axis from ``start`` on to its first value if active, else to -1 (absent).
        Axes are in parents-first order, so each one's parents are settled before it."""
        active = self._active_values(digits, start)
        for k in range(start, len(self.axes)):
            if self.cond.holds(self.paths[k], active):
                digits[k] = 0
                active[self.paths[k]] = self.axes[k].value(0)
            else:
                digits[k] = -1

    def _conditional_walk(self, sizes: list[int]) -> Iterator[tuple[int, ...]]:
        digits = [0] * len(sizes)
        self._settle(digits, 0)
        while True:
            yield tuple(digits)
            j = len(digits) - 1
            while j >= 0 and (digits[j] < 0 or digits[j] == sizes[j] - 1):
                j -= 1
            if j < 0:
                return
            digits[j] += 1
            self._settle(digits, j + 1)

    def _conditional_digits(self, params: Mapping[str, Any]) -> tuple[int, ...] | None:
        active = dict(self.constants)
        out = []
        for path, axis in zip(self.paths, self.axes, strict=True):
            if not self.cond.holds(path, active):
                out.append(-1)  # absent from this point: a value the trial holds is ignored
                continue
            v = get_path(params, path, _MISSING)
            i = None if v is _MISSING else axis.index(v)
            if i is None:
                return None
            out.append(i)
            active[path] = axis.value(i)
        return tuple(out)


def points(config: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every grid point in order, ignoring trials (for previews and tests; may be large)."""
    return suggest(config, [], n=None)


def suggest(
    config: Mapping[str, Any],
    trials: Sequence[Mapping[str, Any]],
    n: int | None = 1,
    seed: int | None = None,
) -> list[dict[str, Any]]:
    """The next ``n`` grid points no trial covers (fewer, or ``[]``, near exhaustion).

    ``config`` is normalised; ``seed`` is accepted for a uniform interface and unused (the grid
    order is fixed). ``n=None`` means all remaining points. The cost does not depend on the
    grid's size (see the module docstring).
    """
    g = _Grid(config)
    covered = {d for d in (g.digits(t.get("params")) for t in trials) if d is not None}
    out: list[dict[str, Any]] = []
    for digits in g.walk():
        if n is not None and len(out) >= n:
            break
        if digits not in covered:
            out.append(g.point(digits))
    return out
