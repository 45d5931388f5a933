"""Worker faults: SIGKILL mid-trial, a trial longer than the broker's visibility timeout, warm
and cold shutdown. Real Redis, real `celery worker` processes, a real controller."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import wait_for
from tests.faults.conftest import (
    check_sweep,
    describe,
    make_config,
    records,
    running_trial,
    sweep_done,
    watch_dead,
    worker_outputs,
)

pytestmark = [pytest.mark.redis, pytest.mark.faults]


def _long(steps: int, sleep: float = 0.1) -> dict[str, Any]:
    return {"x": {"min": 0.0, "max": 1.0}, "steps": {"value": steps}, "sleep": {"value": sleep}}


def _started(store: Any, sid: str, rec: Path) -> dict[str, Any] | None:
    """A running trial whose program has started (its record exists)."""
    t = running_trial(store, sid)()
    if t and any(r["run"] == t["id"] for r in records(rec)):
        return t
    return None


def _started_on(store: Any, sid: str, rec: Path, worker: str) -> dict[str, Any] | None:
    ran = {r["run"] for r in records(rec)}
    for t in store.get_trials(sorted(store.inflight_ids(sid)), history=False):
        if t["state"] == "running" and t["worker"] == worker and t["id"] in ran:
            return t
    return None


def _kill_worker_of(
    store: Any, sid: str, rec: Path, workers: list[Any]
) -> tuple[dict[str, Any], Any, dict[int, float]]:
    t = wait_for(
        lambda: _started(store, sid, rec), 60, what="a started trial", info=lambda: describe(store, sid)
    )
    victim = next(w for w in workers if w.name == t["worker"])
    pids = [r["pid"] for r in records(rec) if r["run"] == t["id"]]
    victim.kill(signal.SIGKILL)  # the whole process group: main process and pool children
    victim.proc.wait(10)
    # PDEATHSIG: the pool child's death takes the training process with it
    dead = watch_dead(pids, timeout=10)
    return t, victim, dead


def test_sigkill_worker_mid_trial_retried_elsewhere(store, start_worker, controller, rec_dir):  # noqa: ANN001
    sid = store.create_sweep(make_config(run_cap=4, retries=1, parameters=_long(15)))
    env = {"SWEEPQ_TEST_RECORD": str(rec_dir)}
    workers = [start_worker(concurrency=1, env=env) for _ in range(2)]
    controller()
    t, victim, dead = _kill_worker_of(store, sid, rec_dir, workers)
    wait_for(lambda: sweep_done(store, sid), 90, what="sweep end", info=lambda: describe(store, sid))
    trials = check_sweep(store, sid, rec_dir, expect={"finished": 4}, n_trials=4, dead_at=dead)
    again = next(x for x in trials if x["id"] == t["id"])
    assert again["attempt"] == 2, again
    assert again["worker"] != victim.name
    assert len(again["history"]) == 15, "the retry's metrics replace the lost attempt's"
    runs = [r for r in records(rec_dir) if r["run"] == t["id"]]
    assert len(runs) == 2 and sum(r["end"] is None for r in runs) == 1


def test_sigkill_worker_no_retries_left_crashed(store, start_worker, controller, rec_dir):  # noqa: ANN001
    sid = store.create_sweep(make_config(run_cap=4, retries=0, parameters=_long(15)))
    env = {"SWEEPQ_TEST_RECORD": str(rec_dir)}
    workers = [start_worker(concurrency=1, env=env) for _ in range(2)]
    controller()
    t, _, dead = _kill_worker_of(store, sid, rec_dir, workers)
    wait_for(lambda: sweep_done(store, sid), 90, what="sweep end", info=lambda: describe(store, sid))
    trials = check_sweep(store, sid, rec_dir, expect={"finished": 3, "crashed": 1}, n_trials=4, dead_at=dead)
    lost = next(x for x in trials if x["id"] == t["id"])
    assert lost["state"] == "crashed" and "lease expired" in lost["reason"], lost
    assert len([r for r in records(rec_dir) if r["run"] == t["id"]]) == 1, "a crashed trial must not re-run"


def test_trial_longer_than_visibility_timeout_runs_once(store, start_worker, controller, rec_dir):  # noqa: ANN001
    """Celery redelivers a message whose delivery is older than the visibility timeout (kombu
    restores unacked messages when a worker starts, and every ~100 s); the claim makes the copy a
    no-op while the first delivery is still running."""
    sid = store.create_sweep(make_config(run_cap=1, parameters=_long(80)))  # ~8 s
    env = {"SWEEPQ_TEST_RECORD": str(rec_dir), "SWEEPQ_VISIBILITY_TIMEOUT": "3"}
    a = start_worker(concurrency=1, env=env)
    controller()
    t = wait_for(lambda: _started(store, sid, rec_dir), 60, what="trial started")
    time.sleep(4.0)  # the delivery is now older than the visibility timeout
    b = start_worker(concurrency=1, env=env)  # restores unacked messages older than VT on start
    wait_for(
        lambda: "'not_queued'" in worker_outputs([a, b]),
        30,
        what="the redelivered copy to see the claim",
        info=lambda: worker_outputs([a, b])[-3000:],
    )
    assert running_trial(store, sid)() is not None, "redelivery arrived while the first run was still going"
    wait_for(lambda: sweep_done(store, sid), 60, what="sweep end", info=lambda: describe(store, sid))
    trials = check_sweep(store, sid, rec_dir, expect={"finished": 1}, n_trials=1)
    assert trials[0]["attempt"] == 1 and trials[0]["worker"] == a.name == t["worker"]
    assert len(records(rec_dir)) == 1, "the trial ran more than once"


def test_sigterm_warm_shutdown_finishes_running_trial(store, start_worker, controller, rec_dir):  # noqa: ANN001
    """Plain SIGTERM to the worker's main process (docker stop, systemd KillMode=mixed): Celery's
    warm shutdown waits for the running trial, which finishes normally."""
    sid = store.create_sweep(make_config(run_cap=2, parameters=_long(15)))
    env = {"SWEEPQ_TEST_RECORD": str(rec_dir)}
    a = start_worker(concurrency=1, env=env)
    controller()
    t = wait_for(lambda: _started(store, sid, rec_dir), 60, what="trial started")
    os.kill(a.pid, signal.SIGTERM)
    a.proc.wait(30)
    first = store.get_trial(t["id"])
    assert first["state"] == "finished" and first["attempt"] == 1, first
    start_worker(concurrency=1, env=env)  # someone has to run the rest of the sweep
    wait_for(lambda: sweep_done(store, sid), 60, what="sweep end", info=lambda: describe(store, sid))
    check_sweep(store, sid, rec_dir, expect={"finished": 2}, n_trials=2)
    assert all(r["end"] is not None for r in records(rec_dir))


def test_sigterm_cold_shutdown_hands_trial_back(store, start_worker, controller, rec_dir):  # noqa: ANN001
    """REMAP_SIGTERM=SIGQUIT: SIGTERM is a cold shutdown. The running trial is stopped (whole
    group), handed back without using a retry, and re-run by another worker."""
    controller()
    _cold_shutdown_case(store, start_worker, rec_dir, _long(40))


def test_sigterm_cold_shutdown_hands_back_slow_exiting_trial(store, start_worker, controller, rec_dir):  # noqa: ANN001
    """The same with a program that ignores SIGTERM (it is SIGKILLed after the 5 s shutdown grace):
    the forwarder's flag is seen while the program still runs, so it is handed back."""
    controller()
    # 15 s of work: it cannot reach its end within the 5 s shutdown grace (a program that does
    # exit 0 within the grace is kept as finished: test_cold_shutdown_trial_that_completes_...);
    # the re-run resumes (0.5 s), as a program with a checkpoint would
    _cold_shutdown_case(
        store,
        start_worker,
        rec_dir,
        {**_long(150), "ignore_term": {"value": True}, "rerun_steps": {"value": 5}},
    )


def _cold_shutdown_case(store: Any, start_worker: Any, rec_dir: Path, params: dict[str, Any]) -> None:
    sid = store.create_sweep(make_config(run_cap=2, retries=0, parameters=params))
    env = {"SWEEPQ_TEST_RECORD": str(rec_dir), "REMAP_SIGTERM": "SIGQUIT"}
    a = start_worker(concurrency=1, env=env)
    wait_for(lambda: _started(store, sid, rec_dir), 60, what="trial started")
    b = start_worker(concurrency=1, env=env)
    t = wait_for(lambda: _started_on(store, sid, rec_dir, a.name), 60, what="a trial started on a")
    pids = [r["pid"] for r in records(rec_dir) if r["run"] == t["id"]]
    t0 = time.monotonic()
    os.kill(a.pid, signal.SIGTERM)
    dead = watch_dead(pids, timeout=15)
    a.proc.wait(30)
    assert time.monotonic() - t0 < 30
    wait_for(lambda: sweep_done(store, sid), 60, what="sweep end", info=lambda: describe(store, sid))
    # retries: 0, so had the hand-back counted as a retry the trial would be `crashed`
    trials = check_sweep(store, sid, rec_dir, expect={"finished": 2}, n_trials=2, dead_at=dead)
    again = next(x for x in trials if x["id"] == t["id"])
    assert again["attempt"] == 1 and again["worker"] == b.name, again
    runs = [r for r in records(rec_dir) if r["run"] == t["id"]]
    # handed back and run again
    assert len(runs) == 2


def test_worker_killed_between_delivery_and_claim(store, start_worker, controller, rec_dir, sq_env):  # noqa: ANN001
    """The pool child is held before its claim (it waits for the host's only GPU slot, which this
    test holds), the worker is SIGKILLed there, then a healthy worker joins."""
    import fcntl

    lock_dir = Path(sq_env["SWEEPQ_GPU_LOCK_DIR"])
    lock_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_dir / "gpu0.lock", os.O_RDWR | os.O_CREAT, 0o666)
    fcntl.flock(fd, fcntl.LOCK_EX)
    env = {"SWEEPQ_TEST_RECORD": str(rec_dir), "SWEEPQ_GPUS": "0"}
    sid = store.create_sweep(make_config(run_cap=1, parameters=_long(3)))
    try:
        a = start_worker(concurrency=1, env=env)
        controller()
        wait_for(lambda: "received" in a.output(), 30, what="delivery to the blocked worker")
        time.sleep(0.5)
        assert store.counts(sid)["queued"] == 1, "the trial was claimed despite the held slot"
        a.kill(signal.SIGKILL)
        a.proc.wait(10)
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
    start_worker(concurrency=1, env=env)
    wait_for(lambda: sweep_done(store, sid), 30, what="sweep end", info=lambda: describe(store, sid))
    check_sweep(store, sid, rec_dir, expect={"finished": 1}, n_trials=1)


def test_cold_shutdown_trial_that_completes_within_grace_is_kept(store, start_worker, controller, rec_dir):  # noqa: ANN001
    sid = store.create_sweep(make_config(run_cap=1, parameters={**_long(30), "ignore_term": {"value": True}}))
    env = {"SWEEPQ_TEST_RECORD": str(rec_dir), "REMAP_SIGTERM": "SIGQUIT"}
    a = start_worker(concurrency=1, env=env)
    controller()
    t = wait_for(lambda: _started(store, sid, rec_dir), 60, what="trial started")
    os.kill(a.pid, signal.SIGTERM)  # the program ignores it and ends ~2 s later, inside the 5 s grace
    a.proc.wait(30)
    assert [r["end"] is not None for r in records(rec_dir)] == [True], "the program reached its end"
    start_worker(concurrency=1, env=env)
    wait_for(lambda: sweep_done(store, sid), 60, what="sweep end", info=lambda: describe(store, sid))
    (done,) = check_sweep(store, sid, rec_dir, expect={"finished": 1}, n_trials=1)
    assert done["worker"] == t["worker"] and len(records(rec_dir)) == 1, "completed work was re-run"


def _rest_of_batch(store: Any, tid: str) -> list[str]:
    """The trials after ``tid`` in the Celery message its worker holds unacked (short-trial
    batching puts several trials in one message), read from kombu's unacked hash."""
    import base64
    import json

    for raw in store._r.hvals(store.keys.celery_prefix + "unacked"):
        msg = json.loads(raw)[0]
        body = msg["body"]
        if msg.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        ids = json.loads(body)[0][1:]
        if tid in ids:
            return ids[ids.index(tid) + 1 :]
    return []


def _mid_batch(
    store: Any, sid: str, rec_dir: Path, ctl: Any, slow: Path
) -> tuple[dict[str, Any], list[str], list[int]]:
    """Once the controller batches, make every trial slow (5 s) and return a started trial that
    has more trials after it in its message: (trial, the rest of its batch, its program's pids)."""
    wait_for(lambda: ctl.stats["batched"] > 0, 60, what="a batch", info=lambda: describe(store, sid))
    slow.touch()
    slow_from = time.time()

    def mid_batch() -> tuple[dict[str, Any], list[str]] | None:
        t = _started(store, sid, rec_dir)
        if t is None or not any(r["run"] == t["id"] and r["start"] > slow_from for r in records(rec_dir)):
            return None  # not yet one of the slow ones (a fast one may be ending right now)
        rest = _rest_of_batch(store, t["id"])
        return (t, rest) if rest else None

    t, rest = wait_for(
        mid_batch, 60, what="a started trial with more in its batch", info=lambda: describe(store, sid)
    )
    return t, rest, [r["pid"] for r in records(rec_dir) if r["run"] == t["id"]]


def _rest_of_the_sweep(
    store: Any,
    sid: str,
    rec_dir: Path,
    start_worker: Any,
    env: dict[str, str],
    slow: Path,
    dead: dict[int, float],
) -> dict[str, dict[str, Any]]:
    """The victim worker is gone: wait until every program of it that did not record its end is
    gone too (for the overlap check), make trials fast again, start a healthy worker, and return
    the 30 trials, checked, once the sweep has ended."""
    dead.update(watch_dead([r["pid"] for r in records(rec_dir) if r["end"] is None and r["pid"] not in dead]))
    slow.unlink()
    start_worker(concurrency=1, env=env)
    wait_for(lambda: sweep_done(store, sid), 120, what="sweep end", info=lambda: describe(store, sid))
    return {
        x["id"]: x
        for x in check_sweep(store, sid, rec_dir, expect={"finished": 30}, n_trials=30, dead_at=dead)
    }


def test_sigkill_worker_mid_batch_the_rest_of_its_batch_still_runs(
    store, start_worker, controller, rec_dir, tmp_path
):  # noqa: ANN001
    """Short trials batched into one message; the worker is SIGKILLed in the middle of a batch:
    the trial it was running is retried (attempt 2), the trials after it, never claimed, are sent
    again by the controller and run once each on another worker, and nothing runs twice at once."""
    slow = tmp_path / "slow"
    sid = store.create_sweep(make_config(run_cap=30, retries=1, parameters=_long(1, 0.0)))
    env = {"SWEEPQ_TEST_RECORD": str(rec_dir), "SWEEPQ_TEST_SLOW_FILE": str(slow)}
    victim = start_worker(concurrency=1, env=env)
    ctl = controller(batch_window=5.0)  # this machine's Python start-up counts as short
    t, rest, pids = _mid_batch(store, sid, rec_dir, ctl, slow)
    victim.kill(signal.SIGKILL)
    victim.proc.wait(10)
    trials = _rest_of_the_sweep(store, sid, rec_dir, start_worker, env, slow, watch_dead(pids, timeout=10))
    assert trials[t["id"]]["attempt"] == 2 and trials[t["id"]]["worker"] != victim.name
    for tid in rest:
        assert trials[tid]["attempt"] == 1 and trials[tid]["worker"] != victim.name, trials[tid]
    assert ctl.stats["resent"] >= 1


def test_cold_shutdown_mid_batch_hands_back_and_starts_nothing_more(
    store, start_worker, controller, rec_dir, tmp_path
):  # noqa: ANN001
    """A cold shutdown in the middle of a batch of short trials: the running trial is handed back
    (no retry used: retries is 0) and the worker starts none of the trials after it (had it started
    one during the shutdown, that trial would die with its pool child, be reaped and, with no retry
    left, end crashed). The restored message or the controller's re-send runs the rest elsewhere,
    each once. If the running trial happened to end by itself as the shutdown began, the next one
    (claimed with its final write) is the one handed back: the same checks hold."""
    slow = tmp_path / "slow"
    sid = store.create_sweep(make_config(run_cap=30, retries=0, parameters=_long(1, 0.0)))
    env = {"SWEEPQ_TEST_RECORD": str(rec_dir), "SWEEPQ_TEST_SLOW_FILE": str(slow), "REMAP_SIGTERM": "SIGQUIT"}
    a = start_worker(concurrency=1, env=env)
    ctl = controller(batch_window=5.0)
    t, rest, pids = _mid_batch(store, sid, rec_dir, ctl, slow)
    os.kill(a.pid, signal.SIGTERM)
    dead = watch_dead(pids, timeout=15)
    a.proc.wait(30)
    trials = _rest_of_the_sweep(store, sid, rec_dir, start_worker, env, slow, dead)
    assert trials[t["id"]]["attempt"] == 1 and trials[t["id"]]["worker"] != a.name
    for tid in rest:
        assert trials[tid]["attempt"] == 1 and trials[tid]["worker"] != a.name, trials[tid]
