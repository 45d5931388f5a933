"""Contract of the store's coordination (``sweepq/store/events.py``), on every backend: the change
stream names each change in order, one controller at a time holds the leader lease, a namespace is
deleted without touching another; and what the server says of itself, where fakeredis differs
from Redis (INFO, script flags) and each backend's answer is asserted."""

from __future__ import annotations

from sweepq.store import Store, scripts
from tests.store.conftest import Backend, new_sweep, running_trial


def test_the_change_stream_names_each_change_in_order(store: Store) -> None:
    assert store.last_event_id() == "0-0" and store.wait_events("0-0", 0.01) == ("0-0", [])
    sid = new_sweep(store)
    last, got = store.wait_events("0-0", 1.0)
    assert got == [{"sweep": sid, "trial": "", "kind": "sweep"}] and last == store.last_event_id()
    assert store.wait_events(last, 0.01) == (last, [])  # nothing new: the same position back
    tid = running_trial(store, sid)
    store.log_metrics(sid, tid, "owner-1", [0.5], [])
    store.finish_trial(sid, tid, "owner-1", "finished", 0)
    store.sweep_action(sid, "pause")
    last2, got = store.wait_events(last, 1.0)
    assert [(e["kind"], e["trial"]) for e in got] == [
        ("created", ""),
        ("started", tid),
        ("metric", tid),
        ("state", tid),
        ("sweep", ""),
    ]
    assert all(e["sweep"] == sid for e in got) and last2 == store.last_event_id() and last2 > last


def test_events_since_and_sweep_changes_read_in_one_request(store: Store) -> None:
    """(the oldest entry, the entries after ``last_id``); ``sweep_changes`` adds the sweep's number
    of trials and whether it still exists."""
    assert store.events_since("0-0") == ([], [])
    sid = new_sweep(store)
    mark = store.last_event_id()
    store.create_trials(sid, [{}, {}])
    oldest, new = store.events_since(mark)
    assert oldest[0][1] == {"sweep": sid, "trial": "", "kind": "sweep"}
    assert [fields for _, fields in new] == [{"sweep": sid, "trial": "", "kind": "created"}]
    oldest2, new2, n, exists = store.sweep_changes(sid, mark)
    assert (oldest2, new2, n, exists) == (oldest, new, 2, True)
    assert store.sweep_changes("gone", store.last_event_id()) == (oldest, [], 0, False)


def test_one_controller_at_a_time_holds_the_leader_lease(backend: Backend, store: Store) -> None:
    """acquire_leader takes a free lease or renews the caller's own; release_leader frees only the
    caller's own; leader_held says whether anyone holds it."""
    other = backend.new_store()
    assert not store.leader_held()
    assert store.acquire_leader("ctl-a", 1000)
    assert not other.acquire_leader("ctl-b", 60_000) and store.leader_held()
    assert 0 < backend.raw.pttl(backend.keys.leader) <= 1000
    assert store.acquire_leader("ctl-a", 60_000)  # renewed, for the new TTL
    assert 1000 < backend.raw.pttl(backend.keys.leader) <= 60_000
    other.release_leader("ctl-b")  # not its lease: nothing happens
    assert store.leader_held() and not other.acquire_leader("ctl-b", 60_000)
    store.release_leader("ctl-a")
    assert not store.leader_held()
    assert other.acquire_leader("ctl-b", 60_000) and not store.acquire_leader("ctl-a", 60_000)
    backend.raw.delete(backend.keys.leader)  # ctl-b's lease expired
    assert store.acquire_leader("ctl-a", 60_000)


def test_delete_namespace_deletes_only_its_own_keys(backend: Backend, store: Store) -> None:
    neighbour = backend.new_store(namespace=f"{backend.ns}x")
    try:
        mine, theirs = new_sweep(store), new_sweep(neighbour)
        running_trial(store, mine)
        running_trial(neighbour, theirs)
        assert store.delete_namespace() > 0
        assert backend.ns_keys() == []
        assert store.list_sweeps() == [] and neighbour.list_sweeps() == [theirs]
        assert neighbour.counts(theirs)["running"] == 1
        assert store.delete_namespace() == 0
    finally:
        neighbour.delete_namespace()


def test_the_server_answers(store: Store) -> None:
    assert store.ping() is True


def test_what_the_server_says_of_itself(backend: Backend, store: Store) -> None:
    """INFO: a real Redis answers it (its uptime; memory not full while it has room), fakeredis has
    no INFO command: the store reads that as a server up for long (1e9 s) and never full, so a
    reader never blocks on it."""
    if backend.real:
        assert 0 <= store.redis_uptime() < 1e9
        assert store.redis_uptime() == float(backend.raw.info("server")["uptime_in_seconds"])
    else:
        assert store.redis_uptime() == 1e9
    assert store.memory_full() is None and store.status(new_sweep(store))["warnings"] == []


def test_scripts_carry_flags_only_where_the_server_reads_them(backend: Backend) -> None:
    """Redis >= 7 reads a script's ``#!lua`` line: a writing script so marked is refused whole by a
    full server, a ``no-writes`` one still runs. fakeredis (like Redis < 7) does not parse the line,
    so it gets the scripts without it: a full server cannot be played on fakeredis (see
    test_full_redis.py, real server only)."""
    reads_flags = backend.real and int(backend.raw.info("server")["redis_version"].split(".")[0]) >= 7
    registered = scripts.register(backend.raw)
    assert set(registered) == set(scripts.NAMES)
    for name, script in registered.items():
        text = script.script if isinstance(script.script, str) else script.script.decode()
        flag = text.split("\n", 1)[0] if text.startswith("#!") else ""
        if not reads_flags:
            assert flag == "", name
        elif name in scripts.READ_SCRIPTS:
            assert flag == "#!lua flags=no-writes", name
        else:
            assert flag == "#!lua", name
        assert text.endswith(scripts.source(name))
