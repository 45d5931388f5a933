"""Contract of the store's leases (``sweepq/store/leases.py``), on every backend: a claim makes one
owner, every later write of the trial is fenced by that owner, leases are scored and renewed on
Redis's clock, an expired lease is reaped (requeued within its retries, crashed after, never
before it expired), a release hands the trial back without spending a retry, and stops reach the
worker. Expiry is forced by writing a past score: no test waits for a clock."""

from __future__ import annotations

import json
import time

import pytest
import redis

from sweepq.model import FINAL_STATES
from sweepq.store import EXITED, Claim, Store
from tests.store.conftest import Backend, events, new_sweep, running_trial


def test_a_claim_makes_the_caller_owner_with_a_lease_on_redis_clock(backend: Backend, store: Store) -> None:
    sid = new_sweep(store)
    (tid,) = store.create_trials(sid, [{"x": 0.5}])
    t0, local0 = backend.now(), time.time()
    c = store.claim(sid, tid, "owner-1", "worker-1", 30.0, gpus="0,1", log_path="/logs/t.log")
    t1, local1 = backend.now(), time.time()
    assert c == Claim("ok", attempt=1, params={"x": 0.5}, sent_at=c.sent_at) and c.ok
    t = store.get_trial(tid)
    assert t["state"] == "running" and t["worker"] == "worker-1" and t["gpus"] == "0,1" and t["attempt"] == 1
    assert t["log_path"] == "/logs/t.log" and local0 <= t["started_at"] <= local1 and t["stop"] == ""
    expiry = backend.lease(tid)  # the lease runs on Redis's clock, the start time on the worker's
    assert expiry is not None and t0 + 30.0 <= expiry <= t1 + 30.0
    assert store.lease_ttl(tid, 99.0) == 30.0 and store.lease_ttl(f"{sid}-9", 99.0) == 99.0
    assert events(store)[-1] == {"sweep": sid, "trial": tid, "kind": "started"}
    backend.check_books(store, sid)


def test_a_claim_is_idempotent_for_its_owner_and_refused_to_anyone_else(
    backend: Backend, store: Store
) -> None:
    """The same owner asking again (its first answer lost with a connection) is granted the same
    attempt, nothing counted twice; any other owner is told the trial is not queued."""
    sid = new_sweep(store)
    tid = running_trial(store, sid, "owner-1")
    lease = backend.lease(tid)
    again = store.claim(sid, tid, "owner-1", "worker-1", 30.0)
    assert again.ok and again.attempt == 1 and again.params == {"x": 0.5}
    other = store.claim(sid, tid, "owner-2", "worker-2", 30.0)
    assert other.status == "not_queued" and other.state == "running" and not other.ok
    assert store.get_trial(tid)["worker"] == "worker-1" and store.get_trial(tid)["attempt"] == 1
    assert backend.lease(tid) == lease and store.counts(sid)["running"] == 1
    assert store.claim(sid, f"{sid}-9", "owner-1", "worker-1", 30.0).status == "missing"
    store.finish_trial(sid, tid, "owner-1", "finished", 0)
    ended = store.claim(sid, tid, "owner-1", "worker-1", 30.0)
    assert ended.status == "not_queued" and ended.state == "finished"
    backend.check_books(store, sid)


def test_a_claim_in_a_paused_sweep_hands_the_trial_back_for_resume(backend: Backend, store: Store) -> None:
    sid = new_sweep(store)
    (tid,) = store.create_trials(sid, [{"x": 0.5}], queues=["sweepq"])
    store.sweep_action(sid, "pause")
    c = store.claim(sid, tid, "owner-1", "worker-1", 30.0)
    assert c.status == "paused" and not c.ok
    t = store.get_trial(tid)
    assert t["state"] == "queued" and not t["published"] and t["attempt"] == 0 and backend.lease(tid) is None
    assert events(store)[-1] == {"sweep": sid, "trial": tid, "kind": "unpublished"}
    store.sweep_action(sid, "resume")
    assert store.claim(sid, tid, "owner-1", "worker-1", 30.0).ok
    backend.check_books(store, sid)


def test_a_claim_in_an_ended_sweep_cancels_the_trial(backend: Backend, store: Store) -> None:
    """A queued trial of a sweep that is no longer running is canceled by the delivery that finds
    it; in a canceled sweep it was canceled already, and the claim says so."""
    ended = new_sweep(store)
    (tid,) = store.create_trials(ended, [{"x": 0.5}])
    store.finish_sweep(ended, "finished", "run_cap reached")
    assert store.claim(ended, tid, "owner-1", "worker-1", 30.0).status == "canceled"
    t = store.get_trial(tid)
    assert t["state"] == "canceled" and t["reason"] == "sweep finished" and t["ended_at"] is not None
    backend.check_books(store, ended)
    canceled = new_sweep(store)
    (tid,) = store.create_trials(canceled, [{"x": 0.5}])
    store.sweep_action(canceled, "cancel")
    c = store.claim(canceled, tid, "owner-1", "worker-1", 30.0)
    assert c.status == "not_queued" and c.state == "canceled"
    backend.check_books(store, canceled)


def test_a_claim_queued_on_a_pipeline_answers_through_claim_result(backend: Backend, store: Store) -> None:
    sid = new_sweep(store)
    (tid,) = store.create_trials(sid, [{"x": 0.5}])
    p = backend.raw.pipeline(transaction=False)
    assert store.claim(sid, tid, "owner-1", "worker-1", 30.0, client=p) is not None
    assert store.get_trial(tid)["state"] == "queued"  # nothing sent before the pipeline runs
    sent = time.monotonic()
    c = Store.claim_result(p.execute()[0], sent)
    assert c == Claim("ok", attempt=1, params={"x": 0.5}, sent_at=sent)


def test_heartbeat_renews_on_redis_clock_and_fences_anyone_else(backend: Backend, store: Store) -> None:
    sid = new_sweep(store)
    tid = running_trial(store, sid, "owner-1")
    backend.expire_lease(tid)
    assert store.heartbeat(tid, "owner-2", 45.0) == (False, "")
    assert backend.lease(tid) == 0  # a non-owner renews nothing
    t0 = backend.now()
    assert store.heartbeat(tid, "owner-1", 45.0) == (True, "")
    t1 = backend.now()
    expiry = backend.lease(tid)
    assert expiry is not None and t0 + 45.0 <= expiry <= t1 + 45.0
    assert store.expired_leases() == []
    store.request_stop(sid, tid, "timeout")
    assert store.heartbeat(tid, "owner-1", 45.0) == (True, "timeout")  # the stop rides on the renewal
    store.finish_trial(sid, tid, "owner-1", "stopped", -15)
    assert store.heartbeat(tid, "owner-1", 45.0) == (False, "") and backend.lease(tid) is None
    assert store.heartbeat(f"{sid}-9", "owner-1", 45.0) == (False, "")


def test_log_metrics_is_fenced_by_owner(backend: Backend, store: Store) -> None:
    sid = new_sweep(store)
    tid = running_trial(store, sid, "owner-1")
    n = len(events(store))
    assert store.log_metrics(sid, tid, "owner-1", [0.5, 0.25], ['{"loss": 0.5}', '{"loss": 0.25}'])
    assert events(store)[n:] == [{"sweep": sid, "trial": tid, "kind": "metric"}]
    assert not store.log_metrics(sid, tid, "owner-2", [9.0], ['{"loss": 9}'])
    assert not store.log_metrics(sid, tid, "", [9.0], [])
    t = store.get_trial(tid)
    assert t["history"] == [0.5, 0.25] and t["metric"] == 0.25 and t["steps"] == 2
    assert store.trial_rows(tid) == [{"loss": 0.5}, {"loss": 0.25}] and len(events(store)) == n + 1
    (queued,) = store.create_trials(sid, [{}])
    assert not store.log_metrics(sid, queued, "", [1.0], [])  # a queued trial has no owner to match
    assert store.get_trial(queued)["history"] == []
    # nothing to write is no write at all: True, whoever asks
    assert store.log_metrics(sid, tid, "owner-2", [], [])


@pytest.mark.parametrize("state", sorted(FINAL_STATES))
def test_finish_is_fenced_by_owner_and_final(backend: Backend, store: Store, state: str) -> None:
    """Only the owner of a running trial ends it; the end takes the lease, the in-flight entry,
    the stop list and the lease bookkeeping with it, carries the metrics not yet sent and the
    output not yet streamed, and never changes again."""
    sid = new_sweep(store)
    tid = running_trial(store, sid, "owner-1")
    store.request_stop(sid, tid)
    assert not store.finish_trial(sid, tid, "owner-2", "finished", 0)
    assert store.get_trial(tid)["state"] == "running"
    assert store.finish_trial(
        sid,
        tid,
        "owner-1",
        state,
        2,
        reason="why",
        log_tail="tail\n",
        values=[0.5],
        rows=['{"loss": 0.5}'],
        output=[("out", "last line")],
    )
    t = store.get_trial(tid)
    assert t["state"] == state and t["exit_code"] == 2 and t["reason"] == "why" and t["log_tail"] == "tail\n"
    assert t["ended_at"] is not None and t["history"] == [0.5] and t["metric"] == 0.5 and t["steps"] == 1
    assert [x[2] for x in store.read_output(tid)] == ["last line"]
    assert store.wait_stop(tid, 0.01) is None  # the stop list went with the trial
    assert backend.lease(tid) is None and tid not in store.inflight_ids(sid)
    assert events(store)[-1] == {"sweep": sid, "trial": tid, "kind": "state"}
    assert not store.finish_trial(sid, tid, "owner-1", "failed", 1)
    assert store.get_trial(tid)["state"] == state
    backend.check_books(store, sid)


def test_finish_of_a_queued_trial_is_refused(backend: Backend, store: Store) -> None:
    sid = new_sweep(store)
    (tid,) = store.create_trials(sid, [{}])
    assert not store.finish_trial(sid, tid, "", "finished", 0)
    assert store.get_trial(tid)["state"] == "queued"
    backend.check_books(store, sid)


def test_finish_and_claim_ends_one_trial_and_claims_the_next(backend: Backend, store: Store) -> None:
    """Both in one request; the claim is taken whatever the finish found (a fenced finish too)."""
    sid = new_sweep(store)
    a, b, c = store.create_trials(sid, [{"i": 0}, {"i": 1}, {"i": 2}])
    assert store.claim(sid, a, "oa", "w", 30.0).ok
    done, nxt = store.finish_and_claim(
        sid,
        a,
        "oa",
        "finished",
        0,
        values=[0.5],
        rows=['{"loss": 0.5}'],
        output=[("out", "bye")],
        claim_next=(b, "ob", "w", 30.0, "1", "/b.log"),
    )
    assert done and nxt.ok and nxt.attempt == 1 and nxt.params == {"i": 1}
    assert store.get_trial(a)["state"] == "finished" and store.get_trial(a)["metric"] == 0.5
    assert [x[2] for x in store.read_output(a)] == ["bye"]
    tb = store.get_trial(b)
    assert tb["state"] == "running" and tb["gpus"] == "1" and tb["log_path"] == "/b.log"
    done, nxt = store.finish_and_claim(
        sid, b, "stale", "finished", 0, claim_next=(c, "oc", "w", 30.0, "", "")
    )
    assert not done and nxt.ok and store.get_trial(b)["state"] == "running"
    done, nxt = store.finish_and_claim(sid, c, "oc", "failed", 1, claim_next=(b, "oc", "w", 30.0, "", ""))
    assert done and nxt.status == "not_queued" and nxt.state == "running"
    backend.check_books(store, sid)


class RoundTrips:
    """Counts the requests a client sends to the server (each a round trip)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.n = 0
        send = redis.connection.AbstractConnection.send_packed_command

        def counted(conn: redis.connection.AbstractConnection, *args: object, **kw: object) -> object:
            self.n += 1
            return send(conn, *args, **kw)

        monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counted)


def test_a_finish_without_output_is_one_round_trip(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """One script call, one request (and the counter below counts requests)."""
    sid = new_sweep(store)
    a, b = store.create_trials(sid, [{}] * 2)
    assert store.claim(sid, a, "oa", "w", 30.0).ok and store.claim(sid, b, "ob", "w", 30.0).ok
    store.finish_trial(sid, a, "oa", "finished", 0, values=[1.0])  # the script now loaded
    trips = RoundTrips(monkeypatch)
    assert store.finish_trial(sid, b, "ob", "finished", 0, values=[1.0], rows=['{"loss": 1}'])
    assert trips.n == 1


@pytest.mark.parametrize("call", ["finish_and_claim", "finish_trial with output"])
def test_a_short_trial_ends_in_one_round_trip(
    store: Store, monkeypatch: pytest.MonkeyPatch, call: str
) -> None:
    """finish_trial: "written in the same round trip, so a short trial's end costs one";
    finish_and_claim: the next claim "in the same round trip". Counted once every script is
    loaded (a server that lost its scripts costs one more: not what is measured here)."""
    sid = new_sweep(store)
    a, b, c, d = store.create_trials(sid, [{}] * 4)
    assert store.claim(sid, a, "oa", "w", 30.0).ok and store.claim(sid, c, "oc", "w", 30.0).ok
    store.finish_and_claim(
        sid, a, "oa", "finished", 0, output=[("out", "x")], claim_next=(b, "ob", "w", 30.0, "", "")
    )  # every script now loaded
    trips = RoundTrips(monkeypatch)
    if call == "finish_and_claim":
        store.finish_and_claim(
            sid,
            c,
            "oc",
            "finished",
            0,
            values=[1.0],
            output=[("out", "y")],
            claim_next=(d, "od", "w", 30.0, "", ""),
        )
    else:
        store.finish_trial(sid, c, "oc", "finished", 0, values=[1.0], output=[("out", "y")])
    sent = trips.n
    assert store.get_trial(c)["state"] == "finished"
    assert sent == 1


def test_a_pipeline_whose_scripts_redis_lost_runs_each_once(backend: Backend, store: Store) -> None:
    """After a restart or SCRIPT FLUSH the pipelined scripts did not run: they run once loaded,
    in order, and the commands around them (the output lines) are not repeated."""
    sid = new_sweep(store)
    a, b = store.create_trials(sid, [{}] * 2)
    assert store.claim(sid, a, "oa", "w", 30.0).ok
    backend.raw.script_flush()
    done, nxt = store.finish_and_claim(
        sid,
        a,
        "oa",
        "finished",
        0,
        values=[2.0],
        output=[("out", "last line")],
        claim_next=(b, "ob", "w", 30.0, "", ""),
    )
    assert done and nxt.ok and nxt.attempt == 1
    assert store.get_trial(a)["state"] == "finished" and store.get_trial(b)["state"] == "running"
    assert [line for _, _, line in store.read_output(a)] == ["last line"]
    backend.check_books(store, sid)


def test_release_hands_the_trial_back_without_spending_a_retry(backend: Backend, store: Store) -> None:
    sid = new_sweep(store)
    tid = running_trial(store, sid, "owner-1")
    store.log_metrics(sid, tid, "owner-1", [0.5], ['{"loss": 0.5}'])
    assert not store.release_trial(sid, tid, "owner-2", "worker shut down")
    assert store.get_trial(tid)["state"] == "running"
    assert store.release_trial(sid, tid, "owner-1", "worker shut down")
    t = store.get_trial(tid)
    assert t["state"] == "queued" and t["attempt"] == 0 and t["reason"] == "worker shut down"
    assert t["metric"] is None and t["steps"] == 0 and t["history"] == [] and store.trial_rows(tid) == []
    assert not t["published"] and t["started_at"] is None and backend.lease(tid) is None
    assert events(store)[-1] == {"sweep": sid, "trial": tid, "kind": "state"}
    assert not store.release_trial(sid, tid, "owner-1", "again")  # no longer its owner's
    assert store.claim(sid, tid, "owner-3", "w", 30.0).attempt == 1  # the retry was not spent
    backend.check_books(store, sid)


@pytest.mark.parametrize(
    ("pending", "sweep", "final"),
    [
        ("stop", "running", "stopped"),
        ("cancel", "running", "canceled"),
        ("", "stopped", "canceled"),
        ("", "paused", "queued"),
    ],
)
def test_release_ends_a_trial_nobody_will_run_again(
    backend: Backend, store: Store, pending: str, sweep: str, final: str
) -> None:
    """A stop pending, or a sweep ending: the trial ends here instead of going back to the queue
    (a paused sweep's trial is requeued, to run on resume)."""
    sid = new_sweep(store)
    tid = running_trial(store, sid, "owner-1")
    if pending:
        store.request_stop(sid, tid, pending)
    if sweep != "running":
        store.sweep_action(sid, {"stopped": "stop", "paused": "pause"}[sweep])
    assert store.release_trial(sid, tid, "owner-1", "worker shut down")
    assert store.get_trial(tid)["state"] == final
    backend.check_books(store, sid)


def test_reap_leaves_a_lease_that_has_not_expired(backend: Backend, store: Store) -> None:
    sid = new_sweep(store)
    tid = running_trial(store, sid, lease_ttl=60.0)
    assert store.expired_leases() == []
    assert store.reap(sid, tid, 3, "worker lost") == "alive"
    assert store.get_trial(tid)["state"] == "running" and backend.lease(tid) is not None
    backend.check_books(store, sid)


def test_reap_requeues_within_retries_then_crashes(backend: Backend, store: Store) -> None:
    sid = new_sweep(store)
    tid = running_trial(store, sid, "dead-1")
    store.log_metrics(sid, tid, "dead-1", [0.5], ['{"loss": 0.5}'])
    backend.expire_lease(tid)
    assert store.expired_leases() == [tid]
    assert store.reap(sid, tid, 1, "worker lost (lease expired)") == "requeued"
    t = store.get_trial(tid)
    assert (
        t["state"] == "queued"
        and t["attempt"] == 1
        and t["reason"] == "retry after: worker lost (lease expired)"
    )
    assert t["history"] == [] and t["metric"] is None and t["steps"] == 0 and not t["published"]
    assert backend.lease(tid) is None and store.expired_leases() == []
    backend.check_books(store, sid)
    assert store.claim(sid, tid, "dead-2", "w", 30.0).attempt == 2
    backend.expire_lease(tid)
    assert store.reap(sid, tid, 1, "worker lost (lease expired)") == "crashed"
    t = store.get_trial(tid)
    assert (
        t["state"] == "crashed" and t["ended_at"] is not None and t["reason"] == "worker lost (lease expired)"
    )
    # the dead owners write nothing any more
    assert not store.finish_trial(sid, tid, "dead-2", "finished", 0)
    assert not store.log_metrics(sid, tid, "dead-2", [1.0], [])
    assert store.heartbeat(tid, "dead-2", 30.0) == (False, "")
    backend.check_books(store, sid)


def test_reap_of_a_trial_no_longer_running_only_drops_its_lease(backend: Backend, store: Store) -> None:
    sid = new_sweep(store)
    tid = running_trial(store, sid, "owner-1")
    store.finish_trial(sid, tid, "owner-1", "finished", 0)
    backend.raw.zadd(backend.keys.leases, {tid: 0})  # a stale entry
    assert store.reap(sid, tid, 3, "worker lost") == "gone"
    assert backend.lease(tid) is None and store.get_trial(tid)["state"] == "finished"
    backend.check_books(store, sid)


@pytest.mark.parametrize(
    ("pending", "sweep", "final"),
    [
        ("stop", "running", "stopped"),
        ("timeout", "running", "stopped"),
        ("cancel", "running", "canceled"),
        ("", "stopped", "canceled"),
        ("", "paused", "requeued"),
    ],
)
def test_reap_ends_a_trial_nobody_will_run_again(
    backend: Backend, store: Store, pending: str, sweep: str, final: str
) -> None:
    sid = new_sweep(store)
    tid = running_trial(store, sid, "owner-1")
    if pending:
        store.request_stop(sid, tid, pending)
    if sweep != "running":
        store.sweep_action(sid, {"stopped": "stop", "paused": "pause"}[sweep])
    backend.expire_lease(tid)
    assert store.reap(sid, tid, 3, "worker lost") == final
    assert store.get_trial(tid)["state"] == ("queued" if final == "requeued" else final)
    backend.check_books(store, sid)


def test_request_stop_reaches_the_worker_once(backend: Backend, store: Store) -> None:
    """A running trial's worker is told (on its stop list and its next heartbeat) once; a queued
    trial is canceled at once; an ended one is left as it is."""
    sid = new_sweep(store)
    tid = running_trial(store, sid, "owner-1")
    assert store.request_stop(sid, tid, "stop") == "requested"
    t = store.get_trial(tid)
    assert t["state"] == "running" and t["stop"] == "stop"
    assert store.read_trial_records(sid, tids=[tid])[0][1]["stop_requested_at"] is not None
    assert store.request_stop(sid, tid, "cancel") == "pending"
    assert store.wait_stop(tid, 1) == "stop" and store.wait_stop(tid, 0.01) is None
    (queued,) = store.create_trials(sid, [{}])
    assert store.request_stop(sid, queued, "timeout") == "canceled"
    t = store.get_trial(queued)
    assert t["state"] == "canceled" and t["reason"] == "timeout" and t["ended_at"] is not None
    assert store.request_stop(sid, queued, "stop") == "final"
    assert store.get_trial(queued)["reason"] == "timeout"
    backend.check_books(store, sid)


def test_notify_exited_wakes_the_watch_loop(store: Store) -> None:
    sid = new_sweep(store)
    tid = running_trial(store, sid)
    assert store.wait_stop(tid, 0.01) is None
    store.notify_exited(tid)
    store.request_stop(sid, tid)
    assert store.wait_stop(tid, 1) == EXITED and store.wait_stop(tid, 1) == "stop"


def test_pass_snapshot_reads_what_a_controller_pass_needs(backend: Backend, store: Store) -> None:
    """The active sweeps, each asked sweep's head and in-flight ids (None head: gone), the expired
    leases when asked, and the records of the trials named (missing ones left out)."""
    sid = new_sweep(store)
    other = new_sweep(store)
    tid = running_trial(store, sid, "owner-1")
    (queued,) = store.create_trials(sid, [{}])
    store.log_metrics(sid, tid, "owner-1", [0.5], [])
    store.set_sweep_fields(sid, warnings=["w"])
    backend.expire_lease(tid)
    active, heads, expired, trials = store.pass_snapshot([sid, "gone"], leases=True, trials=[tid, "gone-1"])
    assert active == sorted([sid, other]) and expired == [tid]
    head, inflight = heads[sid]
    assert head == {
        "state": "running",
        "best_value": None,
        "best_id": None,
        "warnings": ["w"],
        "end_reason": None,
    }
    assert inflight == {tid, queued} and heads["gone"] == (None, set())
    assert list(trials) == [tid] and trials[tid] == store.get_trial(tid)
    _, _, expired, trials = store.pass_snapshot([], trials=[tid], history=False)
    assert expired == [] and "history" not in trials[tid]


def test_rows_written_at_the_end_are_json_text(store: Store) -> None:
    """``rows`` are raw JSON texts, stored as given; ``values`` floats (any number, repr'd)."""
    sid = new_sweep(store)
    tid = running_trial(store, sid)
    row = json.dumps({"loss": 0.1, "nested": {"a": [1, 2]}, "text": "é"})
    store.finish_trial(sid, tid, "owner-1", "finished", 0, values=[1, 2.5], rows=[row])
    assert store.trial_rows(tid) == [json.loads(row)] and store.get_trial(tid)["history"] == [1.0, 2.5]
