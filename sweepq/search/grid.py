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
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Mapping, Sequence
from typing import Any

from sweepq.params import ParamPath, canonical, flatten, get_path, make, unflatten

__all__ = ["points", "suggest"]

_MISSING = object()


def _axes(config: Mapping[str, Any]) -> tuple[dict[ParamPath, Any], list[tuple[ParamPath, list[Any]]]]:
    constants: dict[ParamPath, Any] = {}
    axes: list[tuple[ParamPath, list[Any]]] = []
    for path, spec in flatten(config["parameters"]).items():
        dist = make(spec)
        values = dist.grid()
        if values is None:
            raise ValueError(
                f"parameters {'.'.join(path)}: grid search cannot enumerate a {dist.name} distribution"
            )
        if dist.searchable:
            axes.append((path, values))
        else:
            constants[path] = values[0]
    return constants, axes


def _dict_keys(values: list[Any]) -> set[str] | None:
    """Keys that any dict value of an axis has; ``None`` when the axis holds no dicts."""
    keys = [set(v) for v in values if isinstance(v, Mapping)]
    return set().union(*keys) if keys else None


def _trial_key(params: Any, axes: list[tuple[ParamPath, list[Any]]], dict_keys: list[set[str] | None]) -> tuple | None:
    if not isinstance(params, Mapping):
        return None
    key = []
    for (path, _values), known in zip(axes, dict_keys, strict=True):
        value = get_path(params, path, _MISSING)
        if value is _MISSING:
            return None  # W&B: a partial point never matches
        if known is not None and isinstance(value, Mapping):
            value = {k: v for k, v in value.items() if k in known}
        key.append(canonical(value))
    return tuple(key)


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
    order is fixed). ``n=None`` means all remaining points.
    """
    constants, axes = _axes(config)
    dict_keys = [_dict_keys(values) for _path, values in axes]
    covered = set()
    for trial in trials:
        key = _trial_key(trial.get("params"), axes, dict_keys)
        if key is not None:
            covered.add(key)
    out: list[dict[str, Any]] = []
    paths = [path for path, _values in axes]
    order = list(flatten(config["parameters"]))  # values come out in path order, constants included
    for combo in itertools.product(*(values for _path, values in axes)):
        if n is not None and len(out) >= n:
            break
        key = tuple(canonical(v) for v in combo)
        if key in covered:
            continue
        covered.add(key)
        flat = dict(constants)
        flat.update(zip(paths, combo, strict=True))
        out.append(unflatten({path: copy.deepcopy(flat[path]) for path in order}))
    return out
