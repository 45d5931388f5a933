"""What a training script imports: ``run = sweepq.init(config=defaults)``, ``run.log``, ``run.finish``.

Inside a sweep trial (the worker sets ``SWEEPQ_RUN_ID`` and ``SWEEPQ_PARAMS``) the trial's
parameters override the defaults and every ``run.log`` prints one ``@sweepq {json}`` line to
stdout; the worker parses those lines and stores them. No Redis connection is needed in the
training process, so a Redis outage never touches it, and any language can report metrics by
printing the same line. Outside a sweep the same script runs standalone: the defaults are used
and ``log`` keeps the values in ``run.summary`` and ``run.history``.

``sweepq.sweep(config)`` and ``sweepq.agent(sweep_id, function=train, count=N)`` mirror
``wandb.sweep``/``wandb.agent`` for trials that run as Python functions in this process.
"""

from __future__ import annotations

import copy
import json
import math
import os
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from sweepq.protocol import control_line, format_row


class Config(dict):
    """The trial's parameters over the script's defaults; ``config.lr`` and ``config["lr"]``.

    Inside a sweep the trial's own parameters are locked, as W&B locks a sweep's values: neither
    the script's defaults nor ``config.update(...)``, ``config.x = v`` or ``config["x"] = v``
    replace them (such a change is ignored, with a warning on stderr), so the values the script
    runs with are the ones sweepq records for the trial. Other keys change freely."""

    _locked: frozenset[str] = frozenset()

    def __getattr__(self, name: str) -> Any:
        try:
            value = self[name]
        except KeyError as exc:
            raise AttributeError(name) from exc
        return Config(value) if isinstance(value, dict) and not isinstance(value, Config) else value

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def __setitem__(self, key: str, value: Any) -> None:
        if key in self._locked:
            try:
                same = bool(value == self.get(key))
            except Exception:  # arrays and other values without a plain truth
                same = False
            if not same:
                print(
                    f"sweepq: config item {key!r} is set by the sweep; ignored the change to {value!r}",
                    file=sys.stderr,
                    flush=True,
                )
            return
        super().__setitem__(key, value)

    def __reduce__(self) -> tuple[Any, ...]:
        # copy, deepcopy and pickle rebuild it from a plain dict (not item by item, which the
        # lock would refuse), then restore the lock
        return (type(self), (dict(self),), {"_locked": self._locked})

    def update(self, other: Any = (), /, allow_val_change: bool | None = None, **kwargs: Any) -> None:  # noqa: ARG002
        """``config.update(d)`` as in W&B: ``d`` a mapping, an ``argparse.Namespace`` or pairs;
        ``allow_val_change`` is accepted (values may always change here, except the sweep's)."""
        for k, v in {**_as_dict(other), **kwargs}.items():
            self[k] = v

    def update_defaults(self, defaults: dict[str, Any]) -> None:
        for k, v in defaults.items():
            self.setdefault(k, v)

    def setdefaults(self, defaults: Any) -> None:
        """W&B's name: set the keys not set yet."""
        self.update_defaults(_as_dict(defaults))


def _as_dict(config: Any) -> dict[str, Any]:
    """What ``wandb.init(config=...)`` and ``config.update`` accept: a mapping, a path to a YAML
    file, an object with attributes (``argparse.Namespace``, a simple class), or key-value pairs."""
    if config is None:
        return {}
    if isinstance(config, Mapping):
        return dict(config)
    if isinstance(config, (str, os.PathLike)):
        import yaml

        with open(config, encoding="utf-8") as f:
            loaded = yaml.safe_load(f) or {}
        if not isinstance(loaded, dict):
            raise TypeError(f"config file {os.fspath(config)!r} does not hold a mapping")
        return loaded
    if hasattr(config, "__dict__") and not isinstance(config, type):
        return {k: v for k, v in vars(config).items() if not k.startswith("_")}
    return dict(config)


def _jsonable(v: Any) -> Any:
    """Numbers as JSON numbers (NaN/inf as strings, which the worker ignores), numpy scalars too."""
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return v
    if isinstance(v, int):
        return v
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    return f if math.isfinite(f) else str(f)


class Run:
    """One trial as seen from the training script."""

    def __init__(
        self,
        config: Config,
        run_id: str | None,
        sweep_id: str | None,
        sink: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.config = config
        self.id = run_id
        self.sweep_id = sweep_id
        self.summary: dict[str, Any] = {}
        self.history: list[dict[str, Any]] = []
        self._sink = sink
        self._step = 0
        self._finished = False
        self._stop_file = os.environ.get("SWEEPQ_STOP_FILE") if run_id else None
        self._polls_announced = False
        self._stop_event: threading.Event | None = None
        self._partial: dict[str, Any] = {}  # rows logged with commit=False, sent with the next one

    @property
    def in_sweep(self) -> bool:
        return self.id is not None

    @property
    def name(self) -> str:
        """W&B's run name: here the run id (``standalone`` outside a sweep)."""
        return self.id or "standalone"

    def log(self, data: dict[str, Any], step: int | None = None, commit: bool | None = None) -> None:
        """Record metrics; inside a sweep they reach the controller within a second.

        ``commit=False`` (W&B's) adds ``data`` to the row being built; the next ``log`` without
        it (or ``finish``) sends that row as one step."""
        if not isinstance(data, dict):
            raise TypeError("run.log expects a dict of metric name -> value")
        row = {str(k): _jsonable(v) for k, v in data.items()}
        if commit is False:
            self._partial.update(row)
            return
        if self._partial:
            row, self._partial = {**self._partial, **row}, {}
        if step is not None:
            self._step = int(step)
        row.setdefault("_step", self._step)
        self._step += 1
        self.history.append(row)
        self.summary.update({k: v for k, v in row.items() if not k.startswith("_")})
        if self._sink is not None:
            self._sink(row)
        elif self.in_sweep:
            out = sys.__stdout__ or sys.stdout
            out.write(format_row(row))
            out.flush()

    @property
    def should_stop(self) -> bool:
        """True once sweepq asked this trial to stop (early termination, stop, cancel, timeout).

        A script that checks it gets half the sweep's ``stop_grace`` to save a checkpoint and exit
        (exit 0: the trial ends ``stopped`` with all it logged) before SIGTERM: the first read
        tells the worker that this script polls (one ``@sweepq {"_sweepq": ...}`` line), and a
        script that never reads it gets SIGTERM at once."""
        if self._stop_event is not None and self._stop_event.is_set():
            return True
        if not self._stop_file:
            return False
        if not self._polls_announced and self._sink is None:
            self._polls_announced = True
            out = sys.__stdout__ or sys.stdout
            out.write(control_line(polls_stop=True))
            out.flush()
        return Path(self._stop_file).exists()

    def finish(self) -> None:
        if self._partial:  # a row logged with commit=False and never committed
            self.log({})
        self._finished = True
        global _current
        if _current is self:
            _current = None

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.finish()


_current: Run | None = None
_inprocess = threading.local()


def init(config: Any = None, **_: Any) -> Run:
    """Start the run: the sweep's parameters (if any) over ``config`` defaults.

    As ``wandb.init``: ``config`` is a mapping, an ``argparse.Namespace`` (or any object with
    attributes) or the path of a YAML file; W&B's other arguments (``project``, ``entity``,
    ``name``, ``tags``, ``reinit``, ``mode``...) are accepted and ignored. Nested groups from the
    sweep replace the whole default subtree, as W&B's documentation states, and the sweep's values
    are locked (see :class:`Config`).
    """
    global _current
    ctx = getattr(_inprocess, "ctx", None)
    if ctx is not None:
        params, run_id, sweep_id, sink, stop_event = ctx
    else:
        run_id = os.environ.get("SWEEPQ_RUN_ID") or None
        sweep_id = os.environ.get("SWEEPQ_SWEEP_ID") or None
        params, sink, stop_event = {}, None, None
        raw = os.environ.get("SWEEPQ_PARAMS")
        if run_id and raw:
            try:
                loaded = json.loads(raw)
                params = loaded if isinstance(loaded, dict) else {}
            except ValueError:
                params = {}
    cfg = Config(copy.deepcopy(params))
    cfg.update_defaults(copy.deepcopy(_as_dict(config)))
    object.__setattr__(cfg, "_locked", frozenset(params))
    run = Run(cfg, run_id, sweep_id, sink=sink)
    run._stop_event = stop_event
    _current = run
    return run


def log(data: dict[str, Any], step: int | None = None, commit: bool | None = None, **_: Any) -> None:
    """``sweepq.log(...)`` on the current run (starting one if needed), as ``wandb.log``."""
    (_current or init()).log(data, step=step, commit=commit)


def finish(exit_code: int | None = None, quiet: bool | None = None) -> None:  # noqa: ARG001
    """End the current run, as ``wandb.finish()``. The trial itself ends when the program exits,
    and its exit code decides how (``exit_code`` is accepted and ignored)."""
    if _current is not None:
        _current.finish()


# -- in-process sweeps ----------------------------------------------------------------------------
def sweep(config: Any, **_: Any) -> str:
    """Register a sweep from a dict, YAML text or path; returns its id.

    A dict is checked in full even if ``load_config`` made it: it may have been changed since,
    and what enters the store is run by every worker."""
    from sweepq.config import load_config
    from sweepq.store import Store

    return Store().create_sweep(load_config(dict(config) if isinstance(config, Mapping) else config))


def agent(
    sweep_id: str,
    function: Callable[[], Any] | None = None,
    count: int | None = None,
    *,
    store: Any = None,
    controller: bool = True,
    poll: float = 0.1,
) -> None:
    """Run trials of ``sweep_id`` as calls of ``function`` in this process, like ``wandb.agent``
    (each call sees its own ``run.config`` through ``sweepq.init()``; ``sweepq.agent``'s
    ``FunctionTrial``); without ``function``, a Celery worker bound to the sweep runs them as
    programs (``sweepq agent SWEEP_ID``)."""
    from sweepq.agents import run_agent, run_functions
    from sweepq.ids import is_sweep_id, shown

    if not is_sweep_id(sweep_id):
        raise ValueError(f"not a sweep id: {shown(sweep_id)}")
    if function is None:
        from sweepq.store import Store

        run_agent(store or Store(), sweep_id, count=count, controller=controller)
        return
    run_functions(sweep_id, function, count, store=store, controller=controller, poll=poll)


def enter_trial(
    params: dict[str, Any],
    run_id: str,
    sweep_id: str,
    sink: Callable[[dict[str, Any]], None],
    stop_event: threading.Event,
) -> None:
    """In this thread, ``sweepq.init()`` now starts the given trial (an in-process agent's call):
    its parameters, rows to ``sink``, ``should_stop`` from ``stop_event``."""
    _inprocess.ctx = (params, run_id, sweep_id, sink, stop_event)


def leave_trial() -> None:
    global _current
    _inprocess.ctx = None
    _current = None
