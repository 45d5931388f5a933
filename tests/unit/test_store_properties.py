"""Property-based tests of the store's trial state machine (hypothesis, fakeredis with Lua).

Any interleaving of claim, redelivery (a second claim of the same message), heartbeat, metrics,
finish, reap (with leases forced into the past), release, stop requests and sweep actions keeps
the invariants:

* a trial has at most one owner, and a lease exactly while it is running;
* only the current owner's heartbeat, metrics, finish and release take effect (fencing);
* a final state never changes;
* the counts hash equals the tally of the trial hashes' states; the in-flight set holds exactly
  the queued and running trials.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    rule,
)

fakeredis = pytest.importorskip("fakeredis")
pytest.importorskip("lupa")

from sweepq.model import FINAL_STATES, TRIAL_STATES  # noqa: E402
from sweepq.store import Store  # noqa: E402

N_TRIALS = 3
LEASE_TTL = 30.0
trial_idx = st.integers(min_value=0, max_value=N_TRIALS - 1)


class TrialStoreMachine(RuleBasedStateMachine):
    owners = Bundle("owners")  # (trial index, owner token) of every successful claim

    def __init__(self) -> None:
        super().__init__()
        self.store = Store(client=fakeredis.FakeRedis(decode_responses=True), namespace="prop")
        self.sid = self.store.create_sweep(
            {"method": "random", "metric": {"name": "loss", "goal": "minimize"}, "parameters": {}},
            sweep_id="s",
        )
        self.tids = self.store.create_trials(self.sid, [{"i": i} for i in range(N_TRIALS)])
        self.final: dict[str, str] = {}  # trial -> the final state it reached first
        self.n = 0

    def _token(self) -> str:
        self.n += 1
        return f"worker{self.n}:{self.n}"

    def _h(self, tid: str) -> dict[str, str]:
        return self.store._r.hgetall(self.store.keys.trial(tid))

    # -- rules ----------------------------------------------------------------------------------
    @initialize()
    def created(self) -> None:
        assert len(self.tids) == N_TRIALS

    @rule(target=owners, i=trial_idx)
    def claim(self, i: int) -> Any:
        """A delivery of the trial's message (first delivery or redelivery: the same code path)."""
        tid = self.tids[i]
        before = self._h(tid)
        sweep_state = self.store.sweep_state(self.sid)
        token = self._token()
        c = self.store.claim(self.sid, tid, token, f"w{self.n}", LEASE_TTL)
        if before["state"] == "queued" and sweep_state == "running":
            assert c.ok, c
            assert c.attempt == int(before["attempt"]) + 1
            h = self._h(tid)
            assert h["state"] == "running" and h["owner"] == token
        else:
            assert not c.ok, (before, c)
            assert self._h(tid).get("owner", "") == before.get("owner", "")
            if before["state"] == "queued":  # paused: handed back to the controller; ended: canceled
                assert c.status == ("paused" if sweep_state == "paused" else "canceled"), c
        return (i, token) if c.ok else (i, "")

    @rule(o=owners)
    def redeliver_while_running(self, o: tuple[int, str]) -> None:
        """A duplicate delivery while the owner still runs: it must see the claim."""
        i, token = o
        tid = self.tids[i]
        before = self._h(tid)
        c = self.store.claim(self.sid, tid, self._token(), "dup", LEASE_TTL)
        if before["state"] != "queued":
            assert not c.ok
            assert self._h(tid).get("owner", "") == before.get("owner", "")

    @rule(o=owners)
    def heartbeat(self, o: tuple[int, str]) -> None:
        i, token = o
        tid = self.tids[i]
        before = self._h(tid)
        owned, _ = self.store.heartbeat(tid, token, LEASE_TTL)
        assert owned == (bool(token) and before.get("owner") == token and before["state"] == "running")

    @rule(o=owners, value=st.floats(allow_nan=False, allow_infinity=False, width=32))
    def metrics(self, o: tuple[int, str], value: float) -> None:
        i, token = o
        tid = self.tids[i]
        before = self._h(tid)
        ok = self.store.log_metrics(self.sid, tid, token, [value], ['{"loss": 1}'])
        assert ok == (bool(token) and before.get("owner") == token and before["state"] == "running")

    @rule(o=owners, state=st.sampled_from(sorted(FINAL_STATES - {"crashed"})))
    def finish(self, o: tuple[int, str], state: str) -> None:
        i, token = o
        tid = self.tids[i]
        before = self._h(tid)
        ok = self.store.finish_trial(self.sid, tid, token, state, 0)
        expect = bool(token) and before.get("owner") == token and before["state"] == "running"
        assert ok == expect, (before, token)
        if ok:
            assert self._h(tid)["state"] == state

    @rule(o=consumes(owners))
    def release(self, o: tuple[int, str]) -> None:
        """Worker shutdown hands the trial back without using a retry."""
        i, token = o
        tid = self.tids[i]
        before = self._h(tid)
        ok = self.store.release_trial(self.sid, tid, token, "worker shut down")
        expect = bool(token) and before.get("owner") == token and before["state"] == "running"
        assert ok == expect
        if ok:
            h = self._h(tid)
            final = self._final_if_ending(before)
            if final:  # a stop was pending or the sweep is ending: the trial ends, not requeued
                assert h["state"] == final and h["owner"] == ""
            else:
                assert h["state"] == "queued" and h["owner"] == ""
                assert int(h["attempt"]) == int(before["attempt"]) - 1

    def _final_if_ending(self, before: dict) -> str:
        stop = before.get("stop") or ""
        sw = self.store.sweep_state(self.sid)
        if stop == "cancel" or sw == "canceled":
            return "canceled"
        if stop:
            return "stopped"
        if sw not in ("running", "paused"):
            return "canceled"
        return ""

    @rule(i=trial_idx, retries=st.integers(min_value=0, max_value=3), expired=st.booleans())
    def reap(self, i: int, retries: int, expired: bool) -> None:
        """The controller's reaper; ``expired`` forces the lease into the past (time passing)."""
        tid = self.tids[i]
        before = self._h(tid)
        if expired and before["state"] == "running":
            self.store._r.zadd(self.store.keys.leases, {tid: 0})
        res = self.store.reap(self.sid, tid, retries, "worker lost (lease expired)")
        if before["state"] != "running":
            assert res == "gone"
        elif not expired:
            assert res == "alive"
        elif self._final_if_ending(before):
            final = self._final_if_ending(before)
            assert res == final and self._h(tid)["state"] == final
        elif int(before["attempt"]) <= retries:
            assert res == "requeued"
            h = self._h(tid)
            assert h["state"] == "queued" and h["owner"] == ""
        else:
            assert res == "crashed"
            assert self._h(tid)["state"] == "crashed"

    @rule(i=trial_idx, kind=st.sampled_from(["stop", "cancel"]))
    def request_stop(self, i: int, kind: str) -> None:
        tid = self.tids[i]
        before = self._h(tid)
        res = self.store.request_stop(self.sid, tid, kind)
        if before["state"] in FINAL_STATES:
            assert res == "final"
        elif before["state"] == "queued":
            assert res == "canceled" and self._h(tid)["state"] == "canceled"

    @rule(action=st.sampled_from(["pause", "resume", "stop", "cancel"]))
    def sweep_action(self, action: str) -> None:
        from sweepq.store import StoreError

        before = self.store.sweep_state(self.sid)
        try:
            state = self.store.sweep_action(self.sid, action)
        except StoreError:
            return
        if action in ("stop", "cancel"):
            assert before not in ("canceled", "finished")
            assert state == ("canceled" if action == "cancel" else "stopped")
            assert all(self._h(t)["state"] != "queued" for t in self.tids), (
                "stop/cancel leaves no queued trial"
            )

    # -- invariants (one pass: every trial hash read once per step) -----------------------------
    @invariant()
    def invariants(self) -> None:
        hs = {tid: self._h(tid) for tid in self.tids}
        leases = dict(self.store._r.zrange(self.store.keys.leases, 0, -1, withscores=True))
        for tid, h in hs.items():
            state = h["state"]
            assert state in TRIAL_STATES
            assert int(h.get("attempt") or 0) >= 0
            # at most one owner; a lease exactly while running
            if state == "running":
                assert h.get("owner"), h
                assert tid in leases, (tid, leases)
            else:
                assert tid not in leases, (tid, h)
                if state == "queued":
                    assert h.get("owner", "") == ""
            # a final state never changes
            if tid in self.final:
                assert state == self.final[tid], (tid, self.final[tid], state)
            elif state in FINAL_STATES:
                self.final[tid] = state
        # counts add up
        tally = Counter(h["state"] for h in hs.values())
        raw = self.store._r.hgetall(self.store.keys.sweep_counts(self.sid))
        assert all(int(v) >= 0 for v in raw.values()), raw
        counts = self.store.counts(self.sid)
        assert {k: v for k, v in counts.items() if v} == dict(tally), (counts, tally)
        inflight = {tid for tid, h in hs.items() if h["state"] in ("queued", "running")}
        assert self.store.inflight_ids(self.sid) == inflight


TrialStoreMachine.TestCase.settings = settings(
    max_examples=50,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
test_trial_store_state_machine = TrialStoreMachine.TestCase
