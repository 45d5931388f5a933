"""sweepq: self-hosted, W&B-compatible hyperparameter sweeps on Celery and Redis.

The training-script API is re-exported here lazily so that ``import sweepq`` stays cheap inside a
trial process. It covers the common part of W&B's, so a script written for W&B runs with
``import sweepq as wandb``: ``init``, ``log``, ``finish``, ``sweep``, ``agent``, and the
attributes ``run`` (the current run, None before ``init`` and after ``finish``), ``config`` and
``summary`` (the current run's). ``login``, ``watch`` and ``define_metric`` are accepted and do
nothing (docs/wandb.md).

``run``, ``config`` and ``summary`` follow the current run, so they are properties of this
module's class rather than names bound once (PEP 562's module ``__getattr__`` would not do for
``config``: the submodule ``sweepq.config`` binds that name on the package when it is imported,
and a bound name wins over ``__getattr__``). The import system's binding of the submodule goes
through the property's setter; without a current run ``sweepq.config`` is that submodule, so
``sweepq.config.load_config`` and the like still mean what they did.
"""

from __future__ import annotations

import sys
import types
from typing import Any

__version__ = "0.1.0"

# run, config and summary are left out: a star import would copy them once, before any run
__all__ = ["init", "log", "finish", "sweep", "agent", "login", "watch", "define_metric", "__version__"]


def init(config: Any = None, **kwargs: Any) -> Any:
    """Start a run inside a sweep trial, or standalone (see ``sweepq.client.init``)."""
    from sweepq.client import init as _init

    return _init(config=config, **kwargs)


def log(data: dict[str, Any], step: int | None = None, commit: bool | None = None, **kwargs: Any) -> None:
    """Log metrics on the current run (see ``sweepq.client.log``)."""
    from sweepq.client import log as _log

    _log(data, step=step, commit=commit, **kwargs)


def finish(exit_code: int | None = None, quiet: bool | None = None) -> None:
    """End the current run (see ``sweepq.client.finish``)."""
    from sweepq.client import finish as _finish

    _finish(exit_code=exit_code, quiet=quiet)


def sweep(config: Any, **kwargs: Any) -> str:
    """Register a sweep and return its id (see ``sweepq.client.sweep``)."""
    from sweepq.client import sweep as _sweep

    return _sweep(config, **kwargs)


def agent(sweep_id: str, function: Any = None, count: int | None = None, **kwargs: Any) -> None:
    """Run trials of a sweep in this process (see ``sweepq.client.agent``)."""
    from sweepq.client import agent as _agent

    return _agent(sweep_id, function=function, count=count, **kwargs)


def login(*args: Any, **kwargs: Any) -> bool:  # noqa: ARG001
    """W&B's ``login``: nothing to log in to (sweepq is self-hosted)."""
    return True


def watch(*args: Any, **kwargs: Any) -> None:  # noqa: ARG001
    """W&B's ``watch(model)`` (gradient histograms): accepted, does nothing."""


def define_metric(*args: Any, **kwargs: Any) -> None:  # noqa: ARG001
    """W&B's ``define_metric``: accepted, does nothing (sweepq's step is each row's ``_step``)."""


class _NoRun:
    """What ``sweepq.summary`` is before ``init``: any use says to call ``init`` first."""

    def __init__(self, name: str) -> None:
        self._name = name

    def _fail(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"call sweepq.init() before using sweepq.{self._name}")

    __getitem__ = __setitem__ = __contains__ = __iter__ = __len__ = update = get = _fail

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return self._fail()

    def __repr__(self) -> str:
        return f"<sweepq.{self._name}: no run; call sweepq.init() first>"


class _Package(types.ModuleType):
    """The ``sweepq`` module, with the attributes that follow the current run."""

    @property
    def run(self) -> Any:
        """The current run (``sweepq.init``'s), or None."""
        client = sys.modules.get("sweepq.client")
        return None if client is None else client._current

    @property
    def config(self) -> Any:
        """The current run's config; without one, the ``sweepq.config`` submodule."""
        current = self.run
        if current is not None:
            return current.config
        module = self.__dict__.get("_config_module")
        if module is None:
            import importlib

            module = importlib.import_module("sweepq.config")
        return module

    @config.setter
    def config(self, value: Any) -> None:
        # the import system binding the submodule sweepq.config on the package
        self.__dict__["_config_module"] = value

    @property
    def summary(self) -> Any:
        """The current run's summary (a dict: ``sweepq.summary["best"] = v``)."""
        current = self.run
        return _NoRun("summary") if current is None else current.summary


sys.modules[__name__].__class__ = _Package
