"""The line a training program prints to report to sweepq: ``@sweepq {json object}``.

One definition for both sides: ``sweepq.init``'s run writes these lines, the worker's runner
reads them. Any language can print them; any other line is ordinary output. A row holding
``CONTROL_KEY`` is a message to sweepq, not metrics (``{"_sweepq": {"polls_stop": true}}``: the
script reads ``run.should_stop``, so a stop gives it time to checkpoint).
"""

from __future__ import annotations

import json
from typing import Any

from sweepq.model import finite_number

PREFIX = "@sweepq "
PREFIX_BYTES = PREFIX.encode()
CONTROL_KEY = "_sweepq"
MAX_LINE = 1 << 20  # longer lines are ordinary output, never metrics


def format_row(row: dict[str, Any]) -> str:
    """One report line (with its newline) for a row of metrics or a control message."""
    return PREFIX + json.dumps(row) + "\n"


def control_line(**message: Any) -> str:
    """A control message line, e.g. ``control_line(polls_stop=True)``."""
    return format_row({CONTROL_KEY: message})


def parse_line(raw: bytes) -> dict[str, Any] | None:
    """The JSON object a report line carries, or None (not a report line, or malformed)."""
    if not raw.startswith(PREFIX_BYTES) or len(raw) > MAX_LINE:
        return None
    try:
        obj = json.loads(raw[len(PREFIX_BYTES) :].decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return None
    return obj if isinstance(obj, dict) else None


def metric_values(rows: list[dict[str, Any]], name: str) -> list[float]:
    """Finite numeric values of the sweep metric in rows, in order (NaN, inf, strings, bools
    skipped: they stay in the rows, never in the metric)."""
    out = []
    for row in rows:
        if name in row:
            v = finite_number(row[name])
            if v is not None:
                out.append(v)
    return out


def row_json(row: dict[str, Any]) -> str:
    """A logged row as the store keeps it (JSON, NaN allowed, at most 100,000 characters)."""
    try:
        return json.dumps(row, allow_nan=True, default=str)[:100_000]
    except (TypeError, ValueError):
        return json.dumps({"_unserialisable": True})
