"""Trials: created in batches bounded by ``run_cap``, read back (one record parser, also for the
dashboard's reads of thousands), their logged rows and their output."""

from __future__ import annotations

import json
import time
from typing import Any

from sweepq.errors import NotFound
from sweepq.store.base import StoreBase
from sweepq.store.limits import OUTPUT_CAP, OUTPUT_TTL, ROWS_CAP
from sweepq.store.records import RUN_FIELDS, WEB_FIELDS, run_json, trial_from_hash, web_record


class TrialsPart(StoreBase):
    """The trials of a namespace."""

    def create_trials(
        self,
        sid: str,
        params_list: list[dict[str, Any]],
        run_cap: int | None = None,
        queues: list[str] | None = None,
        suggest_time: float | None = None,
    ) -> list[str]:
        """Create queued trials atomically; never exceeds ``run_cap`` trials in the sweep.

        ``queues`` (one per trial) marks them published there in the same script (the controller
        sends them right after); ``suggest_time`` is recorded for the web's /metrics on the way.
        """
        if not params_list and suggest_time is None:
            return []
        k = self.keys
        qs = list(queues or [])
        qs += [""] * (len(params_list) - len(qs))
        return list(
            self._script("create_trials")(
                keys=[
                    k.sweep(sid),
                    k.sweep_trials(sid),
                    k.sweep_counts(sid),
                    k.sweep_inflight(sid),
                    k.events,
                    k.suggest_times,
                ],
                args=[
                    k.ns,
                    sid,
                    time.time(),
                    int(run_cap or 0),
                    "" if suggest_time is None else f"{suggest_time:.6f}",
                    len(params_list),
                    *[json.dumps(p) for p in params_list],
                    *qs,
                ],
            )
        )

    def unpublish(self, tid: str) -> None:
        """A delivery declined a queued trial (agent at its --count), or its send failed: the
        controller sends it again."""
        self._script("unpublish")(keys=[self.keys.trial(tid), self.keys.events], args=[tid])

    def mark_published_many(self, items: list[tuple[str, str]]) -> None:
        """Mark trials sent to their queues, in one round trip."""
        if not items:
            return
        now = time.time()
        p = self._r.pipeline(transaction=False)
        for tid, queue in items:
            p.hset(self.keys.trial(tid), mapping={"published": 1, "queue": queue, "published_at": now})
        p.execute()

    def inflight_ids(self, sid: str) -> set[str]:
        return set(self._r.smembers(self.keys.sweep_inflight(sid)))

    def trial_ids(self, sid: str, start: int = 0, stop: int = -1) -> list[str]:
        return list(self._r.zrange(self.keys.sweep_trials(sid), start, stop))

    def get_trials(self, tids: list[str], history: bool = True) -> list[dict[str, Any]]:
        """Trials as dicts (the engine's shape plus record fields), in the order given."""
        out: list[dict[str, Any]] = []
        chunk = 1000
        for i in range(0, len(tids), chunk):
            part = tids[i : i + chunk]
            p = self._r.pipeline(transaction=False)
            self._read_trials(p, part, history)
            out.extend(self._parse_trials(p.execute(), 0, part, history).values())
        return out

    def _read_trials(self, p: Any, tids: list[str], history: bool) -> None:
        """Queue the reads of ``tids``' records on pipeline ``p`` (parsed by ``_parse_trials``)."""
        for tid in tids:
            p.hgetall(self.keys.trial(tid))
            if history:
                p.lrange(self.keys.trial_history(tid), 0, -1)

    def _parse_trials(
        self, res: list[Any], at: int, tids: list[str], history: bool
    ) -> dict[str, dict[str, Any]]:
        """The records ``_read_trials`` queued, from ``res[at:]``, by id in the order given
        (trials that no longer exist are left out)."""
        step = 2 if history else 1
        out: dict[str, dict[str, Any]] = {}
        for j, tid in enumerate(tids):
            h = res[at + j * step]
            if h:
                out[tid] = trial_from_hash(h, [float(x) for x in res[at + j * step + 1]] if history else None)
        return out

    def get_runs(self, tids: list[str], objectives: list[str] | None = None) -> list[dict[str, Any]]:
        """The ``run`` JSON shape for many trials, fetching only its fields (``runs --json``);
        ``objectives``: a multi-objective sweep's objective names (see ``run_json``)."""
        out: list[dict[str, Any]] = []
        names = list(RUN_FIELDS)
        for i in range(0, len(tids), 2000):
            p = self._r.pipeline(transaction=False)
            for tid in tids[i : i + 2000]:
                p.hmget(self.keys.trial(tid), names)
            for vals in p.execute():
                if vals[0] is None:
                    continue
                h = dict(zip(names, vals, strict=True))
                t = trial_from_hash({k: v for k, v in h.items() if v is not None}, None)
                out.append(run_json(t, objectives))
        return out

    def get_trial(self, tid: str, history: bool = True) -> dict[str, Any]:
        got = self.get_trials([tid], history=history)
        if not got:
            raise NotFound(f"unknown trial {tid!r}")
        return got[0]

    def logged_keys(self, tids: list[str], rows: int = 20) -> list[str]:
        """The metric names the first ``rows`` logged rows of these trials hold (``_step`` aside),
        sorted: what a sweep whose metric was never logged did log."""
        p = self._r.pipeline(transaction=False)
        for tid in tids:
            p.lrange(self.keys.trial_rows(tid), 0, rows - 1)
        keys: set[str] = set()
        for raws in p.execute() if tids else []:
            for raw in raws:
                try:
                    row = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(row, dict):
                    keys.update(k for k in row if not k.startswith("_"))
        return sorted(keys)

    def trial_rows(self, tid: str, limit: int = ROWS_CAP) -> list[dict[str, Any]]:
        rows = []
        for raw in self._r.lrange(self.keys.trial_rows(tid), -limit, -1):
            try:
                rows.append(json.loads(raw))
            except ValueError:
                continue
        return rows

    def append_output(self, tid: str, lines: list[tuple[str, str]], client: Any = None) -> Any:
        """Add (stream, text) output lines to the trial's output stream (capped, expiring); on
        ``client`` (a pipeline) when given."""
        key = self.keys.trial_output(tid)
        p = client if client is not None else self._r.pipeline(transaction=False)
        for stream, text in lines:
            p.xadd(key, {"s": stream, "l": text}, maxlen=OUTPUT_CAP, approximate=True)
        p.expire(key, OUTPUT_TTL)
        return p.execute() if client is None else None

    def read_output(
        self, tid: str, after: str = "0-0", block_ms: int | None = None
    ) -> list[tuple[str, str, str]]:
        """(entry id, stream, text) of at most 1000 output lines after ``after`` (page on with the
        last id); waits up to ``block_ms`` for new ones when given."""
        res = self._r.xread({self.keys.trial_output(tid): after}, block=block_ms, count=1000)
        return [(eid, f.get("s", ""), f.get("l", "")) for _, entries in (res or []) for eid, f in entries]

    # -- the dashboard's reads of many trials ---------------------------------------------------
    def read_trial_records(
        self, sid: str, tids: list[str] | None = None, ranks: tuple[int, int] | None = None
    ) -> list[tuple[str, dict[str, Any]]]:
        """(id, record) of existing trials named by id, or by rank range in the sweep's creation
        order: ``WEB_FIELDS`` only, parsed by :func:`web_record`, in one script call per
        ``READ_CHUNK`` trials. A params value that does not splice as JSON is read one by one."""
        if ranks is not None:
            args = [self.ns, "range", sid, ranks[0], len(WEB_FIELDS), *WEB_FIELDS, ranks[1]]
        else:
            args = [self.ns, "ids", "", "", len(WEB_FIELDS), *WEB_FIELDS, *(tids or [])]
        try:
            rows = json.loads(self._script("read_trials")(args=args))
        except ValueError:  # a malformed params value spoils the splice: decode one by one
            return self._read_records_slowly(tids if tids is not None else self.trial_ids(sid, *ranks))  # type: ignore[misc]
        out = []
        for params, tid, vals in rows:
            if not vals or not vals[0]:  # no such trial (HMGET gives false for missing fields)
                continue
            out.append((tid, web_record(vals, params if isinstance(params, dict) else {})))
        return out

    def _read_records_slowly(self, tids: list[str]) -> list[tuple[str, dict[str, Any]]]:
        p = self._r.pipeline(transaction=False)
        for tid in tids:
            p.hmget(self.keys.trial(tid), WEB_FIELDS)
        return [
            (tid, web_record([False if v is None else v for v in vals]))
            for tid, vals in zip(tids, p.execute(), strict=True)
            if vals and vals[0]
        ]

    def sweep_changes(self, sid: str, last_event: str) -> tuple[list[Any], list[Any], int, bool]:
        """What changed since ``last_event``, in one round trip: (the stream's oldest entry, the
        entries after ``last_event``, the sweep's number of trials, whether it still exists)."""
        k = self.keys
        p = self._r.pipeline(transaction=False)
        p.xrange(k.events, "-", "+", count=1)
        p.xread({k.events: last_event}, count=50_000)
        p.zcard(k.sweep_trials(sid))
        p.exists(k.sweep(sid))
        oldest, new, n, exists = p.execute()
        return oldest, (new[0][1] if new else []), int(n), bool(exists)

    def rows_of(self, tids: list[str], last: int | None = None) -> list[list[dict[str, Any]]]:
        """The logged rows of several trials (all, or their ``last`` ones), decoded; rows that are
        not JSON objects are left out."""
        p = self._r.pipeline(transaction=False)
        for tid in tids:
            p.lrange(self.keys.trial_rows(tid), -last if last else 0, -1)
        out = []
        for raws in p.execute():
            rows = []
            for raw in raws:
                try:
                    row = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(row, dict):
                    rows.append(row)
            out.append(rows)
        return out

    def sweep_queues(self, sids: list[str]) -> list[str]:
        """The ``queue`` of each sweep's config (for the queue gauges)."""
        p = self._r.pipeline(transaction=False)
        for sid in sids:
            p.hget(self.keys.sweep(sid), "config")
        out = []
        for raw in p.execute():
            try:
                q = (json.loads(raw or "{}") or {}).get("queue")
            except ValueError:
                q = None
            if q:
                out.append(str(q))
        return out
