"""Redis restarts mid-sweep (a private redis-server with the append-only file on): workers,
running trials and the controller ride it out; the sweep ends with nothing lost."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import wait_for
from tests.faults.conftest import (
    OwnRedis,
    check_sweep,
    describe,
    make_config,
    records,
    sweep_done,
    wait_registered,
)

pytestmark = [pytest.mark.redis, pytest.mark.faults]


@pytest.fixture
def own_controller(own_store: Any) -> Iterator[Any]:
    from sweepq.controller import Controller

    ctl = Controller(own_store, tick=0.2)
    th = threading.Thread(target=ctl.run, daemon=True)
    th.start()
    yield ctl
    ctl.stop_event.set()
    th.join(15)


def _sweep_through_restart(
    own_redis: OwnRedis,
    own_store: Any,
    start_worker: Any,
    rec_dir: Any,
    down_s: float,
    n: int = 12,
    steps: int = 12,
    min_done: int = 2,
    sig: int = signal.SIGTERM,
    dead_at: dict[int, float] | None = None,
) -> tuple[str, list[dict[str, Any]]]:
    store = own_store
    sid = store.create_sweep(
        make_config(
            run_cap=n,
            parameters={"x": {"min": 0.0, "max": 1.0}, "steps": {"value": steps}, "sleep": {"value": 0.1}},
        )
    )
    env = {"SWEEPQ_TEST_RECORD": str(rec_dir)}
    for _ in range(2):
        w = start_worker(concurrency=2, env=env, wait=False)
        wait_registered(store, w.name, w)
    wait_for(
        lambda: store.counts(sid)["finished"] >= min_done and store.counts(sid)["running"] >= 2,
        60,
        what="sweep under way",
        info=lambda: describe(store, sid),
    )
    running_before = store.counts(sid)["running"]
    own_redis.restart(down_s=down_s, sig=sig)
    assert running_before >= 2
    wait_for(
        lambda: sweep_done(store, sid),
        90,
        what="sweep end after the restart",
        info=lambda: describe(store, sid),
    )
    trials = check_sweep(store, sid, rec_dir, n_trials=n, dead_at=dead_at)
    return sid, trials


def test_redis_restart_mid_sweep_nothing_lost(
    own_redis, own_store, own_controller, start_worker, rec_dir, pid_watch
):  # noqa: ANN001
    """Redis restarted (1 s down). On a loaded machine a lease can go unrenewed for the fence share
    of its TTL across the restart (a batch's next trial is claimed before it starts): the worker
    then kills the trial and hands it back, and the killed execution has no end in its record,
    so its death time comes from ``pid_watch`` (never earlier than the death: no overlap hidden)."""
    sid, trials = _sweep_through_restart(
        own_redis, own_store, start_worker, rec_dir, down_s=1.0, dead_at=pid_watch.dead_at
    )
    assert [t["state"] for t in trials] == ["finished"] * 12, describe(own_store, sid)
    # every trial's full metric history survived the restart (AOF) or was buffered and re-sent
    assert all(len(t["history"]) == 12 and t["steps"] == 12 for t in trials)
    ran = {r["run"] for r in records(rec_dir)}
    assert ran == {t["id"] for t in trials}
    assert own_redis.restarts == 1


def test_redis_outage_longer_than_lease(
    own_redis,
    own_store,
    own_controller,
    start_worker,
    rec_dir,  # noqa: ANN001
    pid_watch,
):
    """Redis down for longer than the lease TTL (5 s vs 3 s): a worker cannot tell an outage from a
    partition, so once its lease has gone unrenewed for the fence share of the TTL it stops its
    trial and hands it back when Redis answers again; the trial then runs again from the start. A
    hand-back spends no retry, and no trial ever runs twice at once."""
    sid, trials = _sweep_through_restart(
        own_redis,
        own_store,
        start_worker,
        rec_dir,
        down_s=5.0,
        n=4,
        steps=80,
        min_done=0,
        dead_at=pid_watch.dead_at,
    )
    assert all(t["state"] == "finished" for t in trials), describe(own_store, sid)
    # neither the outage nor the hand-back cost a trial a retry
    assert all(t["attempt"] == 1 for t in trials), describe(own_store, sid)
    runs = [r["run"] for r in records(rec_dir)]
    assert any(runs.count(t["id"]) > 1 for t in trials), "no trial was fenced during a 5 s outage"


def test_redis_crash_sigkill_mid_sweep(
    own_redis, own_store, own_controller, start_worker, rec_dir, pid_watch
):  # noqa: ANN001
    """Redis SIGKILLed (a crash: the last second of the AOF, appendfsync everysec, may be lost) and
    started again: the sweep still ends with exactly run_cap trials, none run twice at once (a
    fenced execution's death time from ``pid_watch``, as in the restart test)."""
    sid, trials = _sweep_through_restart(
        own_redis, own_store, start_worker, rec_dir, down_s=1.0, sig=signal.SIGKILL, dead_at=pid_watch.dead_at
    )
    assert all(t["state"] == "finished" for t in trials), describe(own_store, sid)
