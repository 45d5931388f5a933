"""The pure core in one place: ``suggest`` and ``to_stop`` of ``(config, trials)``.

Like W&B's ``next_run``/``stop_runs``, the engine keeps no state: everything it needs is the
config and the trials (docs/design.md, "Engine"), so the controller, benchmarks and notebooks
can call it without Redis or Celery. A trial is ``{"id", "params", "state", "metric",
"history"}``; ``queued`` and ``running`` trials are in flight.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping
from typing import Any

from sweepq import stopping
from sweepq.config import load_config

__all__ = ["suggest", "to_stop"]


def suggest(
    config: Any,
    trials: Iterable[Mapping[str, Any]] = (),
    n: int = 1,
    seed: int | None = None,
) -> list[dict[str, Any]]:
    """Up to ``n`` new parameter dicts, nested as in the config, constants included.

    ``config`` is a path, YAML text or dict (``ConfigError`` if invalid; a config
    ``load_config`` returned is not checked again, so calling this on every controller pass is
    cheap). ``seed`` overrides the config's ``seed``. Grid returns fewer than ``n`` (``[]`` when
    exhausted) and never a point a trial already covers; bayes returns fewer only when a finite
    (all-discrete) space has no untried point left; random always returns ``n``.
    """
    cfg = load_config(config)
    trials = list(trials or ())
    if n <= 0:
        return []
    if seed is None:
        seed = cfg.get("seed")
    # imported on first use, so that grid and random never pay for bayes' scientific stack
    method = importlib.import_module(f"sweepq.search.{cfg['method']}")
    out: list[dict[str, Any]] = method.suggest(cfg, trials, n, seed)
    return out


def to_stop(config: Any, trials: Iterable[Mapping[str, Any]]) -> list[str]:
    """Ids of running trials that the config's ``early_terminate`` rule would stop now; ``[]``
    when the config has none. ``config`` as for :func:`suggest`."""
    return stopping.to_stop(load_config(config), list(trials))
