"""Controller logic on fakeredis (fast): the same Store code, Lua included, no worker processes.

Every behaviour here also has a real-Redis, real-worker test under tests/integration.
"""

from __future__ import annotations

import json

import fakeredis
import pytest

from sweepq.config import load_config
from sweepq.controller import Controller
from sweepq.store import Store


@pytest.fixture
def st() -> Store:
    return Store(client=fakeredis.FakeRedis(decode_responses=True), namespace="ut")


def cfg(**over):  # noqa: ANN003, ANN201
    c = {
        "method": "random",
        "program": "p.py",
        "metric": {"name": "loss"},
        "parameters": {"x": {"min": 0.0, "max": 1.0}},
        "run_cap": 6,
    }
    c.update(over)
    return load_config({k: v for k, v in c.items() if v is not None})


class FakeWorkers:
    """Claims whatever is queued and finishes it with a metric (a worker, minus processes)."""

    def __init__(self, st: Store, sid: str) -> None:
        self.st, self.sid, self.published = st, sid, []

    def publish(self, sid: str, tid: str, queue: str, attempt: int) -> None:
        self.published.append((tid, queue))

    def work(self, value=lambda t: t["params"].get("x", 1.0), state: str = "finished") -> int:  # noqa: ANN001
        n = 0
        for tid in sorted(self.st.inflight_ids(self.sid)):
            if self.st.claim(self.sid, tid, "o", "w", 10).ok:
                t = self.st.get_trial(tid)
                v = value(t)
                if v is not None:
                    self.st.log_metrics(self.sid, tid, "o", [v], [json.dumps({"loss": v})])
                self.st.finish_trial(self.sid, tid, "o", state, 0 if state == "finished" else 1)
                n += 1
        return n


def drive(ctl: Controller, fw: FakeWorkers, rounds: int = 50, **kw) -> None:  # noqa: ANN003
    for _ in range(rounds):
        ctl.step()
        fw.work(**kw)
        if fw.sid not in fw.st.active_sweeps():
            return


def test_run_cap_is_exact_and_sweep_finishes(st: Store) -> None:
    sid = st.create_sweep(cfg(run_cap=7))
    fw = FakeWorkers(st, sid)
    drive(Controller(st, publish=fw.publish), fw)
    assert st.n_trials(sid) == 7 and st.counts(sid)["finished"] == 7
    s = st.status(sid)
    assert s["state"] == "finished" and s["end_reason"] == "run_cap 7 reached"
    assert len({tid for tid, _ in fw.published}) == 7


def test_two_controllers_never_double_suggest(st: Store) -> None:
    sid = st.create_sweep(cfg(method="grid", run_cap=None, parameters={"x": {"values": [1, 2, 3, 4, 5]}}))
    fw = FakeWorkers(st, sid)
    a, b = Controller(st, publish=fw.publish), Controller(st, publish=fw.publish)
    for _ in range(30):
        for c in (a, b):
            c._lead()
            if c.is_leader:
                c.step()
        fw.work()
    assert a.is_leader != b.is_leader  # exactly one leads
    xs = sorted(t["params"]["x"] for t in st.get_trials(st.trial_ids(sid)))
    assert xs == [1, 2, 3, 4, 5]
    assert st.status(sid)["state"] == "finished"


def test_max_concurrent_bounds_queue(st: Store) -> None:
    sid = st.create_sweep(cfg(run_cap=20, max_concurrent=3))
    st.register_worker("big", 16, ["sweepq"])
    ctl = Controller(st, publish=lambda *a: None)
    ctl.step()
    assert len(st.inflight_ids(sid)) == 3


def test_default_target_is_worker_slots_plus_one(st: Store) -> None:
    sid = st.create_sweep(cfg(run_cap=20))
    ctl = Controller(st, publish=lambda *a: None)
    ctl.step()
    assert len(st.inflight_ids(sid)) == 1  # nobody listening yet: one trial ready
    st.register_worker("w1", 4, ["sweepq"])
    st.register_worker("other", 8, ["gpu"])  # serves another queue: does not count
    ctl._workers_at = 0
    ctl.step()
    assert len(st.inflight_ids(sid)) == 5


def test_reaper_requeues_then_crashes(st: Store) -> None:
    sid = st.create_sweep(cfg(run_cap=1, retries=1))
    fw = FakeWorkers(st, sid)
    ctl = Controller(st, publish=fw.publish, reap_every=0)  # look for expired leases on every pass
    ctl.step()
    (tid,) = st.inflight_ids(sid)
    assert st.claim(sid, tid, "dead-1", "w", 0.01).ok
    st._r.zadd(st.keys.leases, {tid: 0})
    ctl.step()
    t = st.get_trial(tid)
    assert t["state"] == "queued" and "worker lost" in t["reason"]
    assert [p for p in fw.published if p[0] == tid] and len([p for p in fw.published if p[0] == tid]) == 2
    assert st.claim(sid, tid, "dead-2", "w", 0.01).ok
    st._r.zadd(st.keys.leases, {tid: 0})
    ctl.step()
    t = st.get_trial(tid)
    assert t["state"] == "crashed" and t["attempt"] == 2
    assert st.counts(sid)["crashed"] == 1 and st.counts(sid)["running"] == 0
    # the dead owners cannot write anything any more (fencing)
    assert not st.finish_trial(sid, tid, "dead-2", "finished", 0)
    assert not st.log_metrics(sid, tid, "dead-2", [1.0], ["{}"])


def test_target_stops_new_trials(st: Store) -> None:
    sid = st.create_sweep(cfg(run_cap=50, metric={"name": "loss", "target": 0.5}))
    fw = FakeWorkers(st, sid)
    drive(Controller(st, publish=fw.publish), fw, value=lambda t: 0.1)
    s = st.status(sid)
    assert s["state"] == "finished" and "target" in s["end_reason"] and s["trials"] <= 2


def test_pause_stop_cancel(st: Store) -> None:
    sid = st.create_sweep(cfg(run_cap=50))
    st.register_worker("w1", 2, ["sweepq"])
    fw = FakeWorkers(st, sid)
    ctl = Controller(st, publish=fw.publish)
    ctl.step()
    st.sweep_action(sid, "pause")
    queued = st.inflight_ids(sid)
    # a delivery arriving while paused does not start the trial, and it is re-sent on resume
    tid = sorted(queued)[0]
    assert st.claim(sid, tid, "o", "w", 10).status == "paused"
    n = st.n_trials(sid)
    ctl.step()
    assert st.n_trials(sid) == n
    st.sweep_action(sid, "resume")
    before = len(fw.published)
    ctl.step()
    assert any(p[0] == tid for p in fw.published[before:])
    running = sorted(st.inflight_ids(sid))[0]
    assert st.claim(sid, running, "o", "w", 10).ok
    st.sweep_action(sid, "cancel")
    assert st.get_trial(running)["stop"] == "cancel"
    assert st._r.lpop(st.keys.trial_stopq(running)) == "cancel"
    c = st.counts(sid)
    assert c["queued"] == 0 and c["running"] == 1
    st.finish_trial(sid, running, "o", "canceled", -15)
    ctl.step()
    assert sid not in st.active_sweeps() and st.status(sid)["state"] == "canceled"
    with pytest.raises(Exception, match="cannot resume"):
        st.sweep_action(sid, "resume")


def test_missing_metric_is_a_warning(st: Store) -> None:
    sid = st.create_sweep(cfg(run_cap=3))
    fw = FakeWorkers(st, sid)
    drive(Controller(st, publish=fw.publish), fw, value=lambda t: None)
    w = st.status(sid)["warnings"]
    assert any("never logged" in x for x in w)
    assert st.best(sid) is None


def test_missing_metric_warning_names_what_was_logged(st: Store) -> None:
    sid = st.create_sweep(cfg(run_cap=2))
    ctl = Controller(st, publish=lambda *a: None)
    ctl.step()
    for tid in sorted(st.inflight_ids(sid)):
        assert st.claim(sid, tid, "o", "w", 10).ok
        st.finish_trial(
            sid, tid, "o", "finished", 0, rows=[json.dumps({"val_loss": 0.5, "acc": 0.9, "_step": 0})]
        )
    ctl.step()
    (w,) = [x for x in st.status(sid)["warnings"] if "never logged" in x]
    assert (
        w
        == "metric 'loss' was never logged by any ended trial; they logged 'acc', 'val_loss': check the name"
    ), w


def test_restart_carries_on(st: Store) -> None:
    sid = st.create_sweep(cfg(run_cap=6))
    fw = FakeWorkers(st, sid)
    c1 = Controller(st, publish=fw.publish)
    c1.step()
    fw.work()
    c1.step()
    # c1 dies (no release); a new one takes over after the lease, rebuilding from Redis
    st._r.delete(st.keys.leader)
    c2 = Controller(st, publish=fw.publish)
    drive(c2, fw)
    assert st.n_trials(sid) == 6 and st.counts(sid)["finished"] == 6


@pytest.mark.parametrize("action, final", [("cancel", "canceled"), ("stop", "canceled")])
def test_worker_lost_while_sweep_ends_is_not_requeued(st: Store, action: str, final: str) -> None:
    sid = st.create_sweep(cfg(run_cap=1, retries=3))
    ctl = Controller(st, publish=lambda *a: None, reap_every=0)
    ctl.step()
    (tid,) = st.inflight_ids(sid)
    assert st.claim(sid, tid, "dead", "w", 0.01).ok
    st.sweep_action(sid, action)
    st._r.zadd(st.keys.leases, {tid: 0})
    ctl.step()
    ctl.step()
    assert st.get_trial(tid)["state"] == final
    assert sid not in st.active_sweeps()
    assert st.counts(sid)["running"] == 0 and st.counts(sid)["queued"] == 0


def test_early_stop_pending_when_worker_dies_ends_stopped(st: Store) -> None:
    sid = st.create_sweep(cfg(run_cap=1, retries=3))
    ctl = Controller(st, publish=lambda *a: None, reap_every=0)
    ctl.step()
    (tid,) = st.inflight_ids(sid)
    assert st.claim(sid, tid, "dead", "w", 0.01).ok
    assert st.request_stop(sid, tid, "stop") == "requested"
    st._r.zadd(st.keys.leases, {tid: 0})
    ctl.step()
    assert st.get_trial(tid)["state"] == "stopped"


def test_release_when_sweep_canceled_ends_the_trial(st: Store) -> None:
    sid = st.create_sweep(cfg(run_cap=2))
    ctl = Controller(st, publish=lambda *a: None)
    ctl.step()
    tid = sorted(st.inflight_ids(sid))[0]
    assert st.claim(sid, tid, "o", "w", 10).ok
    st.sweep_action(sid, "stop")
    assert st.release_trial(sid, tid, "o", "worker shut down")
    assert st.get_trial(tid)["state"] == "canceled"
    ctl.step()
    assert sid not in st.active_sweeps()


def test_failed_send_is_unmarked_and_sent_again(st: Store) -> None:
    """Trials are created already marked published (one round trip less per pass); a send that
    fails must unmark them, so the next pass sends them again instead of stranding them."""
    sid = st.create_sweep(cfg(run_cap=3))
    st.register_worker("w1", 2, ["sweepq"])
    sent: list[str] = []
    broken = {"on": True}

    def publish(s: str, tid: str, queue: str, attempt: int = 0) -> None:
        if broken["on"]:
            raise ConnectionError("broker down")
        sent.append(tid)

    ctl = Controller(st, publish=publish)
    with pytest.raises(ConnectionError):
        ctl.step()
    queued = st.get_trials(sorted(st.inflight_ids(sid)), history=False)
    assert len(queued) == 3 and all(not t["published"] for t in queued)
    broken["on"] = False
    ctl.views.clear()  # as run() does after a failed pass
    ctl.step()
    assert sorted(sent) == sorted(t["id"] for t in queued)
    assert all(
        t["published"] and t["queue"] == "sweepq"
        for t in st.get_trials(sorted(st.inflight_ids(sid)), history=False)
    )


def test_publish_batch_sends_each_trial_once(st: Store) -> None:
    """The controller hands a pass's trials to the publisher's batch call (one round trip)."""
    sid = st.create_sweep(cfg(run_cap=5))
    st.register_worker("w1", 4, ["sweepq"])
    batches: list[list[tuple[str, str, str, int]]] = []

    class Batching:
        def __call__(self, *a: object) -> None:
            raise AssertionError("a pass of several trials must go through many()")

        def many(self, items: list[tuple[str, str, str, int]]) -> None:
            batches.append(list(items))

    Controller(st, publish=Batching()).step()
    assert len(batches) == 1 and len(batches[0]) == 5
    assert sorted(tid for _, tid, _, _ in batches[0]) == sorted(st.inflight_ids(sid))
    assert {q for _, _, q, _ in batches[0]} == {"sweepq"}


def test_ended_trial_hash_keeps_only_what_it_reports(st: Store) -> None:
    """A finished trial drops its lease/publish bookkeeping and empty fields (memory per trial on a
    stock Redis), keeps its record intact, and a stale owner still cannot write to it."""
    sid = st.create_sweep(cfg(run_cap=1))
    Controller(st, publish=lambda *a: None).step()
    (tid,) = st.inflight_ids(sid)
    assert st.claim(sid, tid, "own", "w1", 30).ok
    assert st.finish_trial(sid, tid, "own", "finished", 0, values=[0.25], rows=['{"loss": 0.25}'])
    fields = set(st._r.hkeys(st.keys.trial(tid)))
    assert not fields & {
        "owner",
        "lease_ttl",
        "published",
        "published_at",
        "stop",
        "gpus",
        "reason",
        "log_tail",
    }
    t = st.get_trial(tid)
    assert (t["state"], t["metric"], t["history"], t["exit_code"], t["worker"]) == (
        "finished",
        0.25,
        [0.25],
        0,
        "w1",
    )
    assert st.trial_rows(tid) == [{"loss": 0.25}] and st.best(sid)["run_id"] == tid
    assert not st.finish_trial(sid, tid, "own", "failed", 1) and not st.log_metrics(
        sid, tid, "own", [1.0], ["{}"]
    )


class MultiPublisher:
    """A publisher that takes several trials per message, as the real one does (``batches``)."""

    batches = True

    def __init__(self) -> None:
        self.messages: list[tuple[str, tuple[str, ...], str, int]] = []

    def __call__(self, sid: str, tids: object, queue: str, attempt: int = 0) -> None:
        self.many([(sid, tids, queue, attempt)])

    def many(self, items: list[tuple[str, object, str, int]]) -> None:
        for sid, tids, queue, attempt in items:
            self.messages.append((sid, (tids,) if isinstance(tids, str) else tuple(tids), queue, attempt))


def _run_messages(st: Store, sid: str, pub: MultiPublisher, done: int, seconds: float) -> int:
    """Work the messages sent since ``done`` as a worker would: each trial of a message claimed
    and finished in order, the claim skipping trials no longer queued; ``seconds``: run time."""
    for _, tids, _, _ in pub.messages[done:]:
        for tid in tids:
            if st.claim(sid, tid, "o", "w", 10).ok:
                st.finish_trial(sid, tid, "o", "finished", 0, values=[0.5], rows=['{"loss": 0.5}'])
                t0 = float(st._r.hget(st.keys.trial(tid), "ended_at"))
                st._r.hset(st.keys.trial(tid), mapping={"started_at": t0 - seconds})
    return len(pub.messages)


@pytest.mark.parametrize(
    ("method", "seconds", "batched"),
    [
        ("random", 0.003, True),
        ("grid", 0.003, True),
        ("random", 5.0, False),  # long trials: one per message, as ever
        ("bayes", 0.003, False),  # every bayes suggestion should see the results before it
    ],
)
def test_short_trials_are_batched_and_each_runs_once(
    st: Store, method: str, seconds: float, batched: bool
) -> None:
    params = {"x": {"values": list(range(120))}} if method == "grid" else {"x": {"min": 0.0, "max": 1.0}}
    sid = st.create_sweep(cfg(method=method, run_cap=120, parameters=params))
    st.register_worker("w1", 2, ["sweepq"])
    pub = MultiPublisher()
    ctl = Controller(st, publish=pub)
    done = 0
    for _ in range(400):
        ctl.step()
        done = _run_messages(st, sid, pub, done, seconds)
        if sid not in st.active_sweeps():
            break
    s = st.status(sid)
    assert s["state"] == "finished" and s["counts"]["finished"] == 120 and st.n_trials(sid) == 120
    sent = [tid for _, tids, _, _ in pub.messages for tid in tids]
    assert sorted(sent) == sorted(st.trial_ids(sid)), "every trial sent exactly once"
    sizes = [len(tids) for _, tids, _, _ in pub.messages]
    if batched:
        assert max(sizes) > 1 and ctl.stats["batched"] == sum(n for n in sizes if n > 1)
        # the first pass (3 messages: 2 slots and a spare) knows no trial's length: one each;
        # the next knows 3 finished trials, which allow 4 to a message (2 ** (3 - 1))
        assert sizes[:3] == [1] * 3, "no batch before trials have shown how long they take"
        assert 1 < sizes[3] <= 4, "a batch larger than three finished trials allow"
        assert max(sizes) <= 32
    else:
        assert max(sizes) == 1 and ctl.stats["batched"] == 0


def test_batch_size_follows_trial_length_and_caps() -> None:
    from sweepq.controller import SweepView
    from sweepq.controller.capacity import batch_size

    ctl = Controller(
        Store(client=fakeredis.FakeRedis(decode_responses=True), namespace="bs"),
        publish=MultiPublisher(),
        batch_max=32,
    )
    view = SweepView(config={})
    rnd = {"method": "random"}
    assert batch_size(rnd, view, ctl.batch_max) == 1  # nothing measured yet
    view.durations.append(0.003)
    assert batch_size(rnd, view, ctl.batch_max) == 1  # one trial says too little
    # from two finished trials on, batches grow with the evidence: 2, 4, 8, 16, then what fits
    for size in (2, 4, 8, 16):
        view.durations.append(0.003)
        assert batch_size(rnd, view, ctl.batch_max) == size
    view.durations.extend([0.003] * 2)
    assert batch_size(rnd, view, ctl.batch_max) == 16  # 16 fit in the 50 ms window
    view.durations.extend([0.001] * 24)
    assert batch_size(rnd, view, ctl.batch_max) == 32  # 50 would fit: capped at 32
    view.durations.clear()
    view.durations.extend([0.01] * 8)
    assert batch_size(rnd, view, ctl.batch_max) == 5
    view.durations.clear()
    view.durations.extend([0.001, 0.001, 0.001])
    assert batch_size(rnd, view, ctl.batch_max) == 4  # 50 would fit; three trials allow 4
    view.durations.extend([0.2] * 32)
    assert batch_size(rnd, view, ctl.batch_max) == 1  # trials got long: back to one per message
    assert (
        batch_size(rnd, view, Controller(ctl.store, publish=lambda *a: None).batch_max) == 1
    )  # a single-trial publisher


def test_max_concurrent_bounds_batches(st: Store) -> None:
    sid = st.create_sweep(cfg(run_cap=60, max_concurrent=6))
    st.register_worker("w1", 2, ["sweepq"])
    pub = MultiPublisher()
    ctl = Controller(st, publish=pub)
    done = 0
    for _ in range(300):
        ctl.step()
        assert len(st.inflight_ids(sid)) <= 6
        done = _run_messages(st, sid, pub, done, 0.001)
        if sid not in st.active_sweeps():
            break
    assert st.status(sid)["counts"]["finished"] == 60
    assert 1 < max(len(t) for _, t, _, _ in pub.messages) <= 3  # two messages fit under the cap


def test_failed_send_of_a_batch_unmarks_all_its_trials(st: Store) -> None:
    sid = st.create_sweep(cfg(run_cap=100))
    st.register_worker("w1", 1, ["sweepq"])
    pub = MultiPublisher()
    ctl = Controller(st, publish=pub)
    done = 0
    while ctl.stats["batched"] == 0:
        ctl.step()
        done = _run_messages(st, sid, pub, done, 0.001)
    # the sent batch, unworked: its trials are published; then the broker goes down
    broken = MultiPublisher()
    broken.many = lambda items: (_ for _ in ()).throw(ConnectionError("broker down"))  # type: ignore[method-assign]
    ctl.publish = broken
    done = _run_messages(st, sid, pub, done, 0.001)  # slots free up: the next pass sends a new batch
    with pytest.raises(ConnectionError):
        ctl.step()
    queued = st.get_trials(sorted(st.inflight_ids(sid)), history=False)
    assert len(queued) > 1 and all(t["state"] == "queued" and not t["published"] for t in queued)


def test_finish_and_claim_in_one_round_trip_and_claim_is_idempotent_per_owner(st: Store) -> None:
    """The worker claims a batch's next trial with the previous one's final write; a claim asked
    again by the same owner (its reply lost with a connection) is granted again, anyone else's not."""
    sid = st.create_sweep(cfg(run_cap=3))
    a, b, c = st.create_trials(sid, [{"x": 0.1}, {"x": 0.2}, {"x": 0.3}], run_cap=3, queues=["sweepq"] * 3)
    assert st.claim(sid, a, "oa", "w", 10).ok
    done, nxt = st.finish_and_claim(
        sid,
        a,
        "oa",
        "finished",
        0,
        values=[0.5],
        rows=['{"loss": 0.5}'],
        claim_next=(b, "ob", "w", 10.0, "", ""),
    )
    assert done and nxt.ok and nxt.params == {"x": 0.2} and nxt.attempt == 1
    assert st.get_trial(a)["state"] == "finished" and st.get_trial(b)["state"] == "running"
    again = st.claim(sid, b, "ob", "w", 10)
    assert again.ok and again.attempt == 1  # same owner: granted, no new attempt
    assert st.claim(sid, b, "other", "w", 10).status == "not_queued"
    # a fenced finish (not the owner) still lets the claim of the next trial through
    done, nxt = st.finish_and_claim(sid, b, "stale", "finished", 0, claim_next=(c, "oc", "w", 10.0, "", ""))
    assert not done and nxt.ok and st.counts(sid)["running"] == 2


def test_batches_go_to_the_agent_bound_to_the_sweep(st: Store) -> None:
    """`sweepq run` / `sweepq agent`: the sweep's own agent has room for whole batches (one
    running and one waiting per slot), so no batched trial lands on a queue nobody serves."""
    sid = st.create_sweep(cfg(run_cap=150))
    st.register_worker("agent-1", 2, [st.keys.agent_queue(sid)], sweep=sid)
    pub = MultiPublisher()
    ctl = Controller(st, publish=pub)
    done = 0
    for _ in range(300):
        ctl.step()
        done = _run_messages(st, sid, pub, done, 0.002)
        if sid not in st.active_sweeps():
            break
    assert st.status(sid)["counts"]["finished"] == 150
    assert ctl.stats["batched"] > 0
    assert {q for _, _, q, _ in pub.messages} == {st.keys.agent_queue(sid)}


def test_fill_plan_sends_whole_batches_and_smaller_last_ones() -> None:
    """Batches come whole while slots still hold queued ones; before ``run_cap`` the last trials
    are split so that the slots end together; without batches the target is simply topped up."""
    from sweepq.controller.capacity import fill_plan

    assert fill_plan({}, 10, 3, 8, 1) == (5, 1)
    assert fill_plan({}, 10, 14, 16, 4) == (0, 4)  # 2 short of the target: wait for a whole batch
    assert fill_plan({}, 10, 0, 16, 4) == (16, 4)
    assert fill_plan({"run_cap": 100}, 94, 8, 16, 8) == (6, 3)  # the 6 left: 2 messages of 3
    assert fill_plan({"run_cap": 100}, 100, 2, 16, 4)[0] == 0
