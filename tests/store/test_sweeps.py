"""Contract of the store's sweeps (``sweepq/store/sweeps.py``), on every backend: a sweep is
created whole or not at all, its id is one sweepq could have made and is never reused, its actions
move it only along the allowed transitions, its counts are exact and its best trial follows the
metric's goal."""

from __future__ import annotations

import time

import pytest
import redis

from sweepq.errors import Conflict, NotFound
from sweepq.model import TRIAL_STATES
from sweepq.store import Store, StoreError
from tests.store.conftest import Backend, config, events, new_sweep, running_trial

STATUS_KEYS = {
    "id",
    "state",
    "method",
    "metric",
    "counts",
    "best",
    "name",
    "created_at",
    "ended_at",
    "trials",
    "warnings",
    "end_reason",
}


def test_a_new_sweep_is_running_listed_active_and_announced(backend: Backend, store: Store) -> None:
    cfg = config(name="lr search", metric={"name": "acc", "goal": "maximize"})
    t0 = time.time()  # creation is stamped on the caller's clock
    sid = store.create_sweep(cfg)
    assert store.sweep_exists(sid) and store.list_sweeps() == [sid] and store.active_sweeps() == [sid]
    sw = store.get_sweep(sid)
    assert sw["id"] == sid and sw["state"] == "running" and sw["config"] == cfg and sw["warnings"] == []
    assert sw["method"] == "random" and sw["metric_name"] == "acc" and sw["goal"] == "maximize"
    assert sw["name"] == "lr search" and t0 <= float(sw["created_at"]) <= time.time()
    assert store.sweep_config(sid) == cfg and store.sweep_state(sid) == "running"
    assert store.sweep_metric(sid) == ("acc", "maximize")
    assert store.counts(sid) == dict.fromkeys(TRIAL_STATES, 0) and store.n_trials(sid) == 0
    assert store.best(sid) is None
    assert events(store) == [{"sweep": sid, "trial": "", "kind": "sweep"}]


def test_sweep_ids_are_made_unless_given_and_listed_in_creation_order(store: Store) -> None:
    made = [store.create_sweep(config()) for _ in range(3)]
    given = store.create_sweep(config(), sweep_id="abc123")
    assert given == "abc123"
    assert all(len(s) == 8 and s.isalnum() and s.islower() for s in made) and len(set(made)) == 3
    assert store.list_sweeps() == [*made, given]
    assert store.active_sweeps() == sorted([*made, given])


@pytest.mark.parametrize("bad", ["ABC", "a:b", "a*", "a b", "s-1", "x" * 65, "é", "a\n"])
def test_create_sweep_refuses_an_id_sweepq_could_not_have_made(
    backend: Backend, store: Store, bad: str
) -> None:
    """Ids are spliced into key names: anything but 1-64 lowercase letters and digits is refused
    before Redis is touched."""
    with pytest.raises(Conflict, match="not a sweep id"):
        store.create_sweep(config(), sweep_id=bad)
    assert backend.ns_keys() == []


def test_create_sweep_refuses_a_taken_id_and_keeps_the_first(store: Store) -> None:
    first = config(name="first")
    store.create_sweep(first, sweep_id="taken")
    with pytest.raises(Conflict, match="already exists"):
        store.create_sweep(config(name="second"), sweep_id="taken")
    assert store.sweep_config("taken") == first and store.list_sweeps() == ["taken"]
    assert len(events(store)) == 1


def test_an_unknown_sweep_is_not_found(store: Store) -> None:
    assert not store.sweep_exists("nope") and store.sweep_state("nope") is None
    for read in (store.get_sweep, store.sweep_config, store.sweep_metric, store.status):
        with pytest.raises(NotFound):
            read("nope")
    with pytest.raises(NotFound):
        store.sweep_action("nope", "pause")


def test_status_has_the_documented_shape(backend: Backend, store: Store) -> None:
    """docs/dashboard.md, "JSON shapes": the documented keys (only ever added), counts of every
    trial state, ``best`` null until a run finished with the metric."""
    sid = new_sweep(store, name="shape", metric={"name": "loss", "goal": "minimize"})
    s = store.status(sid)
    assert set(s) == STATUS_KEYS
    assert s["id"] == sid and s["state"] == "running" and s["method"] == "random" and s["name"] == "shape"
    assert s["metric"] == {"name": "loss", "goal": "minimize"}
    assert s["counts"] == dict.fromkeys(TRIAL_STATES, 0) and s["best"] is None
    assert s["trials"] == 0 and s["ended_at"] is None and s["end_reason"] == "" and s["warnings"] == []
    assert isinstance(s["created_at"], float)
    tid = running_trial(store, sid, params={"x": 0.25})
    store.log_metrics(sid, tid, "owner-1", [0.5, 0.125], [])
    store.finish_trial(sid, tid, "owner-1", "finished", 0)
    store.create_trials(sid, [{"x": 0.75}])
    s = store.status(sid)
    assert s["best"] == {"run_id": tid, "value": 0.125, "params": {"x": 0.25}}
    assert s["trials"] == 2 and s["counts"]["finished"] == 1 and s["counts"]["queued"] == 1
    # a sweep without a metric says so with null
    assert store.status(store.create_sweep(config(metric=None)))["metric"] == {
        "name": None,
        "goal": "minimize",
    }


# What each action does from each state: the new state, or None where it is refused.
TRANSITIONS: dict[str, dict[str, str | None]] = {
    "pause": {
        "running": "paused",
        "paused": "paused",
        "stopped": None,
        "canceled": None,
        "failed": None,
        "finished": None,
    },
    "resume": {
        "running": "running",
        "paused": "running",
        "stopped": "running",
        "canceled": None,
        "failed": None,
        "finished": None,
    },
    "stop": {
        "running": "stopped",
        "paused": "stopped",
        "stopped": None,
        "canceled": None,
        "failed": None,
        "finished": None,
    },
    "cancel": {
        "running": "canceled",
        "paused": "canceled",
        "stopped": "canceled",
        "canceled": None,
        "failed": None,
        "finished": None,
    },
    "fail": {
        "running": "failed",
        "paused": "failed",
        "stopped": "failed",
        "canceled": None,
        "failed": None,
        "finished": None,
    },
    "explode": dict.fromkeys(("running", "paused", "stopped", "canceled", "failed", "finished")),
}


def _sweep_in(store: Store, state: str) -> str:
    sid = new_sweep(store)
    if state in ("paused", "stopped", "canceled"):
        store.sweep_action(sid, {"paused": "pause", "stopped": "stop", "canceled": "cancel"}[state])
    elif state == "failed":
        store.sweep_action(sid, "fail", reason="it broke")
    elif state == "finished":
        store.finish_sweep(sid, "finished", "done")
    assert store.sweep_state(sid) == state
    return sid


@pytest.mark.parametrize("action", sorted(TRANSITIONS))
def test_sweep_actions_follow_the_allowed_transitions(store: Store, action: str) -> None:
    """pause | resume | stop | cancel | fail return the new state; any other change (a final
    sweep, stopping a stopped one, an unknown action) is refused with one line naming the state,
    and the state stays."""
    for start, expect in TRANSITIONS[action].items():
        sid = _sweep_in(store, start)
        if expect is None:
            with pytest.raises(Conflict, match=f"cannot {action} sweep {sid}: it is {start}"):
                store.sweep_action(sid, action, reason="r")
            assert store.sweep_state(sid) == start, (action, start)
        else:
            assert store.sweep_action(sid, action, reason="r") == expect, (action, start)
            assert store.sweep_state(sid) == expect


def test_stop_cancels_queued_trials_and_lets_running_ones_end(backend: Backend, store: Store) -> None:
    sid = new_sweep(store)
    tid = running_trial(store, sid)
    queued = store.create_trials(sid, [{"x": 0.1}, {"x": 0.2}])
    assert store.sweep_action(sid, "stop") == "stopped"
    for t in store.get_trials(queued):
        assert t["state"] == "canceled" and t["reason"] == "sweep stopped" and t["ended_at"] is not None
    running = store.get_trial(tid)
    assert running["state"] == "running" and running["stop"] == ""
    assert store.wait_stop(tid, 0.01) is None  # nothing asked of its worker
    assert store.active_sweeps() == [sid]  # the controller still has its running trial to see end
    backend.check_books(store, sid)


@pytest.mark.parametrize("action", ["cancel", "fail"])
def test_cancel_and_fail_cancel_queued_trials_and_kill_running_ones(
    backend: Backend, store: Store, action: str
) -> None:
    sid = new_sweep(store)
    tid = running_trial(store, sid)
    (queued,) = store.create_trials(sid, [{"x": 0.1}])
    state = store.sweep_action(sid, action, reason="its trials all failed")
    assert state == {"cancel": "canceled", "fail": "failed"}[action]
    assert store.get_trial(queued)["state"] == "canceled"
    assert store.get_trial(queued)["reason"] == f"sweep {state}"
    assert store.get_trial(tid)["stop"] == "cancel" and store.wait_stop(tid, 1) == "cancel"
    assert store.status(sid)["end_reason"] == ("its trials all failed" if action == "fail" else "")
    backend.check_books(store, sid)


def test_resume_makes_an_ended_stopped_sweep_active_again(store: Store) -> None:
    sid = new_sweep(store)
    store.sweep_action(sid, "stop")
    store.finish_sweep(sid)
    assert store.active_sweeps() == [] and store.status(sid)["ended_at"] is not None
    assert store.sweep_action(sid, "resume") == "running"
    assert store.active_sweeps() == [sid] and store.status(sid)["ended_at"] is None


@pytest.mark.parametrize(
    ("before", "after"),
    [("running", "finished"), ("stopped", "stopped"), ("canceled", "canceled"), ("failed", "failed")],
)
def test_finish_sweep_ends_it_and_keeps_a_state_an_action_set(store: Store, before: str, after: str) -> None:
    """Only a running sweep takes the state given; a stopped or canceled one keeps its state; a
    failed one keeps its state and its reason. Each leaves the active set and gets an end time."""
    sid = _sweep_in(store, before)
    n = len(events(store))
    store.finish_sweep(sid, "finished", reason="run_cap 3 reached")
    s = store.status(sid)
    assert s["state"] == after and s["ended_at"] is not None and store.active_sweeps() == []
    assert s["end_reason"] == ("it broke" if before == "failed" else "run_cap 3 reached")
    assert events(store)[n:] == [{"sweep": sid, "trial": "", "kind": "sweep"}]


def test_finish_sweep_never_overwrites_a_cancel_that_came_first(
    backend: Backend, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A user cancels while the controller ends the sweep (its run_cap reached). Whenever the
    cancel lands (here: between any two requests finish_sweep sends, else after it), either it
    is refused because the sweep has ended, or it is accepted and the sweep stays canceled."""
    sid = new_sweep(store)
    user = backend.new_store()
    user.ping()
    store.ping()
    accepted: list[bool] = []  # one entry once the user's cancel has been tried
    send = redis.connection.AbstractConnection.send_packed_command
    sends = 0
    busy = False

    def cancel() -> None:
        nonlocal busy
        busy = True
        try:
            user.sweep_action(sid, "cancel")
            accepted.append(True)
        except StoreError:
            accepted.append(False)
        finally:
            busy = False

    def cancel_between_requests(
        conn: redis.connection.AbstractConnection, *args: object, **kw: object
    ) -> object:
        nonlocal sends
        if not busy and not accepted:  # one of finish_sweep's requests
            sends += 1
            if sends > 1:
                cancel()
        return send(conn, *args, **kw)

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", cancel_between_requests)
    store.finish_sweep(sid, "finished", reason="run_cap 3 reached")
    monkeypatch.undo()
    if not accepted:
        cancel()
    assert user.sweep_state(sid) == ("canceled" if accepted[0] else "finished"), (accepted, sends)


@pytest.mark.parametrize("goal", ["minimize", "maximize"])
def test_best_is_the_finished_trial_with_the_best_summary_value(store: Store, goal: str) -> None:
    """The summary value is the last one logged; only finished trials count (a failed trial's
    better value does not), and a finished trial that never logged the metric is not a candidate."""
    sid = new_sweep(store, metric={"name": "loss", "goal": goal})
    outcomes = [
        ("finished", [9.0, 3.0]),
        ("finished", [1.0, 5.0]),
        ("failed", [0.0 if goal == "minimize" else 99.0]),
        ("finished", []),
        ("finished", [4.0]),
    ]
    tids = []
    for i, (state, values) in enumerate(outcomes):
        tid = running_trial(store, sid, params={"i": i})
        store.finish_trial(sid, tid, "owner-1", state, 0, goal=goal, values=values)
        tids.append(tid)
    best = store.best(sid)
    expect = 0 if goal == "minimize" else 1  # summaries 3, 5, -, -, 4
    assert best == {"run_id": tids[expect], "value": [3.0, 5.0][expect], "params": {"i": expect}}


def test_counts_stay_exact_through_every_transition(backend: Backend, store: Store) -> None:
    sid = new_sweep(store)
    a, b, c, d, e, f = store.create_trials(sid, [{"i": i} for i in range(6)])
    backend.check_books(store, sid)
    for tid in (a, b, c, d, e):
        assert store.claim(sid, tid, f"o{tid}", "w", 60).ok
    backend.check_books(store, sid)
    store.finish_trial(sid, a, f"o{a}", "finished", 0)
    store.finish_trial(sid, b, f"o{b}", "failed", 1)
    store.release_trial(sid, c, f"o{c}", "worker shut down")
    backend.expire_lease(d)
    assert store.reap(sid, d, 0, "worker lost") == "crashed"
    store.request_stop(sid, e)
    store.finish_trial(sid, e, f"o{e}", "stopped", -15)
    store.request_stop(sid, f)
    backend.check_books(store, sid)
    assert store.counts(sid) == {
        "queued": 1,
        "running": 0,
        "finished": 1,
        "failed": 1,
        "crashed": 1,
        "stopped": 1,
        "canceled": 1,
    }
    assert store.n_trials(sid) == 6


def test_sweep_fields_and_lookups(store: Store) -> None:
    """``set_sweep_fields`` stores lists and dicts as JSON (warnings come back decoded);
    ``find_active_by`` finds an active sweep by a field; ``forget_active`` takes one off the active
    set; ``sweep_states`` and ``sweep_queues`` read many sweeps at once."""
    a = store.create_sweep(config(queue="gpu"))
    b = store.create_sweep(config())
    store.set_sweep_fields(a, digest="d1", warnings=["metric loss never logged"])
    assert store.get_sweep(a)["warnings"] == ["metric loss never logged"]
    assert store.status(a)["warnings"] == ["metric loss never logged"]
    assert store.find_active_by("digest", "d1") == a and store.find_active_by("digest", "d2") is None
    tid = running_trial(store, b)
    store.sweep_action(b, "pause")
    states = store.sweep_states([a, b, "gone"])
    zero = dict.fromkeys(TRIAL_STATES, 0)
    assert states == [("running", zero), ("paused", {**zero, "running": 1}), (None, zero)]
    assert store.sweep_queues([a, b, "gone"]) == ["gpu", "sweepq"]
    store.forget_active(a)
    assert store.active_sweeps() == [b] and store.find_active_by("digest", "d1") is None
    assert store.get_trial(tid)["state"] == "running"


def test_a_multi_objective_sweep_keeps_its_objectives_and_its_front(store: Store) -> None:
    """Each trial's objective values are what its worker last sent (fenced like the metric);
    the front is the finished trials no other beats on every objective, best first on the first;
    status counts it; a sweep of one metric has neither."""
    import json

    sid = new_sweep(store, metric=[{"name": "acc", "goal": "maximize"}, {"name": "size"}])
    assert store.sweep_objectives(sid) == [
        {"name": "acc", "goal": "maximize"},
        {"name": "size", "goal": "minimize"},
    ]
    values = {"a": (0.9, 10.0), "b": (0.8, 5.0), "c": (0.8, 6.0), "d": (0.95, None)}
    ids = {}
    for key, (acc, size) in values.items():
        tid = running_trial(store, sid, owner=f"o-{key}")
        ids[key] = tid
        sent = {"acc": acc} if size is None else {"acc": acc, "size": size}
        assert store.log_metrics(sid, tid, f"o-{key}", [acc], [json.dumps(sent)], objectives=json.dumps(sent))
        # a stale owner's values are refused, as its metrics are
        assert not store.log_metrics(sid, tid, "stale", [0.0], ["{}"], objectives=json.dumps({"acc": 1.0}))
        assert store.finish_trial(sid, tid, f"o-{key}", "finished", 0, goal="maximize")
    assert store.get_trial(ids["a"])["objectives"] == {"acc": 0.9, "size": 10.0}
    front = store.pareto_front(sid)
    assert [r["id"] for r in front] == [ids["a"], ids["b"]]
    assert front[0]["objectives"] == {"acc": 0.9, "size": 10.0} and front[0]["metric"] == 0.9
    st = store.status(sid)
    assert st["pareto_size"] == 2 and st["objectives"] == store.sweep_objectives(sid)
    assert st["best"]["run_id"] == ids["d"]  # the first objective's best, which lacks size
    one = new_sweep(store)
    assert store.sweep_objectives(one) == [] and store.pareto_front(one) == []
    assert "pareto_size" not in store.status(one)
