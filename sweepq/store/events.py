"""Coordination: the change stream, the controller's leader lease, and what the server itself
says (up time, memory)."""

from __future__ import annotations

from typing import Any

from sweepq.store.base import StoreBase


class EventsPart(StoreBase):
    """Events, leadership and the server's health."""

    def acquire_leader(self, token: str, ttl_ms: int) -> bool:
        if self._r.set(self.keys.leader, token, nx=True, px=ttl_ms):
            return True
        return bool(self._script("renew_leader")(keys=[self.keys.leader], args=[token, ttl_ms]))

    def release_leader(self, token: str) -> None:
        self._script("release_leader")(keys=[self.keys.leader], args=[token])

    def last_event_id(self) -> str:
        info = self._r.xrevrange(self.keys.events, count=1)
        return info[0][0] if info else "0-0"

    def wait_events(self, last_id: str, timeout: float) -> tuple[str, list[dict[str, str]]]:
        """Block up to ``timeout`` for events after ``last_id``; returns (new_last_id, events)."""
        res = self._r.xread({self.keys.events: last_id}, block=max(1, int(timeout * 1000)), count=1000)
        if not res:
            return last_id, []
        entries = res[0][1]
        return entries[-1][0], [fields for _, fields in entries]

    def delete_namespace(self) -> int:
        """Delete every key of this namespace (tests, ``sweepq`` resets)."""
        n = 0
        for key in self._r.scan_iter(match=f"{self.ns}:*", count=1000):
            n += self._r.delete(key)
        return n

    def leader_held(self) -> bool:
        """Some controller holds the leader lease (the compose healthcheck asks)."""
        return bool(self._r.exists(self.keys.leader))

    def ping(self) -> bool:
        return bool(self._r.ping())

    def redis_uptime(self) -> float:
        """Seconds the server has been up (a large number for servers without INFO: fakeredis)."""
        try:
            return float(self._r.info("server").get("uptime_in_seconds", 1e9))
        except Exception:
            return 1e9

    def record_suggest_times(self, limit: int = 1000) -> list[float]:
        """The last suggestion durations the controllers recorded (for /metrics)."""
        out = []
        for raw in self._r.lrange(self.keys.suggest_times, -limit, -1):
            try:
                out.append(float(raw))
            except ValueError:
                continue
        return out

    def events_since(self, last_id: str) -> tuple[list[Any], list[Any]]:
        """(the oldest entry of the stream, the entries after ``last_id``) in one round trip."""
        p = self._r.pipeline(transaction=False)
        p.xrange(self.keys.events, "-", "+", count=1)
        p.xread({self.keys.events: last_id}, count=50_000)
        oldest, new = p.execute()
        return oldest, (new[0][1] if new else [])
