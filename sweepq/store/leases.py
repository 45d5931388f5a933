"""Leases: a worker claims a trial, renews its lease, writes what it logged and its end, all
fenced by the owner token; the controller reaps the expired ones; stops reach the worker."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from sweepq.model import FINAL_STATES, stored_number
from sweepq.store.limits import ROWS_CAP
from sweepq.store.trials import TrialsPart

EXITED = "__exited__"  # pushed on a trial's stop list when its program ends: wakes the watch loop


@dataclass
class Claim:
    """Outcome of a claim: ``ok`` means this caller now owns the trial (attempt n)."""

    status: str
    attempt: int = 0
    state: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    sent_at: float = 0.0  # time.monotonic() when the claim was sent: its lease started after that

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class LeasesPart(TrialsPart):
    """Claims, leases and the writes of the worker that owns a trial."""

    def claim(
        self,
        sid: str,
        tid: str,
        owner: str,
        worker: str,
        lease_ttl: float,
        gpus: str = "",
        client: Any = None,
        log_path: str = "",
    ) -> Claim:
        """Take a queued trial (idempotent for the same ``owner``). ``client``: a pipeline to queue
        the claim on; the ``Claim`` then comes from ``claim_result`` of its reply."""
        k = self.keys
        sent = time.monotonic()
        res = self._run(
            "claim",
            [k.trial(tid), k.sweep(sid), k.sweep_counts(sid), k.sweep_inflight(sid), k.leases, k.events],
            [owner, worker, time.time(), log_path, tid, sid, gpus, lease_ttl],
            client=client,
        )
        return res if client is not None else self.claim_result(res, sent)

    @staticmethod
    def claim_result(res: list[Any], sent_at: float) -> Claim:
        """The ``Claim`` a claim script answered; ``sent_at``: ``time.monotonic()`` before the
        request left, the earliest its lease could have started (the worker's fence counts from it)."""
        if res[0] == "ok":
            return Claim("ok", attempt=int(res[1]), params=json.loads(res[2] or "{}"), sent_at=sent_at)
        return Claim(res[0], state=res[1] if len(res) > 1 else "", sent_at=sent_at)

    def heartbeat(self, tid: str, owner: str, lease_ttl: float) -> tuple[bool, str]:
        """Renew the lease for ``lease_ttl`` seconds from now on Redis's clock; returns
        (still_owner, stop_request)."""
        res = self._script("heartbeat")(
            keys=[self.keys.trial(tid), self.keys.leases], args=[owner, lease_ttl, tid]
        )
        return bool(int(res[0])), res[1] or ""

    def log_metrics(
        self, sid: str, tid: str, owner: str, values: list[float], rows: list[str], objectives: str = ""
    ) -> bool:
        """Append values of the sweep metric and raw JSON rows (fenced by owner); ``objectives``
        (a multi-objective sweep's) is the JSON object of the trial's summary values by name now."""
        if not values and not rows and not objectives:
            return True
        k = self.keys
        return bool(
            self._script("metrics")(
                keys=[k.trial(tid), k.trial_history(tid), k.trial_rows(tid), k.events],
                args=[
                    owner,
                    ROWS_CAP,
                    len(values),
                    sid,
                    tid,
                    objectives,
                    *[repr(float(v)) for v in values],
                    *rows,
                ],
            )
        )

    def finish_trial(
        self,
        sid: str,
        tid: str,
        owner: str,
        state: str,
        exit_code: int | None,
        reason: str = "",
        log_tail: str = "",
        goal: str = "minimize",
        values: list[float] | None = None,
        rows: list[str] | None = None,
        output: list[tuple[str, str]] | None = None,
        objectives: str = "",
    ) -> bool:
        """Record the final state; ``values``/``rows`` are metrics not yet sent (as ``log_metrics``)
        and ``output`` output lines not yet streamed, written in the same round trip, so a short
        trial's end costs one."""
        if not output:
            return bool(
                self._finish_call(
                    sid, tid, owner, state, exit_code, reason, log_tail, goal, values, rows, objectives
                )
            )
        p = self._pipeline()
        self.append_output(tid, output, client=p)
        self._finish_call(
            sid, tid, owner, state, exit_code, reason, log_tail, goal, values, rows, objectives, client=p
        )
        return bool(self._execute(p)[-1])

    def finish_and_claim(
        self,
        sid: str,
        tid: str,
        owner: str,
        state: str,
        exit_code: int | None,
        reason: str = "",
        log_tail: str = "",
        goal: str = "minimize",
        values: list[float] | None = None,
        rows: list[str] | None = None,
        output: list[tuple[str, str]] | None = None,
        objectives: str = "",
        *,
        claim_next: tuple[str, str, str, float, str, str],
    ) -> tuple[bool, Claim]:
        """``finish_trial``, and the claim of the next trial of a batch of short trials
        (``claim_next``: its id, owner, worker, lease TTL, GPUs, log path) in the same round trip.
        The two are independent: the claim is taken whatever the finish found."""
        p = self._pipeline()
        if output:
            self.append_output(tid, output, client=p)
        self._finish_call(
            sid, tid, owner, state, exit_code, reason, log_tail, goal, values, rows, objectives, client=p
        )
        nxt, nxt_owner, worker, lease_ttl, gpus, log_path = claim_next
        self.claim(sid, nxt, nxt_owner, worker, lease_ttl, gpus, client=p, log_path=log_path)
        sent = time.monotonic()
        *_, finished, claimed = self._execute(p)
        return bool(finished), self.claim_result(claimed, sent)

    def _finish_call(
        self,
        sid: str,
        tid: str,
        owner: str,
        state: str,
        exit_code: int | None,
        reason: str,
        log_tail: str,
        goal: str,
        values: list[float] | None,
        rows: list[str] | None,
        objectives: str = "",
        client: Any = None,
    ) -> Any:
        if state not in FINAL_STATES:  # not an assert: python -O must not let any state through
            raise ValueError(f"not a final state: {state!r}")
        k = self.keys
        values, rows = values or [], rows or []
        return self._run(
            "finish",
            [
                k.trial(tid),
                k.sweep_counts(sid),
                k.sweep_inflight(sid),
                k.leases,
                k.events,
                k.sweep(sid),
                k.trial_stopq(tid),
                k.trial_history(tid),
                k.trial_rows(tid),
            ],
            [
                owner,
                state,
                time.time(),
                "" if exit_code is None else exit_code,
                reason,
                log_tail,
                tid,
                sid,
                goal,
                ROWS_CAP,
                len(values),
                objectives,
                *[repr(float(v)) for v in values],
                *rows,
            ],
            client=client,
        )

    def release_trial(self, sid: str, tid: str, owner: str, reason: str) -> bool:
        """Hand a running trial back to the queue without using a retry (worker shutdown)."""
        k = self.keys
        return bool(
            self._script("release")(
                keys=[
                    k.trial(tid),
                    k.sweep_counts(sid),
                    k.leases,
                    k.events,
                    k.trial_history(tid),
                    k.trial_rows(tid),
                    k.sweep(sid),
                    k.sweep_inflight(sid),
                    k.trial_stopq(tid),
                ],
                args=[owner, tid, sid, reason, time.time()],
            )
        )

    def expired_leases(self) -> list[str]:
        """Running trials whose lease is past its expiry (on Redis's clock)."""
        return list(self._script("expired")(keys=[self.keys.leases]))

    def reap(self, sid: str, tid: str, retries: int, reason: str) -> str:
        """Requeue (retries left) or crash a running trial whose lease expired."""
        k = self.keys
        return self._script("reap")(
            keys=[
                k.trial(tid),
                k.sweep_counts(sid),
                k.sweep_inflight(sid),
                k.leases,
                k.events,
                k.trial_history(tid),
                k.trial_rows(tid),
                k.sweep(sid),
                k.trial_stopq(tid),
            ],
            args=[time.time(), retries, tid, sid, reason],
        )

    def lease_ttl(self, tid: str, default: float) -> float:
        """The lease TTL the worker running ``tid`` claimed it with."""
        return stored_number(self._r.hget(self.keys.trial(tid), "lease_ttl")) or default

    def request_stop(self, sid: str, tid: str, kind: str = "stop") -> str:
        """Ask the worker running ``tid`` to stop it (kind: stop | cancel | timeout)."""
        k = self.keys
        return self._script("request_stop")(
            keys=[k.trial(tid), k.trial_stopq(tid), k.sweep_counts(sid), k.sweep_inflight(sid), k.events],
            args=[kind, time.time(), tid, sid],
        )

    def wait_stop(self, tid: str, timeout: float) -> str | None:
        """Block up to ``timeout`` seconds for a stop request on the trial."""
        res = self._r.blpop([self.keys.trial_stopq(tid)], timeout=max(timeout, 0.01))
        return res[1] if res else None

    def notify_exited(self, tid: str) -> None:
        """Wake the worker's watch loop, blocked on the trial's stop list: its program ended."""
        self._r.rpush(self.keys.trial_stopq(tid), EXITED)
