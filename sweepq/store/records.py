"""Trial records as read from Redis: the one parser of a trial hash, and the ``run`` JSON shape.

A trial hash holds strings (and misses the fields its state does not need); readers get the
:class:`sweepq.model.Trial` dict with numbers, ``None`` for absent values and decoded params. The
dashboard reads only ``WEB_FIELDS`` of thousands of trials at a time (``read_trials.lua``), with
``duration`` and ``stop_requested_at`` added; it is the same parse.
"""

from __future__ import annotations

import json
from typing import Any

from sweepq.model import finite_number, stored_number

# The fields the dashboard shows (not log_tail: only a run's detail view needs it)
WEB_FIELDS = (
    "id",
    "sweep",
    "n",
    "state",
    "params",
    "metric",
    "steps",
    "queued_at",
    "started_at",
    "ended_at",
    "worker",
    "exit_code",
    "attempt",
    "reason",
    "gpus",
    "stop",
    "published",
    "queue",
    "stop_requested_at",
    "objectives",
)
# The fields of the ``run`` JSON shape (sweepq runs --json)
RUN_FIELDS = (
    "id",
    "state",
    "params",
    "metric",
    "steps",
    "started_at",
    "ended_at",
    "worker",
    "exit_code",
    "attempt",
    "reason",
    "gpus",
    "objectives",
)


def _params(raw: Any) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    try:
        value = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _objectives(raw: Any) -> dict[str, float | None] | None:
    """A multi-objective trial's summary values by name (None: it logged none, or not that sweep)."""
    if isinstance(raw, dict):
        return raw
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(value, dict):
        return None
    return {str(k): finite_number(v) for k, v in value.items()}


def trial_from_hash(h: dict[str, Any], hist: list[float] | None = None) -> dict[str, Any]:
    """A trial hash (or the fields of one read with HMGET) as a trial dict; ``hist`` the values
    of the sweep metric when they were read too."""
    ec = h.get("exit_code")
    t: dict[str, Any] = {
        "id": h.get("id") or "",
        "sweep": h.get("sweep") or "",
        "n": int(h.get("n") or 0),
        "state": h.get("state") or "",
        "params": _params(h.get("params")),
        "metric": stored_number(h.get("metric")),
        "steps": int(h.get("steps") or 0),
        "queued_at": stored_number(h.get("queued_at")),
        "started_at": stored_number(h.get("started_at")),
        "ended_at": stored_number(h.get("ended_at")),
        "worker": h.get("worker") or None,
        "exit_code": int(ec) if ec not in ("", None, False) else None,
        "attempt": int(h.get("attempt") or 0),
        "reason": h.get("reason") or "",
        "log_tail": h.get("log_tail") or "",
        "stop": h.get("stop") or "",
        "published": h.get("published") == "1",
        "queue": h.get("queue") or "",
        "gpus": h.get("gpus") or "",
        "published_at": stored_number(h.get("published_at")),
        "log_path": h.get("log_path") or "",
        "objectives": _objectives(h.get("objectives")),
    }
    if hist is not None:
        t["history"] = hist
    return t


def web_record(vals: list[Any], params: Any = None) -> dict[str, Any]:
    """A trial from the HMGET values of ``WEB_FIELDS`` (``False`` for a missing field, as the read
    script returns it), with ``stop_requested_at`` and ``duration`` for the dashboard; ``params``
    the decoded params when the caller has them."""
    h = {f: (None if v is False else v) for f, v in zip(WEB_FIELDS, vals, strict=True)}
    if params is not None:
        h["params"] = params
    t = trial_from_hash(h)
    t["stop_requested_at"] = stored_number(h.get("stop_requested_at"))
    s, e = t["started_at"], t["ended_at"]
    t["duration"] = (e - s) if (s is not None and e is not None) else None
    return t


def run_json(t: dict[str, Any], objectives: list[str] | None = None) -> dict[str, Any]:
    """The ``run`` JSON shape (docs/dashboard.md, "JSON shapes"); for a multi-objective sweep
    (``objectives``: its objective names) also ``objectives``, each name's summary value or null.
    ``metric`` stays the first objective's value, so readers of one metric keep working."""
    out = {
        "id": t["id"],
        "state": t["state"],
        "params": t["params"],
        "metric": t["metric"],
        "steps": t["steps"],
        "started_at": t["started_at"],
        "ended_at": t["ended_at"],
        "worker": t["worker"],
        "exit_code": t["exit_code"],
        "attempt": t["attempt"],
        "reason": t["reason"],
        "gpus": t["gpus"],
    }
    if objectives:
        got = t.get("objectives") or {}
        out["objectives"] = {name: got.get(name) for name in objectives}
    return out
