"""The pure core in one place: ``suggest`` and ``to_stop`` of ``(config, trials)``.

Like W&B's ``next_run``/``stop_runs``, the engine keeps no state: everything it needs is the
config and the trials (docs/design.md, "Engine"), so the controller, benchmarks and notebooks
can call it without Redis or Celery. A trial is ``{"id", "params", "state", "metric",
"history"}``; ``queued`` and ``running`` trials are in flight.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sweepq.config import load_config

__all__ = ["suggest", "to_stop"]


def _config(config: Any) -> dict[str, Any]:
    # A config load_config returned comes back unchecked (cheap on every controller pass); any
    # other dict, whatever keys it carries, is checked in full.
    return load_config(config)


def suggest(
    config: Any,
    trials: Iterable[Mapping[str, Any]] = (),
    n: int = 1,
    seed: int | None = None,
) -> list[dict[str, Any]]:
    """Up to ``n`` new parameter dicts, nested as in the config, constants included.

    ``config`` is a path, YAML text or dict (``ConfigError`` if invalid). ``seed`` overrides the
    config's ``seed``. Grid returns fewer than ``n`` (``[]`` when exhausted) and never a point a
    trial already covers; bayes returns fewer only when a finite (all-discrete) space has no untried
    point left; random always returns ``n``.
    """
    cfg = _config(config)
    trials = list(trials or ())
    if n <= 0:
        return []
    if seed is None:
        seed = cfg.get("seed")
    method = cfg["method"]
    if method == "grid":
        from sweepq.search import grid

        return grid.suggest(cfg, trials, n, seed)
    if method == "bayes":
        try:
            from sweepq.search import bayes
        except ModuleNotFoundError as exc:
            if exc.name != "sweepq.search.bayes":
                raise
            # sweepq/search/bayes.py is written separately; until it exists, bayes starts the
            # way it always starts (random points), which keeps preview and tests working.
            bayes = None
        if bayes is not None:
            return bayes.suggest(cfg, trials, n, seed)
    from sweepq.search import random

    return random.suggest(cfg, trials, n, seed)


def to_stop(config: Any, trials: Iterable[Mapping[str, Any]]) -> list[str]:
    """Ids of running trials that the config's ``early_terminate`` rule would stop now.

    ``[]`` when the config has no ``early_terminate`` (or the stopping package is absent).
    """
    cfg = _config(config)
    if not cfg.get("early_terminate"):
        return []
    try:
        from sweepq import stopping
    except ModuleNotFoundError as exc:
        if exc.name != "sweepq.stopping":
            raise
        return []
    return list(stopping.to_stop(cfg, list(trials)))
