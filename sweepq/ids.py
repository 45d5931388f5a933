"""What a sweep id and a run id look like, checked wherever one arrives from outside.

sweepq makes sweep ids of 8 lowercase letters and digits (``store._new_id``) and run ids
``<sweep id>-<n>`` (``LUA_CREATE``). Ids are spliced into Redis key names
(``<ns>:sweep:<id>``), so an id from a command line or a URL that sweepq could not have made is
refused before it gets there: no ``:`` to reach another key, no ``*`` to match many, no
whitespace, no 10 MB string. The sweep pattern allows any length up to 64 so that ids chosen by a
caller of ``Store.create_sweep(config, sweep_id)`` (tests, tools) still pass.
"""

from __future__ import annotations

import re

__all__ = ["RUN_ID_RE", "SWEEP_ID_RE", "is_run_id", "is_sweep_id", "shown"]

SWEEP_ID_RE = re.compile(r"[a-z0-9]{1,64}")
RUN_ID_RE = re.compile(r"[a-z0-9]{1,64}-[0-9]{1,18}")


def is_sweep_id(text: object) -> bool:
    """True when ``text`` could be a sweep id (it may still name no sweep)."""
    return isinstance(text, str) and SWEEP_ID_RE.fullmatch(text) is not None


def is_run_id(text: object) -> bool:
    """True when ``text`` could be a run id, ``<sweep id>-<n>`` (it may still name no run)."""
    return isinstance(text, str) and RUN_ID_RE.fullmatch(text) is not None


def shown(text: object, limit: int = 80) -> str:
    """A value from outside as one short printable quoted string, for a one-line error."""
    text = "".join(ch if ch.isprintable() else "?" for ch in str(text))
    return repr(text if len(text) <= limit else text[:limit] + "...")
