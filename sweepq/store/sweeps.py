"""Sweeps: created whole, their configs, states, counts and best trial; what a controller pass
reads in one round trip."""

from __future__ import annotations

import json
import secrets
import string
import time
from typing import Any

import redis

from sweepq import pareto
from sweepq.errors import Conflict, NotFound
from sweepq.ids import is_sweep_id, shown
from sweepq.model import TRIAL_STATES, is_multi_objective, objectives, primary_metric, stored_number
from sweepq.store.base import StoreBase
from sweepq.store.connection import OUT_OF_MEMORY


def new_id(n: int = 8) -> str:
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(n))


class SweepsPart(StoreBase):
    """The sweeps of a namespace."""

    _health: tuple[float, str | None] = (-1e9, None)
    _HEAD = ("state", "best_value", "best_id", "warnings", "end_reason")

    def create_sweep(self, config: dict[str, Any], sweep_id: str | None = None) -> str:
        """Register a normalised config as a new running sweep; returns its id."""
        k = self.keys
        sid = sweep_id or new_id()
        if not is_sweep_id(sid):  # ids are spliced into key names: only ones sweepq could make
            raise Conflict(f"not a sweep id: {shown(sid)} (1-64 lowercase letters and digits)")
        metric = primary_metric(config)
        now = time.time()
        fields = {
            "id": sid,
            "state": "running",
            "config": json.dumps(config),
            "method": config.get("method", ""),
            "metric_name": metric.get("name", ""),
            "goal": metric.get("goal", "minimize"),
            "name": str(config.get("name") or ""),
            "created_at": now,
            "next_trial": 0,
        }
        if is_multi_objective(config):
            fields["objectives"] = json.dumps(
                [{"name": o["name"], "goal": o["goal"]} for o in objectives(config)]
            )
        flat = [str(x) for kv in fields.items() for x in kv]
        if not self._script("create_sweep")(
            keys=[k.sweep(sid), k.sweeps, k.active_sweeps, k.events], args=[sid, now, *flat]
        ):
            raise Conflict(f"sweep {sid} already exists")
        return sid

    def sweep_exists(self, sid: str) -> bool:
        return bool(self._r.exists(self.keys.sweep(sid)))

    def get_sweep(self, sid: str) -> dict[str, Any]:
        h = self._r.hgetall(self.keys.sweep(sid))
        if not h:
            raise NotFound(f"unknown sweep {sid!r}")
        h["config"] = json.loads(h.get("config") or "{}")
        h["warnings"] = json.loads(h.get("warnings") or "[]")
        return h

    def _head(self, vals: list[Any]) -> dict[str, Any] | None:
        """The sweep's changing fields without its config (``_HEAD``), None for a missing sweep."""
        if vals[0] is None:
            return None
        head = dict(zip(self._HEAD, vals, strict=True))
        head["warnings"] = json.loads(head["warnings"] or "[]")
        return head

    def sweep_config(self, sid: str) -> dict[str, Any]:
        raw = self._r.hget(self.keys.sweep(sid), "config")
        if raw is None:
            raise NotFound(f"unknown sweep {sid!r}")
        return json.loads(raw)

    def sweep_state(self, sid: str) -> str | None:
        return self._r.hget(self.keys.sweep(sid), "state")

    def list_sweeps(self) -> list[str]:
        return list(self._r.zrange(self.keys.sweeps, 0, -1))

    def active_sweeps(self) -> list[str]:
        return sorted(self._r.smembers(self.keys.active_sweeps))

    def forget_active(self, sid: str) -> None:
        """Take a sweep whose record is gone off the active set."""
        self._r.srem(self.keys.active_sweeps, sid)

    def sweep_action(self, sid: str, action: str, reason: str = "") -> str:
        """pause | resume | stop | cancel | fail (with ``reason``: the sweep ends ``failed``, its
        queued trials canceled and its running ones killed); returns the new state or raises
        StoreError."""
        k = self.keys
        res = self._script("sweep_action")(
            keys=[k.sweep(sid), k.sweep_counts(sid), k.sweep_inflight(sid), k.events, k.active_sweeps],
            args=[k.ns, sid, action, time.time(), reason],
        )
        if res[0] == "missing":
            raise NotFound(f"unknown sweep {sid!r}")
        if res[0] == "bad":
            raise Conflict(f"cannot {action} sweep {sid}: it is {res[1]}")
        return res[1]

    def set_sweep_fields(self, sid: str, **fields: Any) -> None:
        self._r.hset(
            self.keys.sweep(sid),
            mapping={k: (json.dumps(v) if isinstance(v, (list, dict)) else v) for k, v in fields.items()},
        )

    def finish_sweep(self, sid: str, state: str = "finished", reason: str = "") -> str | None:
        """End a sweep, in one script: it leaves the active set with an end time. A running (or
        paused) sweep takes ``state`` and ``reason``; a stopped, canceled or finished one keeps
        its state (an action set it) and takes the reason; a failed one keeps state and reason.
        Returns the state it ended in (None: no such sweep)."""
        k = self.keys
        res = self._run(
            "finish_sweep", [k.sweep(sid), k.active_sweeps, k.events], [sid, state, time.time(), reason]
        )
        return None if res == "missing" else str(res)

    def counts(self, sid: str) -> dict[str, int]:
        raw = self._r.hgetall(self.keys.sweep_counts(sid))
        return {s: max(0, int(raw.get(s, 0))) for s in TRIAL_STATES}

    def n_trials(self, sid: str) -> int:
        return int(self._r.zcard(self.keys.sweep_trials(sid)))

    def best(self, sid: str) -> dict[str, Any] | None:
        """The best finished trial by its summary metric (last logged value), or None."""
        h = self._r.hmget(self.keys.sweep(sid), ["best_id", "best_value"])
        if not h[0]:
            return None
        params = self._r.hget(self.keys.trial(h[0]), "params")
        return {"run_id": h[0], "value": float(h[1]), "params": json.loads(params or "{}")}

    def sweep_objectives(self, sid: str) -> list[dict[str, str]]:
        """A multi-objective sweep's ``[{name, goal}, ...]``; ``[]`` for one metric or none."""
        raw = self._r.hget(self.keys.sweep(sid), "objectives")
        try:
            found = json.loads(raw) if raw else []
        except ValueError:
            return []
        return [o for o in found if isinstance(o, dict) and o.get("name")] if isinstance(found, list) else []

    def pareto_front(self, sid: str, objs: list[dict[str, str]] | None = None) -> list[dict[str, Any]]:
        """The runs (``run`` shape, with ``objectives``) on a multi-objective sweep's Pareto front,
        best first on the first objective; ``[]`` for a sweep of one metric."""
        objs = self.sweep_objectives(sid) if objs is None else objs
        if not objs:
            return []
        runs = self.get_runs(self.trial_ids(sid), [o["name"] for o in objs])  # type: ignore[attr-defined]
        return [dict(r) for r in pareto.front(runs, objs)]

    def status(self, sid: str) -> dict[str, Any]:
        """The ``status`` JSON shape (docs/dashboard.md, "JSON shapes")."""
        sw = self.get_sweep(sid)
        out = {
            "id": sid,
            "state": sw["state"],
            "method": sw.get("method", ""),
            "metric": {"name": sw.get("metric_name") or None, "goal": sw.get("goal") or "minimize"},
            "counts": self.counts(sid),
            "best": self.best(sid),
        }
        warnings = list(sw.get("warnings", []))
        full = self.memory_full() if out["state"] in ("running", "paused", "stopped", "canceled") else None
        if full:
            warnings.append(full)
        extra = {
            "name": sw.get("name") or "",
            "created_at": stored_number(sw.get("created_at")),
            "ended_at": stored_number(sw.get("ended_at")),
            "trials": self.n_trials(sid),
            "warnings": warnings,
            "end_reason": sw.get("end_reason", ""),
        }
        out.update(extra)
        objs = self.sweep_objectives(sid)
        if objs:
            out["objectives"] = objs
            # a finished trial never changes: the front changes only when more trials finish, so
            # its size is kept per sweep and finished count (the dashboard asks every 2 s)
            n_done = out["counts"].get("finished", 0)
            hit = self._front_sizes.get(sid)
            if hit is None or hit[0] != n_done:
                hit = (n_done, len(self.pareto_front(sid, objs)))
                self._front_sizes[sid] = hit
                while len(self._front_sizes) > 256:
                    self._front_sizes.pop(next(iter(self._front_sizes)))
            out["pareto_size"] = hit[1]
        return out

    def memory_full(self, max_age: float = 2.0) -> str | None:
        """A one-line warning while Redis is out of memory and refusing writes, else None.

        Nothing can be written to a sweep then, so readers (status, the dashboard) ask Redis itself
        (``INFO memory``, cached ``max_age`` seconds). A server without INFO (fakeredis) is never full.
        """
        at, cached = self._health
        now = time.monotonic()
        if now - at < max_age:
            return cached
        try:
            info = self._r.info("memory")
            limit = int(info.get("maxmemory") or 0)
            full = (
                limit > 0
                and int(info.get("used_memory") or 0) > limit
                and info.get("maxmemory_policy") == "noeviction"
            )
        except redis.exceptions.ResponseError:
            full = False
        msg = OUT_OF_MEMORY if full else None
        self._health = (now, msg)
        return msg

    def sweep_metric(self, sid: str) -> tuple[str, str]:
        """(metric name, goal) of a sweep in one round trip; NotFound for an unknown sweep."""
        name, goal, exists = self._r.hmget(self.keys.sweep(sid), ["metric_name", "goal", "id"])
        if not exists:
            raise NotFound(f"unknown sweep {sid!r}")
        return name or "", goal or "minimize"

    def find_active_by(self, field: str, value: str) -> str | None:
        """An active sweep whose ``field`` holds ``value`` (``sweepq run`` resumes by config digest)."""
        for sid in self.active_sweeps():
            if self._r.hget(self.keys.sweep(sid), field) == value:
                return sid
        return None

    def sweep_states(self, sids: list[str]) -> list[tuple[str | None, dict[str, int]]]:
        """(state, counts) of each sweep, in one round trip (for /metrics)."""
        p = self._r.pipeline(transaction=False)
        for sid in sids:
            p.hget(self.keys.sweep(sid), "state")
            p.hgetall(self.keys.sweep_counts(sid))
        res = p.execute()
        return [
            (res[2 * i], {s: max(0, int((res[2 * i + 1] or {}).get(s, 0))) for s in TRIAL_STATES})
            for i in range(len(sids))
        ]
