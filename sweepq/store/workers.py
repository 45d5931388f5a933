"""Workers: the registry the controller sizes queues from, the counters of ``sweepq agent --count``,
and the depth of Celery's queues (kombu's lists under the namespace's prefix)."""

from __future__ import annotations

import json
import os
import time
from typing import Any

from sweepq.store.base import StoreBase


class WorkersPart(StoreBase):
    """Live workers and their queues."""

    def register_worker(
        self, name: str, slots: int, queues: list[str], sweep: str = "", gpus: str = "", ttl: float = 30.0
    ) -> None:
        k = self.keys
        p = self._r.pipeline()
        p.hset(
            k.worker(name),
            mapping={
                "name": name,
                "slots": slots,
                "queues": json.dumps(queues),
                "sweep": sweep,
                "gpus": gpus,
                "host": os.uname().nodename,
                "pid": os.getpid(),
                "started_at": time.time(),
            },
        )
        p.expire(k.worker(name), int(ttl * 4))
        p.zadd(k.workers, {name: time.time()})
        p.execute()

    def worker_heartbeat(self, name: str, ttl: float = 30.0) -> None:
        p = self._r.pipeline()
        p.zadd(self.keys.workers, {name: time.time()})
        p.expire(self.keys.worker(name), int(ttl * 4))
        p.execute()

    def unregister_worker(self, name: str) -> None:
        p = self._r.pipeline()
        p.zrem(self.keys.workers, name)
        p.delete(self.keys.worker(name))
        p.execute()

    def alive_workers(self, ttl: float = 30.0) -> list[dict[str, Any]]:
        k = self.keys
        now = time.time()
        self._r.zremrangebyscore(k.workers, "-inf", now - ttl * 4)
        names = self._r.zrangebyscore(k.workers, now - ttl, "+inf")
        if not names:
            return []
        p = self._r.pipeline(transaction=False)
        for n in names:
            p.hgetall(k.worker(n))
        out = []
        for h in p.execute():
            if h:
                h["slots"] = int(h.get("slots") or 1)
                h["queues"] = json.loads(h.get("queues") or "[]")
                out.append(h)
        return out

    def worker_registered(self, name: str) -> bool:
        return bool(self._r.exists(self.keys.worker(name)))

    # -- sweepq agent --count N: trials started across the agent's pool processes ---------------
    def agent_take(self, agent: str, count: int) -> bool:
        """Count one more trial for the agent; False (and nothing counted) past ``count``."""
        key = self.keys.agent_count(agent)
        if self._r.incr(key) > count:
            self._r.decr(key)
            return False
        return True

    def agent_untake(self, agent: str) -> None:
        """A counted trial that did not run after all (its claim failed)."""
        self._r.decr(self.keys.agent_count(agent))

    def agent_done(self, agent: str) -> None:
        self._r.incr(self.keys.agent_done(agent))

    def agent_done_count(self, agent: str) -> int:
        return int(self._r.get(self.keys.agent_done(agent)) or 0)

    def forget_agent(self, agent: str) -> None:
        """An agent that stopped: its counters and its registry entry go."""
        p = self._r.pipeline()
        p.delete(self.keys.agent_count(agent), self.keys.agent_done(agent))
        p.zrem(self.keys.workers, agent)
        p.delete(self.keys.worker(agent))
        p.execute()

    # -- Celery's own records ---------------------------------------------------------------
    def queue_depths(self, queues: list[str]) -> dict[str, int]:
        """Messages waiting in each Celery queue: LLEN of ``<ns>:celery:<queue>`` (kombu's Redis
        transport keeps one list per queue, plus one per priority step, summed here)."""
        sep = "\x06\x16"
        p = self._r.pipeline(transaction=False)
        for q in queues:
            base = self.keys.celery_prefix + q
            p.llen(base)
            for pri in (3, 6, 9):
                p.llen(f"{base}{sep}{pri}")
        res = p.execute()
        return {q: int(sum(res[i * 4 : (i + 1) * 4])) for i, q in enumerate(queues)}

    def unacked_messages(self) -> int:
        """Celery messages delivered to a worker and not yet acknowledged."""
        return int(self._r.hlen(self.keys.celery_prefix + "unacked"))
