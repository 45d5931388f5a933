"""sweepq: self-hosted, W&B-compatible hyperparameter sweeps on Celery and Redis.

The training-script API (``sweepq.init``, ``sweepq.sweep``, ``sweepq.agent``) is re-exported here
lazily so that ``import sweepq`` stays cheap inside a trial process.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["init", "sweep", "agent", "__version__"]


def init(config: dict[str, Any] | None = None, **kwargs: Any) -> Any:
    """Start a run inside a sweep trial, or standalone (see ``sweepq.client.init``)."""
    from sweepq.client import init as _init

    return _init(config=config, **kwargs)


def sweep(config: Any, **kwargs: Any) -> str:
    """Register a sweep and return its id (see ``sweepq.client.sweep``)."""
    from sweepq.client import sweep as _sweep

    return _sweep(config, **kwargs)


def agent(sweep_id: str, function: Any = None, count: int | None = None, **kwargs: Any) -> None:
    """Run trials of a sweep in this process (see ``sweepq.client.agent``)."""
    from sweepq.client import agent as _agent

    return _agent(sweep_id, function=function, count=count, **kwargs)
