"""Every Redis key sweepq uses, built in one place under ``SWEEPQ_NAMESPACE``.

Several teams (or test runs) can share one Redis: everything sweepq writes, Celery's own queues
included (``celery_prefix``), lives under the namespace prefix, so deleting ``<ns>:*`` removes a
deployment without touching anyone else's data.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

DEFAULT_NAMESPACE = "sweepq"


def namespace_from_env() -> str:
    return os.environ.get("SWEEPQ_NAMESPACE") or DEFAULT_NAMESPACE


@dataclass(frozen=True)
class Keys:
    """Key builder for one namespace."""

    ns: str = DEFAULT_NAMESPACE

    # -- sweeps ---------------------------------------------------------------------------------
    @property
    def sweeps(self) -> str:
        """ZSET of sweep ids scored by creation time (for ``sweepq list``)."""
        return f"{self.ns}:sweeps"

    @property
    def active_sweeps(self) -> str:
        """SET of sweeps the controller still has work for (running, paused, stopping)."""
        return f"{self.ns}:sweeps:active"

    def sweep(self, sid: str) -> str:
        """HASH: id, state, config (JSON), created_at, ... of one sweep."""
        return f"{self.ns}:sweep:{sid}"

    def sweep_trials(self, sid: str) -> str:
        """ZSET of the sweep's trial ids scored by trial number (creation order)."""
        return f"{self.ns}:sweep:{sid}:trials"

    def sweep_counts(self, sid: str) -> str:
        """HASH trial state -> count, kept exact by the Lua transitions."""
        return f"{self.ns}:sweep:{sid}:counts"

    def sweep_inflight(self, sid: str) -> str:
        """SET of the sweep's queued and running trial ids (the controller's hot set)."""
        return f"{self.ns}:sweep:{sid}:inflight"

    # -- trials ---------------------------------------------------------------------------------
    def trial(self, tid: str) -> str:
        """HASH of one trial (state, params JSON, metric, owner, attempt, ...)."""
        return f"{self.ns}:trial:{tid}"

    def trial_history(self, tid: str) -> str:
        """LIST of the values of ``metric.name`` in the order logged (what stopping rules read)."""
        return f"{self.ns}:trial:{tid}:hist"

    def trial_rows(self, tid: str) -> str:
        """LIST of JSON rows as logged (all metric names, capped), for curves."""
        return f"{self.ns}:trial:{tid}:rows"

    def trial_stopq(self, tid: str) -> str:
        """LIST the worker BLPOPs: a push here stops the trial within milliseconds."""
        return f"{self.ns}:trial:{tid}:stopq"

    def trial_output(self, tid: str) -> str:
        """STREAM of the program's output lines while it runs (``sweepq logs --follow`` from any
        machine); capped, and it expires an hour after its last line."""
        return f"{self.ns}:trial:{tid}:out"

    @property
    def leases(self) -> str:
        """ZSET running trial id -> lease expiry (epoch seconds), renewed by heartbeats."""
        return f"{self.ns}:leases"

    # -- coordination ---------------------------------------------------------------------------
    @property
    def events(self) -> str:
        """STREAM of changes (trial state, metrics, sweep commands) that wakes the controller."""
        return f"{self.ns}:events"

    @property
    def leader(self) -> str:
        """STRING holding the token of the controller that currently leads."""
        return f"{self.ns}:controller:leader"

    @property
    def workers(self) -> str:
        """ZSET worker name -> last heartbeat time."""
        return f"{self.ns}:workers"

    def worker(self, name: str) -> str:
        """HASH describing a worker: slots, queues, sweep (for agents), host, pid, gpus."""
        return f"{self.ns}:worker:{name}"

    def agent_count(self, name: str) -> str:
        """Trials started by one ``sweepq agent --count N``."""
        return f"{self.ns}:agent:{name}:started"

    def agent_done(self, name: str) -> str:
        """Trials one ``sweepq agent`` ran to their end (its loop stops at --count)."""
        return f"{self.ns}:agent:{name}:started:done"

    @property
    def suggest_times(self) -> str:
        """LIST of recent suggestion durations (seconds), for the web's /metrics histogram."""
        return f"{self.ns}:stats:suggest_s"

    @property
    def celery_prefix(self) -> str:
        """Prefix kombu puts before every broker key, so Celery queues are namespaced too."""
        return f"{self.ns}:celery:"

    def agent_queue(self, sid: str) -> str:
        """The Celery queue a ``sweepq agent SWEEP_ID`` consumes: only that sweep's trials."""
        return f"sweepq.sweep.{sid}"
