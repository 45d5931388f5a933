"""The reaper: which expired leases the controller may judge now, and the one-line story of a
full Redis for the sweeps that went through it.

A lease is judged only when its worker could have renewed it: not while Redis is out of memory
(workers' renewals are refused then, and they keep their trials running), nor within two of its
TTLs after Redis was last seen full or restarted (right after a restart every lease looks expired,
though the workers are healthy and only waiting to reconnect), nor within one TTL of this
controller becoming the leader (it may have taken over because Redis was unreachable).
"""

from __future__ import annotations

import contextlib
import logging
import time

from sweepq.store import NotFound, Store

log = logging.getLogger("sweepq.controller")


class Reaper:
    """When leases may be judged; the controller asks :meth:`judgeable` each reaping pass."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.led_since = 0.0  # when this controller last became the leader (monotonic)
        # Redis out of memory: when it was last seen full (monotonic), and since when (wall clock)
        # for the warning the sweeps get once it is over
        self.oom_seen = -1e9
        self.oom_since: float | None = None
        self._uptime = 0.0
        self._uptime_at = -1e9

    def redis_uptime(self) -> float:
        """Seconds Redis has been up (asked at most every 5 s, counted on in between)."""
        now = time.monotonic()
        if now - self._uptime_at > 5.0:
            try:
                self._uptime = self.store.redis_uptime()
            except Exception:
                self._uptime = 1e9  # servers without INFO (fakeredis): nothing to wait for
            self._uptime_at = now
        return self._uptime + (now - self._uptime_at)

    def judgeable(self, expired: list[str]) -> list[str]:
        """The expired leases that may be judged now (see the module docstring)."""
        if not expired:
            return []
        if self.store.memory_full(max_age=0.5):
            self.note_oom()
            return []
        up = self.redis_uptime()
        now = time.monotonic()
        out = []
        for tid in expired:
            ttl = self.store.lease_ttl(tid, default=30.0)
            if up <= 2.0 * ttl or now - self.oom_seen <= 2.0 * ttl or now - self.led_since <= ttl:
                continue
            out.append(tid)
        return out

    def note_oom(self) -> None:
        self.oom_seen = time.monotonic()
        if self.oom_since is None:
            self.oom_since = time.time()
            log.warning(
                "Redis is out of memory: writes are refused; trials keep running and their "
                "results are retried; no lease is reaped until two lease TTLs after it recovers"
            )

    def after_oom(self, active: list[str]) -> None:
        """Once Redis accepts writes again, every active sweep says it went through a full Redis."""
        if self.oom_since is None or self.store.memory_full():
            return
        since, self.oom_since = self.oom_since, None
        lasted = time.time() - since
        note = (
            f"Redis was out of memory for about {lasted:.0f} s from "
            f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(since))}: writes were refused and "
            "retried, no trial was re-run for it"
        )
        for sid in active:
            with contextlib.suppress(NotFound):
                warnings = self.store.get_sweep(sid).get("warnings") or []
                self.store.set_sweep_fields(sid, warnings=[*warnings, note])
