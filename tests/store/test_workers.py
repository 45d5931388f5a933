"""Contract of the store's worker registry (``sweepq/store/workers.py``), on every backend: a
registered worker is alive while it heartbeats within ``ttl``, forgotten past ``4 * ttl``; an
agent's ``--count`` is never exceeded, however many of its processes take at once; Celery's queue
depths are read from kombu's lists under the namespace.

Worker heartbeats are scored on the caller's clock (``time.time()``), unlike leases (Redis's
clock): the tests age a heartbeat by writing an older score on that clock."""

from __future__ import annotations

import os
import threading
import time

from sweepq.store import Store
from tests.store.conftest import Backend


def test_a_registered_worker_is_alive_with_what_it_registered(backend: Backend, store: Store) -> None:
    store.register_worker("w1@gpu-box", 4, ["sweepq", "gpu"], gpus="0,1", ttl=30.0)
    store.register_worker("agent-1", 1, ["sweepq.sweep.abc"], sweep="abc", ttl=30.0)
    alive = {w["name"]: w for w in store.alive_workers(ttl=30.0)}
    assert sorted(alive) == ["agent-1", "w1@gpu-box"]
    w = alive["w1@gpu-box"]
    assert w["slots"] == 4 and w["queues"] == ["sweepq", "gpu"] and w["gpus"] == "0,1" and w["sweep"] == ""
    assert w["host"] == os.uname().nodename and w["pid"] == str(os.getpid())
    assert alive["agent-1"]["sweep"] == "abc" and alive["agent-1"]["slots"] == 1
    assert store.worker_registered("w1@gpu-box") and not store.worker_registered("nobody")
    assert 0 < backend.raw.ttl(backend.keys.worker("w1@gpu-box")) <= 120  # its record outlives 4 ttl at most


def test_a_worker_is_alive_while_it_heartbeats_and_forgotten_long_after(
    backend: Backend, store: Store
) -> None:
    store.register_worker("w1", 2, ["sweepq"], ttl=30.0)
    backend.raw.zadd(backend.keys.workers, {"w1": time.time() - 31})  # a heartbeat late by 1 s
    assert store.alive_workers(ttl=30.0) == []
    assert backend.raw.zscore(backend.keys.workers, "w1") is not None  # late, not forgotten
    store.worker_heartbeat("w1", ttl=30.0)
    assert [w["name"] for w in store.alive_workers(ttl=30.0)] == ["w1"]
    backend.raw.zadd(backend.keys.workers, {"w1": time.time() - 121})  # silent past 4 ttl
    assert store.alive_workers(ttl=30.0) == []
    assert backend.raw.zscore(backend.keys.workers, "w1") is None


def test_a_worker_whose_record_expired_is_not_alive(backend: Backend, store: Store) -> None:
    store.register_worker("w1", 2, ["sweepq"], ttl=30.0)
    store.register_worker("w2", 2, ["sweepq"], ttl=30.0)
    backend.raw.delete(backend.keys.worker("w1"))  # its hash expired (4 ttl), its heartbeat did not
    assert [w["name"] for w in store.alive_workers(ttl=30.0)] == ["w2"]
    assert not store.worker_registered("w1")


def test_unregister_takes_the_worker_out(store: Store) -> None:
    store.register_worker("w1", 2, ["sweepq"])
    store.register_worker("w2", 1, ["sweepq"])
    store.unregister_worker("w1")
    assert [w["name"] for w in store.alive_workers()] == ["w2"] and not store.worker_registered("w1")
    store.unregister_worker("never-registered")


def test_an_agent_takes_no_more_than_its_count(store: Store) -> None:
    """agent_take counts one more trial, or answers False and counts nothing past ``count``;
    agent_untake gives one back; agent_done counts the ended ones; forget_agent drops it all."""
    assert [store.agent_take("a1", 2) for _ in range(3)] == [True, True, False]
    store.agent_untake("a1")
    assert store.agent_take("a1", 2) and not store.agent_take("a1", 2)
    assert store.agent_take("a2", 1)  # counters are per agent
    assert store.agent_done_count("a1") == 0
    store.agent_done("a1")
    store.agent_done("a1")
    assert store.agent_done_count("a1") == 2 and store.agent_done_count("a2") == 0
    store.register_worker("a1", 1, ["sweepq.sweep.abc"], sweep="abc")
    store.forget_agent("a1")
    assert store.agent_done_count("a1") == 0 and not store.worker_registered("a1")
    assert store.alive_workers() == []
    assert store.agent_take("a1", 1)  # its count starts again


def test_concurrent_takes_never_exceed_the_count(backend: Backend, store: Store) -> None:
    """The pool processes of one agent take at once (each its own connection)."""
    count, n_procs, tries = 7, 4, 5
    stores = [backend.new_store() for _ in range(n_procs)]
    start = threading.Barrier(n_procs)
    taken = [0] * n_procs

    def take(i: int) -> None:
        start.wait(10)
        taken[i] = sum(stores[i].agent_take("agent", count) for _ in range(tries))

    threads = [threading.Thread(target=take, args=(i,), daemon=True) for i in range(n_procs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sum(taken) == count
    assert not store.agent_take("agent", count)


def test_queue_depths_sum_kombu_lists_of_each_priority(backend: Backend, store: Store) -> None:
    """LLEN of ``<ns>:celery:<queue>`` plus its priority lists (kombu's ``\\x06\\x16`` + 3, 6, 9);
    messages delivered and not yet acknowledged are counted apart."""
    prefix = backend.keys.celery_prefix
    backend.raw.rpush(prefix + "sweepq", "m1", "m2")
    backend.raw.rpush(prefix + "sweepq\x06\x166", "m3")
    backend.raw.rpush(prefix + "sweepq\x06\x169", "m4")
    backend.raw.rpush(prefix + "gpu\x06\x163", "m5")
    assert store.queue_depths(["sweepq", "gpu", "empty"]) == {"sweepq": 4, "gpu": 1, "empty": 0}
    assert store.queue_depths([]) == {}
    assert store.unacked_messages() == 0
    backend.raw.hset(prefix + "unacked", mapping={"tag1": "m6", "tag2": "m7"})
    assert store.unacked_messages() == 2
