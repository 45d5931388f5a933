"""The line a training program prints to report to sweepq: ``@sweepq {json object}``.

One definition for both sides: ``sweepq.init``'s run writes these lines, the worker's runner
reads them. Any language can print them; any other line is ordinary output. A row holding
``CONTROL_KEY`` is a message to sweepq, not metrics (``{"_sweepq": {"polls_stop": true}}``: the
script reads ``run.should_stop``, so a stop gives it time to checkpoint).
"""

from __future__ import annotations

import json
from typing import Any

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
        obj = json.loads(raw[len(PREFIX_BYTES):].decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return None
    return obj if isinstance(obj, dict) else None
