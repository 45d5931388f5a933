"""Contract of the store's trials (``sweepq/store/trials.py``), on every backend: created queued in
batches never past ``run_cap`` (exactly once each, whatever the number of concurrent creators),
read back by one parser whichever way they are read, with their logged rows, their history of the
metric (capped, keeping the first values) and their output stream."""

from __future__ import annotations

import json
import threading
import time

import pytest

from sweepq.errors import NotFound
from sweepq.store import OUTPUT_CAP, OUTPUT_TTL, ROWS_CAP, Store
from sweepq.store.records import WEB_FIELDS
from tests.store.conftest import Backend, events, new_sweep, running_trial

TRIAL_KEYS = {
    "id",
    "sweep",
    "n",
    "state",
    "params",
    "metric",
    "steps",
    "queued_at",
    "started_at",
    "ended_at",
    "worker",
    "exit_code",
    "attempt",
    "reason",
    "log_tail",
    "stop",
    "published",
    "queue",
    "gpus",
    "published_at",
    "log_path",
    "objectives",
}
RUN_KEYS = {
    "id",
    "state",
    "params",
    "metric",
    "steps",
    "started_at",
    "ended_at",
    "worker",
    "exit_code",
    "attempt",
    "reason",
    "gpus",
}


def test_created_trials_are_queued_numbered_and_announced(backend: Backend, store: Store) -> None:
    sid = new_sweep(store)
    t0 = time.time()  # trials are stamped on the caller's clock
    tids = store.create_trials(sid, [{"x": 0.1}, {"x": 0.2}], queues=["gpu"])
    assert tids == [f"{sid}-1", f"{sid}-2"]
    first, second = store.get_trials(tids)
    assert set(first) == TRIAL_KEYS | {"history"}
    assert (
        first["state"] == "queued"
        and first["sweep"] == sid
        and first["n"] == 1
        and first["params"] == {"x": 0.1}
    )
    assert (
        first["attempt"] == 0 and first["steps"] == 0 and first["metric"] is None and first["history"] == []
    )
    assert t0 <= first["queued_at"] <= time.time() and first["started_at"] is None and first["worker"] is None
    assert first["published"] and first["queue"] == "gpu" and first["published_at"] == first["queued_at"]
    assert not second["published"] and second["queue"] == "" and second["n"] == 2
    assert store.inflight_ids(sid) == set(tids) and store.trial_ids(sid) == tids
    assert store.counts(sid)["queued"] == 2 and store.n_trials(sid) == 2
    assert events(store)[-1] == {"sweep": sid, "trial": "", "kind": "created"}
    assert store.create_trials(sid, []) == []


def test_run_cap_bounds_the_trials_of_a_sweep(backend: Backend, store: Store) -> None:
    sid = new_sweep(store)
    assert len(store.create_trials(sid, [{"i": i} for i in range(3)], run_cap=5)) == 3
    assert store.create_trials(sid, [{"i": i} for i in range(3, 7)], run_cap=5) == [f"{sid}-4", f"{sid}-5"]
    assert store.create_trials(sid, [{"i": 9}], run_cap=5) == []
    assert store.n_trials(sid) == 5
    assert [t["params"]["i"] for t in store.get_trials(store.trial_ids(sid))] == [0, 1, 2, 3, 4]
    assert len(store.create_trials(sid, [{"i": 10}], run_cap=None)) == 1  # None: no bound
    backend.check_books(store, sid)


@pytest.mark.parametrize("state", ["paused", "stopped", "canceled", "finished"])
def test_a_sweep_that_is_not_running_gets_no_trials(store: Store, state: str) -> None:
    """No trial is created unless the sweep is running; the suggestion time is recorded anyway."""
    sid = new_sweep(store)
    if state == "finished":
        store.finish_sweep(sid)
    else:
        store.sweep_action(sid, {"paused": "pause", "stopped": "stop", "canceled": "cancel"}[state])
    assert store.create_trials(sid, [{"x": 0.5}], suggest_time=0.25) == []
    assert store.n_trials(sid) == 0 and store.record_suggest_times() == [0.25]


def test_suggestion_times_are_recorded_in_order(store: Store) -> None:
    sid = new_sweep(store)
    store.create_trials(sid, [], suggest_time=0.5)  # nothing suggested, still timed
    store.create_trials(sid, [{"x": 0.1}], suggest_time=0.125)
    store.create_trials(sid, [{"x": 0.2}])
    assert store.record_suggest_times() == [0.5, 0.125] and store.record_suggest_times(limit=1) == [0.125]
    assert store.n_trials(sid) == 2


def test_concurrent_creators_create_each_trial_exactly_once_within_run_cap(
    backend: Backend, store: Store
) -> None:
    """Several controllers (each its own connection) creating at once: never more than run_cap
    trials, numbered 1..run_cap with no gap, each id handed to exactly one creator."""
    sid = new_sweep(store)
    cap, n_creators = 23, 4
    stores = [backend.new_store() for _ in range(n_creators)]
    start = threading.Barrier(n_creators)
    got: list[list[str]] = [[] for _ in range(n_creators)]
    errors: list[BaseException] = []

    def create(i: int) -> None:
        try:
            start.wait(10)
            for _ in range(cap):  # bounded: a store that ignored run_cap would never say no
                ids = stores[i].create_trials(sid, [{"by": i}] * 3, run_cap=cap)
                if not ids:
                    break
                got[i].extend(ids)
        except BaseException as exc:  # the assertion below shows it
            errors.append(exc)

    threads = [threading.Thread(target=create, args=(i,), daemon=True) for i in range(n_creators)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    created = [tid for ids in got for tid in ids]
    assert sorted(created) == sorted(f"{sid}-{n}" for n in range(1, cap + 1))
    assert store.trial_ids(sid) == [f"{sid}-{n}" for n in range(1, cap + 1)]
    by = {t["id"]: t["params"]["by"] for t in store.get_trials(created)}
    assert all(by[tid] == i for i, ids in enumerate(got) for tid in ids)
    backend.check_books(store, sid)


def test_trials_are_read_in_the_order_asked_and_missing_ones_left_out(store: Store) -> None:
    sid = new_sweep(store)
    a, b, c = store.create_trials(sid, [{"i": 0}, {"i": 1}, {"i": 2}])
    assert [t["id"] for t in store.get_trials([c, "gone-1", a, b])] == [c, a, b]
    assert "history" not in store.get_trial(a, history=False) and store.get_trial(a)["history"] == []
    with pytest.raises(NotFound):
        store.get_trial(f"{sid}-99")
    assert store.trial_ids(sid, 1, 1) == [b] and store.trial_ids(sid, 1) == [b, c]
    runs = store.get_runs([b, "gone-1", a])
    assert [r["id"] for r in runs] == [b, a] and all(set(r) == RUN_KEYS for r in runs)
    assert runs[1] == store.run_json(store.get_trial(a))  # the run shape of the full record


def test_get_trials_reads_a_sweep_of_more_than_one_chunk(store: Store) -> None:
    sid = new_sweep(store)
    tids = store.create_trials(sid, [{"i": i} for i in range(1203)])
    got = store.get_trials(tids[::-1], history=False)
    assert [t["params"]["i"] for t in got] == list(range(1202, -1, -1))
    assert [r["id"] for r in store.get_runs(tids)] == tids


def _a_sweep_of_every_kind(store: Store) -> tuple[str, list[str]]:
    """Trials in each state and shape a reader meets: queued and published, running with metrics
    and a stop pending, finished with a log tail, failed with an exit code, never claimed."""
    sid = new_sweep(store)
    tids = store.create_trials(
        sid,
        [{"x": 0.1, "nested": {"a": [1, 2]}}, {"x": 0.2}, {"x": 0.3}, {}, {"x": "text"}],
        queues=["gpu", "", "", "", ""],
    )
    for i, tid in enumerate(tids[1:4], start=1):
        assert store.claim(sid, tid, f"o{i}", f"worker-{i}", 60, gpus=str(i)).ok
        store.log_metrics(sid, tid, f"o{i}", [1.0 / i, 0.5 / i], [json.dumps({"loss": 1.0 / i, "_step": 0})])
    store.request_stop(sid, tids[1], "stop")
    store.finish_trial(sid, tids[2], "o2", "finished", 0, log_tail="done\n")
    store.finish_trial(sid, tids[3], "o3", "failed", 3, reason="exit code 3")
    return sid, tids


def test_read_trial_records_agrees_with_get_trials(store: Store) -> None:
    """The dashboard's paged read is the same parse as every other read: by id (missing ones left
    out) or by rank range in creation order, each record equal to get_trials' on the fields the
    dashboard shows, plus ``stop_requested_at`` and ``duration``."""
    sid, tids = _a_sweep_of_every_kind(store)
    full = {t["id"]: t for t in store.get_trials(tids, history=False)}
    shown = set(TRIAL_KEYS) - {"log_tail", "published_at", "log_path"}  # what the paged read leaves out
    assert shown < set(WEB_FIELDS)
    by_id = store.read_trial_records(sid, tids=[tids[4], "gone-1", *tids[:4]])
    assert [tid for tid, _ in by_id] == [tids[4], *tids[:4]]
    for tid, rec in by_id:
        assert {f: rec[f] for f in shown} == {f: full[tid][f] for f in shown}, tid
        s, e = full[tid]["started_at"], full[tid]["ended_at"]
        assert rec["duration"] == (e - s if s is not None and e is not None else None)
    recs = dict(by_id)
    assert recs[tids[1]]["stop"] == "stop" and recs[tids[1]]["stop_requested_at"] is not None
    assert recs[tids[0]]["stop_requested_at"] is None
    assert store.read_trial_records(sid, ranks=(1, 3)) == by_id[2:5]
    assert store.read_trial_records(sid, ranks=(0, -1)) == [*by_id[1:], by_id[0]]
    assert store.read_trial_records(sid, tids=[]) == []


def test_read_trial_records_survives_params_that_are_not_json(backend: Backend, store: Store) -> None:
    """A params value that does not splice as JSON (a damaged record) is read one by one: the
    record comes back with empty params, the others whole."""
    sid, tids = _a_sweep_of_every_kind(store)
    backend.raw.hset(backend.keys.trial(tids[0]), "params", "{not json")
    for got in (store.read_trial_records(sid, tids=tids), store.read_trial_records(sid, ranks=(0, -1))):
        recs = dict(got)
        assert list(recs) == tids and recs[tids[0]]["params"] == {} and recs[tids[0]]["queue"] == "gpu"
        assert recs[tids[1]]["params"] == {"x": 0.2} and recs[tids[3]]["exit_code"] == 3


def test_rows_keep_the_last_rows_cap_and_steps_count_them_all(store: Store) -> None:
    sid = new_sweep(store)
    tid = running_trial(store, sid)
    rows = [json.dumps({"loss": float(i), "_step": i}) for i in range(ROWS_CAP + 3)]
    assert store.log_metrics(sid, tid, "owner-1", [], rows)
    kept = store.trial_rows(tid)
    assert (
        len(kept) == ROWS_CAP and kept[0] == {"loss": 3.0, "_step": 3} and kept[-1]["_step"] == ROWS_CAP + 2
    )
    assert store.trial_rows(tid, limit=2) == [json.loads(r) for r in rows[-2:]]
    assert store.get_trial(tid)["steps"] == ROWS_CAP + 3
    assert store.rows_of([tid], last=1) == [[json.loads(rows[-1])]]


def test_rows_that_are_not_json_objects_are_left_out_of_reads(store: Store) -> None:
    sid = new_sweep(store)
    a, b = running_trial(store, sid, "oa"), running_trial(store, sid, "ob")
    store.log_metrics(sid, a, "oa", [], ['{"loss": 1}', "not json", "[1, 2]", '{"loss": 2}'])
    assert store.trial_rows(a) == [{"loss": 1}, [1, 2], {"loss": 2}]  # any JSON value
    assert store.rows_of([a, b, "gone-1"]) == [[{"loss": 1}, {"loss": 2}], [], []]  # objects only


def test_history_keeps_the_first_values_and_the_summary_follows_the_last(
    backend: Backend, history_cap: int
) -> None:
    """HISTORY_CAP (5 here): the stopping rules' early rungs read the first values, so those are
    kept; the summary ``metric`` is the last value logged, past the cap too, finish included."""
    store = backend.new_store()  # made after the cap was lowered: its scripts carry it
    sid = new_sweep(store)
    tid = running_trial(store, sid)
    store.log_metrics(sid, tid, "owner-1", [1.0, 2.0, 3.0], [])
    store.log_metrics(sid, tid, "owner-1", [4.0, 5.0, 6.0, 7.0], [])
    t = store.get_trial(tid)
    assert (
        t["history"] == [1.0, 2.0, 3.0, 4.0, 5.0] and t["metric"] == 7.0 and len(t["history"]) == history_cap
    )
    store.finish_trial(sid, tid, "owner-1", "finished", 0, values=[8.0, 0.5])
    t = store.get_trial(tid)
    assert t["history"] == [1.0, 2.0, 3.0, 4.0, 5.0] and t["metric"] == 0.5
    assert store.best(sid) == {"run_id": tid, "value": 0.5, "params": {"x": 0.5}}


def test_history_keeps_values_exactly(store: Store) -> None:
    sid = new_sweep(store)
    tid = running_trial(store, sid)
    values = [0.1, 1e-300, -2.5e300, 1 / 3, 12345678.123456789, 0.0, -0.0]
    store.log_metrics(sid, tid, "owner-1", values, [])
    t = store.get_trial(tid)
    assert t["history"] == values and t["metric"] == values[-1]


def test_logged_keys_name_what_the_first_rows_hold(store: Store) -> None:
    """The metric names of the first ``rows`` rows, sorted, private ``_`` names and rows that
    are not JSON objects left out."""
    sid = new_sweep(store)
    a, b = running_trial(store, sid, "oa"), running_trial(store, sid, "ob")
    store.log_metrics(
        sid, a, "oa", [], ['{"acc": 1, "_step": 0}', "not json", '{"val/loss": 2}', '{"late": 3}']
    )
    store.log_metrics(sid, b, "ob", [], ["[1, 2]", '{"lr": 0.1, "_runtime": 4}'])
    assert store.logged_keys([a, b]) == ["acc", "late", "lr", "val/loss"]
    assert store.logged_keys([a, b], rows=2) == ["acc", "lr"]
    assert store.logged_keys([]) == [] and store.logged_keys(["gone-1"]) == []


def test_output_is_read_back_in_order_after_any_entry(backend: Backend, store: Store) -> None:
    sid = new_sweep(store)
    tid = running_trial(store, sid)
    store.append_output(tid, [("out", "epoch 1"), ("err", "warning: x"), ("out", "")])
    got = store.read_output(tid)
    assert [(s, text) for _, s, text in got] == [("out", "epoch 1"), ("err", "warning: x"), ("out", "")]
    assert store.read_output(tid, after=got[0][0])[0][2] == "warning: x"
    assert store.read_output(tid, after=got[-1][0]) == []
    assert store.read_output(tid, after=got[-1][0], block_ms=10) == []
    assert 0 < backend.raw.ttl(backend.keys.trial_output(tid)) <= OUTPUT_TTL
    assert store.read_output(f"{sid}-99") == []


def test_output_is_capped(store: Store) -> None:
    """The stream keeps its last lines, about OUTPUT_CAP of them: trimming is approximate
    (MAXLEN ~), whole stream nodes of 100 entries at a time, so up to 99 more may stay (fakeredis
    trims the same way as Redis)."""
    sid = new_sweep(store)
    tid = running_trial(store, sid)
    lines = [("out", f"line {i}") for i in range(OUTPUT_CAP + 150)]
    store.append_output(tid, lines)
    got = store.read_output(tid)
    while page := store.read_output(tid, after=got[-1][0]):  # read_output answers 1000 at most
        got += page
    assert OUTPUT_CAP <= len(got) < OUTPUT_CAP + 100
    assert [x[2] for x in got] == [text for _, text in lines[-len(got) :]]


def test_unpublish_and_mark_published(store: Store) -> None:
    """A queued trial marked published, then unpublished, is sent again by the controller (the
    ``unpublished`` event names it); a trial that is not queued is left as it is."""
    sid = new_sweep(store)
    a, b = store.create_trials(sid, [{"i": 0}, {"i": 1}])
    store.mark_published_many([(a, "gpu"), (b, "cpu")])
    ta, tb = store.get_trials([a, b])
    assert (
        ta["published"] and ta["queue"] == "gpu" and tb["queue"] == "cpu" and ta["published_at"] is not None
    )
    assert store.claim(sid, b, "ob", "w", 60).ok
    store.unpublish(a)
    store.unpublish(b)
    assert not store.get_trial(a)["published"] and store.get_trial(b)["published"]
    assert events(store)[-1] == {"sweep": sid, "trial": a, "kind": "unpublished"}
    store.mark_published_many([])
