"""Random search (WANDB-COMPAT.md section 2.3): every parameter drawn independently, each as
``ppf(u)`` of one uniform draw, constants included as they are. No dedupe and no exhaustion.

Reproducibility: with a seed ``s`` (the ``seed`` argument or the config's ``seed``), suggestion
number ``k`` of the sweep (``k = len(trials)`` for the first of a batch, then ``k + 1``, ...) is
drawn from a generator seeded with ``(s, k)``. So repeated calls in a live sweep differ, a whole
sweep replays exactly, and ``suggest(n=3)`` equals three calls that each add the previous
suggestion as a trial. Without a seed every call uses fresh OS entropy, so parallel controllers
or agents never draw the same sequence (W&B issue #5215).

Conditional parameters (:mod:`sweepq.conditions`): parameters are drawn parents first, and one
whose condition does not hold is neither drawn nor present. Without conditions the order is
:func:`sweepq.params.flatten`'s, so the draws are those of a config without ``when``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from sweepq.conditions import Conditions
from sweepq.params import ParamPath, flatten, make, unflatten

__all__ = ["suggest"]


def suggest(
    config: Mapping[str, Any],
    trials: Sequence[Mapping[str, Any]],
    n: int = 1,
    seed: int | None = None,
) -> list[dict[str, Any]]:
    """``n`` independent random points of the (normalised) config's space."""
    if seed is None:
        seed = config.get("seed")
    specs = flatten(config["parameters"])
    cond = Conditions(config["parameters"])
    leaves = [(path, make(specs[path])) for path in cond.order]
    if seed is None:
        fresh = np.random.default_rng()
        rngs = [fresh] * n
    else:
        rngs = [np.random.default_rng([int(seed), len(trials) + i]) for i in range(n)]
    if not cond:
        return [unflatten({path: dist.sample(rng) for path, dist in leaves}) for rng in rngs]
    out = []
    for rng in rngs:
        drawn: dict[ParamPath, Any] = {}
        for path, dist in leaves:
            if cond.holds(path, drawn):
                drawn[path] = dist.sample(rng)
        out.append(unflatten({path: drawn[path] for path in specs if path in drawn}))
    return out
