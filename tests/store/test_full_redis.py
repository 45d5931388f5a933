"""Contract of the store on a full Redis (maxmemory reached, policy noeviction): REAL SERVER ONLY.

A writing script is refused whole, before it writes anything; the reading scripts still run; the
store names the cause in one line; once memory is freed the same calls go through.

Why only the real server: fakeredis has no maxmemory (no CONFIG, no INFO) and gets the scripts
without their ``#!lua`` flag line (test_events.py shows both), so a full server cannot be played
on it. These tests are therefore parametrized over the real backend alone (id ``redis-only``):
they are not skipped on fakeredis, they do not exist there. They fill a private redis-server (on
a unix socket in a temporary folder), never the server other tests share.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import redis

from sweepq.store import OUT_OF_MEMORY, Keys, Store, scripts
from tests.store.conftest import config, running_trial

NS = "sqfull"


@dataclass
class FullRedis:
    """A private server that a test may fill (``fill``) and free (``free``)."""

    url: str
    raw: redis.Redis  # bytes: DUMP gives every key's exact content

    def fill(self) -> None:
        """Used memory over maxmemory, with nothing evicted: what a full server looks like."""
        self.raw.config_set("maxmemory-policy", "noeviction")
        self.raw.config_set("maxmemory", 1)
        assert self.raw.info("memory")["used_memory"] > 1

    def free(self) -> None:
        self.raw.config_set("maxmemory", 0)

    def snapshot(self) -> dict[bytes, bytes | None]:
        """Every key of the namespace and its exact content."""
        return {k: self.raw.dump(k) for k in sorted(self.raw.scan_iter(match=f"{NS}:*".encode()))}


@pytest.fixture(params=[pytest.param("redis", id="redis-only", marks=pytest.mark.redis)])
def full_redis() -> Iterator[FullRedis]:
    binary = shutil.which("redis-server") or shutil.which("valkey-server")
    if not binary:
        pytest.fail("a full Redis is played on a private redis-server, and none is installed")
    folder = tempfile.mkdtemp(prefix="sqfull", dir="/tmp")  # a unix socket path must be short
    sock = f"{folder}/redis.sock"
    proc = subprocess.Popen(
        [binary, "--port", "0", "--unixsocket", sock, "--save", "", "--appendonly", "no", "--dir", folder],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    raw = redis.Redis(unix_socket_path=sock)
    try:
        for _ in range(200):
            try:
                raw.ping()
                break
            except redis.exceptions.ConnectionError:
                assert proc.poll() is None, "redis-server exited"
                time.sleep(0.02)
        if int(raw.info("server")["redis_version"].split(".")[0]) < 7:
            pytest.fail("script flags need Redis >= 7: this server cannot refuse a script whole")
        yield FullRedis(f"unix://{sock}", raw)
    finally:
        raw.close()
        proc.kill()
        proc.wait(10)
        shutil.rmtree(folder, ignore_errors=True)


def _refused(store: Store, exc: BaseException) -> None:
    """What a refused write raises, and the one line the store makes of it."""
    assert isinstance(exc, redis.exceptions.OutOfMemoryError), repr(exc)
    assert str(store.unavailable(exc)) == OUT_OF_MEMORY.replace("Redis", f"Redis at {store.url}", 1)


def test_a_full_redis_refuses_each_write_whole_and_still_answers_reads(full_redis: FullRedis) -> None:
    store = Store(url=full_redis.url, namespace=NS)
    sid = store.create_sweep(config())
    tid = running_trial(store, sid, "owner-1")
    (queued,) = store.create_trials(sid, [{"x": 0.25}])
    store.log_metrics(sid, tid, "owner-1", [0.5], ['{"loss": 0.5}'])
    full_redis.raw.zadd(Keys(NS).leases, {tid: 0})  # its lease expired: the reaper would take it
    assert store.acquire_leader("ctl", 60_000)
    before = full_redis.snapshot()
    full_redis.fill()
    writes = {
        "create_sweep": lambda: store.create_sweep(config(), sweep_id="newsweep"),
        "create_trials": lambda: store.create_trials(sid, [{"x": 0.1}], suggest_time=0.1),
        "claim": lambda: store.claim(sid, queued, "owner-2", "w", 30.0),
        "heartbeat": lambda: store.heartbeat(tid, "owner-1", 30.0),
        "metrics": lambda: store.log_metrics(sid, tid, "owner-1", [0.25], ['{"loss": 0.25}']),
        "finish": lambda: store.finish_trial(sid, tid, "owner-1", "finished", 0, values=[0.1]),
        "finish_and_claim": lambda: store.finish_and_claim(
            sid, tid, "owner-1", "finished", 0, claim_next=(queued, "o2", "w", 30.0, "", "")
        ),
        "reap": lambda: store.reap(sid, tid, 3, "worker lost"),
        "release": lambda: store.release_trial(sid, tid, "owner-1", "shutdown"),
        "request_stop": lambda: store.request_stop(sid, tid),
        "sweep_action": lambda: store.sweep_action(sid, "cancel"),
        "unpublish": lambda: store.unpublish(queued),
        "release_leader": lambda: store.release_leader("ctl"),
    }
    for name, write in writes.items():
        with pytest.raises(redis.exceptions.ResponseError) as refused:
            write()
        _refused(store, refused.value)
        assert full_redis.snapshot() == before, f"{name} wrote to a full Redis"
    # reads, the reading scripts included, still answer, and say why nothing moves
    assert store.expired_leases() == [tid]
    assert [t for t, _ in store.read_trial_records(sid, ranks=(0, -1))] == [tid, queued]
    assert store.get_trial(tid)["history"] == [0.5]
    status = store.status(sid)
    assert store.memory_full(max_age=0) == OUT_OF_MEMORY and OUT_OF_MEMORY in status["warnings"]
    # freed, the same calls go through: nothing was lost or half-done
    full_redis.free()
    assert store.memory_full(max_age=0) is None
    assert store.reap(sid, tid, 3, "worker lost") == "requeued"
    assert store.claim(sid, queued, "owner-2", "w", 30.0).ok
    assert store.create_sweep(config(), sweep_id="newsweep") == "newsweep"


def test_every_writing_script_is_refused_before_it_runs(full_redis: FullRedis) -> None:
    """Whatever its keys and arguments: the flag, not the script's first command, decides; and
    every reading script runs."""
    registered = scripts.register(full_redis.raw)
    full_redis.fill()
    for name in sorted(set(scripts.NAMES) - scripts.READ_SCRIPTS):
        with pytest.raises(redis.exceptions.OutOfMemoryError):
            registered[name](keys=[f"{NS}:k{i}" for i in range(9)], args=["x"] * 12)
    assert registered["expired"](keys=[Keys(NS).leases]) == []
    assert (
        registered["read_trials"](args=[NS, "ids", "", "", 1, "id", f"{NS}-1"])
        == b'[[null,"sqfull-1",[false]]]'
    )


def test_without_flags_a_full_redis_judges_a_script_by_its_first_write(
    full_redis: FullRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The difference the flags make, shown with the scripts as fakeredis (and Redis < 7) run them,
    without the ``#!lua`` line: Redis then refuses a memory-growing command only while the script
    has written nothing. A claim (its first write grows a hash) is still refused whole; a reap (its
    first write removes the lease) runs whole past maxmemory: the trial is requeued while Redis is
    full, which the flagged script refuses."""
    monkeypatch.setattr(scripts, "WRITE", "")
    monkeypatch.setattr(scripts, "READ_ONLY", "")
    store = Store(url=full_redis.url, namespace=NS)
    sid = store.create_sweep(config())
    tid = running_trial(store, sid, "owner-1")
    (queued,) = store.create_trials(sid, [{}])
    full_redis.raw.zadd(Keys(NS).leases, {tid: 0})
    full_redis.fill()
    with pytest.raises(redis.exceptions.OutOfMemoryError):
        store.claim(sid, queued, "owner-2", "w", 30.0)
    assert store.get_trial(queued)["state"] == "queued"
    assert store.reap(sid, tid, 3, "worker lost") == "requeued"
    assert store.get_trial(tid)["state"] == "queued"
