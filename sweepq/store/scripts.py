"""The store's Lua scripts: one ``.lua`` file each under ``lua/``, with ``lua/lib.lua`` (constants,
Redis's clock, the event stream, metric appends) prepended.

Every state change more than one process can race on is one of these scripts, so it is atomic.
On servers that read script flags (Redis >= 7, Valkey) each writing script starts with a
``#!lua`` line: a script so marked is refused whole, before it starts, when Redis is out of
memory. Without the line Redis judges a script by its first write: one whose first write frees
memory (reap's ZREM of the lease) would then run whole past ``maxmemory`` and requeue a trial into
a full Redis. Reading scripts say ``no-writes``, so they run on a full Redis. Older servers and
fakeredis run them without the line (there the controller's reaper holds back while Redis
reports itself full, :mod:`sweepq.controller.reaper`).
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import redis

from sweepq.store.limits import EVENTS_MAXLEN, HISTORY_CAP

WRITE = "#!lua\n"
READ_ONLY = "#!lua flags=no-writes\n"
NAMES = (
    "create_sweep",
    "create_trials",
    "claim",
    "heartbeat",
    "metrics",
    "finish",
    "reap",
    "release",
    "sweep_action",
    "finish_sweep",
    "request_stop",
    "unpublish",
    "renew_leader",
    "release_leader",
    "expired",
    "read_trials",
)
READ_SCRIPTS = frozenset({"expired", "read_trials"})  # may run while Redis is out of memory


@cache
def source(name: str) -> str:
    """The script's text as Redis gets it (without the flags line)."""
    folder = resources.files("sweepq.store") / "lua"
    lib = (folder / "lib.lua").read_text().replace("@EVENTS_MAXLEN@", str(EVENTS_MAXLEN))
    lib = lib.replace("@HISTORY_CAP@", str(HISTORY_CAP))
    return lib + "\n" + (folder / f"{name}.lua").read_text()


def register(client: redis.Redis) -> dict[str, Any]:
    """Every script registered on ``client`` (``redis.commands.core.Script`` objects, which load
    themselves on first use and work in pipelines), flagged where the server reads flags."""
    try:
        client.eval(READ_ONLY + "return 1", 0)
        write, read = WRITE, READ_ONLY
    except redis.exceptions.ResponseError:  # no script flags: Redis < 7, fakeredis
        write = read = ""
    return {n: client.register_script((read if n in READ_SCRIPTS else write) + source(n)) for n in NAMES}
