"""Grid search with W&B's order and dedupe rules (WANDB-COMPAT.md section 2.2).

* Axes are the non-constant leaf parameters in :func:`sweepq.params.flatten` order (keys sorted
  at each level, a nested group at its parent's position); the Cartesian product varies the
  *last* axis fastest and walks each axis's values in list order. Constants join every point.
* An axis is a categorical's values (duplicates collapsed, the later object kept), an
  int_uniform's ``range(min, max + 1)``, or a q_uniform's ``numpy.arange(min, max, q)`` (max
  excluded, float noise kept, exactly as W&B).
* Every trial, in *any* state, covers its point, so failed points are not retried (W&B does the
  same; sweepq retries *crashed* trials elsewhere, by re-running the same trial). Values compare
  by :func:`sweepq.params.canonical`: dicts regardless of key order, ``3000000.0 == 3000000``,
  ``True != 1``. For a dict-valued axis, keys of a trial's dict that appear in no grid value are
  ignored (keys a program injected at run time). A trial missing an axis covers nothing.
* No point is suggested twice, neither across calls (it is covered by the trial made from it) nor
  inside one batch; ``[]`` means the grid is exhausted.

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
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from sweepq.params import ParamPath, canonical, flatten, get_path, make, unflatten

__all__ = ["points", "suggest"]

_MISSING = object()


class _Values:
    """A categorical axis: its distinct values in grid order, and their positions by value."""

    def __init__(self, values: list[Any]) -> None:
        self.values = values
        self.size = len(values)
        self._pos = {canonical(v): i for i, v in enumerate(values)}
        # keys any dict value has: keys of a trial's dict beyond these were injected at run time
        keys = [set(v) for v in values if isinstance(v, Mapping)]
        self._dict_keys = set().union(*keys) if keys else None

    def value(self, i: int) -> Any:
        return copy.deepcopy(self.values[i])

    def index(self, v: Any) -> int | None:
        if self._dict_keys is not None and isinstance(v, Mapping):
            v = {k: x for k, x in v.items() if k in self._dict_keys}
        return self._pos.get(canonical(v))


class _Range:
    """An int_uniform (``range(min, max + 1)``) or q_uniform (``numpy.arange(min, max, q)``) axis,
    computed rather than listed. numpy fills an arange as ``start + i * delta`` with
    ``delta = (start + q) - start``, in the integers when min, max and q are all integers and in
    doubles otherwise; this does the same, so the values (float noise included) are W&B's."""

    def __init__(self, start: int | float, q: int | float, size: int, integral: bool) -> None:
        if not integral:
            start, q = float(start), float(start + q) - float(start)
        self.start, self.delta, self.size = start, q, size

    def value(self, i: int) -> int | float:
        return self.start + i * self.delta

    def index(self, v: Any) -> int | None:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            return None
        key = canonical(v)
        try:
            guess = round((v - self.start) / self.delta)
        except OverflowError:  # an integer far beyond any float: on no axis
            return None
        for i in (guess, guess - 1, guess + 1):  # rounding may put v one step off
            if 0 <= i < self.size and canonical(self.value(i)) == key:
                return i
        return None


def _axis(spec: Mapping[str, Any]) -> _Values | _Range | None:
    """The axis of a non-constant leaf spec; None for a constant."""
    dist = spec["distribution"]
    if dist == "int_uniform":
        return _Range(spec["min"], 1, spec["max"] - spec["min"] + 1, integral=True)
    if dist == "q_uniform":
        lo, hi, q = spec["min"], spec["max"], spec["q"]
        integral = all(isinstance(x, int) and not isinstance(x, bool) for x in (lo, hi, q))
        return _Range(lo, q, max(0, math.ceil((hi - lo) / q)), integral)
    d = make(spec)
    values = d.grid()
    if values is None:
        raise ValueError(f"grid search cannot enumerate a {d.name} distribution")
    return _Values(values) if d.searchable else None


class _Grid:
    """The grid of a normalised config: its constants, its axes, and point <-> digits (one digit
    per axis, the last axis fastest). Digits, not one big number: with thousands of axes a
    number would cost big-integer arithmetic per trial."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.order: list[ParamPath] = []
        self.constants: dict[ParamPath, Any] = {}
        self.paths: list[ParamPath] = []
        self.axes: list[_Values | _Range] = []
        for path, spec in flatten(config["parameters"]).items():
            self.order.append(path)
            try:
                axis = _axis(spec)
            except ValueError as exc:
                raise ValueError(f"parameters {'.'.join(path)}: {exc}") from None
            if axis is None:
                self.constants[path] = make(spec).grid()[0]
            else:
                self.paths.append(path)
                self.axes.append(axis)

    def digits(self, params: Any) -> tuple[int, ...] | None:
        """The point a trial's params cover, or None (not a mapping, an axis missing or off-grid)."""
        if not isinstance(params, Mapping):
            return None
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
            flat[path] = axis.value(i)
        return unflatten({path: flat[path] for path in self.order})

    def walk(self) -> Iterator[tuple[int, ...]]:
        """Every point's digits in grid order (an odometer: O(1) amortised per step)."""
        sizes = [a.size for a in self.axes]
        if any(n <= 0 for n in sizes):
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
