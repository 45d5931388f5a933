"""All of sweepq's state in Redis: sweeps, trials, metric histories, leases, workers, events.

Why a store layer: the controller, the workers, the CLI and the web all read and write the same
records; every state change that more than one process can race on is one Lua script (``lua/``),
so two controllers or two deliveries of one Celery message can never corrupt a trial. Values are
JSON or plain strings, never pickle. This package is the only code that talks to Redis: the
client is private, everything above asks the store by name.

Trial life cycle (each arrow one atomic script)::

    create -> queued --claim--> running --finish--> finished | failed | stopped | canceled
                 ^                 |
                 +---- reap -------+  (lease expired, retries left; else -> crashed)
                 +---- release ----+  (a worker shutting down or fenced hands the trial back)

A final state never changes again: every script checks the current state (and, for the worker's
writes, that the caller still owns the trial: fencing by owner token).

The parts, one concept each: ``keys`` (every key name), ``connection`` (clients and errors),
``scripts`` and ``lua/`` (the atomic transitions), ``records`` (the one trial parser),
``sweeps``, ``trials``, ``leases``, ``workers``, ``events``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sweepq.errors import BadRedisURL, Conflict, NotFound, Unavailable
from sweepq.store.connection import (
    DEFAULT_REDIS_URL,
    OUT_OF_MEMORY,
    SOCKET_TIMEOUT,
    answers,
    client_url,
    probe,
    redact,
    redis_url_from_env,
    unavailable,
)
from sweepq.store.events import EventsPart
from sweepq.store.keys import Keys, namespace_from_env
from sweepq.store.leases import EXITED, Claim, LeasesPart
from sweepq.store.limits import EVENTS_MAXLEN, HISTORY_CAP, OUTPUT_CAP, OUTPUT_TTL, ROWS_CAP
from sweepq.store.records import run_json, trial_from_hash
from sweepq.store.sweeps import SweepsPart
from sweepq.store.trials import TrialsPart
from sweepq.store.workers import WorkersPart

# The store's errors are sweepq's (sweepq.errors): each carries its exit code and HTTP status.
StoreError = Conflict  # a request the store refuses: an impossible state change, an id taken
StoreUnavailable = Unavailable

__all__ = [
    "BadRedisURL",
    "Claim",
    "DEFAULT_REDIS_URL",
    "EVENTS_MAXLEN",
    "EXITED",
    "HISTORY_CAP",
    "Keys",
    "NotFound",
    "OUTPUT_CAP",
    "OUTPUT_TTL",
    "OUT_OF_MEMORY",
    "ROWS_CAP",
    "SOCKET_TIMEOUT",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "answers",
    "client_url",
    "namespace_from_env",
    "probe",
    "redact",
    "redis_url_from_env",
    "run_json",
    "trial_from_hash",
    "unavailable",
]


class Store(SweepsPart, LeasesPart, TrialsPart, WorkersPart, EventsPart):
    """Typed access to sweepq's Redis records. Cheap to create (no I/O until first used); share
    one per process. ``Store(client=...)`` wraps a given client (fakeredis in unit tests)."""

    run_json = staticmethod(run_json)

    def pass_snapshot(
        self, sids: list[str], leases: bool = False, trials: Sequence[str] = (), history: bool = True
    ) -> tuple[
        list[str], dict[str, tuple[dict[str, Any] | None, set[str]]], list[str], dict[str, dict[str, Any]]
    ]:
        """What one controller pass reads, in one round trip: the active sweeps, the head and the
        in-flight ids of each sweep in ``sids`` (None head: the sweep is gone), the expired leases
        if asked, and the records of ``trials`` (those the pass knows it must look at)."""
        k = self.keys
        p = self._pipeline()
        p.smembers(k.active_sweeps)
        for sid in sids:
            p.hmget(k.sweep(sid), self._HEAD)
            p.smembers(k.sweep_inflight(sid))
        if leases:
            self._run("expired", [k.leases], [], client=p)
        self._read_trials(p, list(trials), history)
        res = self._execute(p)
        heads = {sid: (self._head(res[1 + 2 * i]), set(res[2 + 2 * i])) for i, sid in enumerate(sids)}
        at = 1 + 2 * len(sids)
        expired = list(res[at]) if leases else []
        at += 1 if leases else 0
        return sorted(res[0]), heads, expired, self._parse_trials(res, at, list(trials), history)
