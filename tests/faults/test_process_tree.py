"""A trial's every process dies with it: a daemon the program double-forks into a new session
(out of reach of the process group) is killed when the trial finishes, is stopped or canceled, and
when the worker process that ran it is killed."""

from __future__ import annotations

import contextlib
import os
import signal
from typing import Any

import pytest

from tests.conftest import pid_alive, wait_for
from tests.faults.conftest import check_sweep, describe, make_config, records, sweep_done

pytestmark = [pytest.mark.redis, pytest.mark.faults]


@pytest.fixture(params=["cgroup", "marker"])
def tree_mode(request: pytest.FixtureRequest) -> dict[str, str]:
    """Both ways a worker keeps a trial's processes together: a cgroup per trial (where the worker
    may create cgroups), and the environment marker with a subreaper (containers, non-root)."""
    from sweepq.tree import cgroup_base

    if request.param == "cgroup":
        assert cgroup_base() is not None, (
            "this machine lets root create cgroups v2: the cgroup mode must be tested"
        )
        return {}
    return {"SWEEPQ_TRIAL_CGROUPS": "0"}


def _grid(program: str, modes: list[str], **over: Any) -> dict[str, Any]:
    return make_config(
        program=program, method="grid", run_cap=None, parameters={"mode": {"values": modes}}, **over
    )


def _daemons(rec_dir: Any) -> dict[str, int]:
    """run id -> the pid of the daemon its program started (once the program recorded it)."""
    return {
        r["run"]: r["children"][0]
        for r in records(rec_dir)
        if r["mode"].startswith("daemon") and r["children"]
    }


def _kill_all(rec_dir: Any) -> None:
    """Under the bug the daemons outlive everything: never leave them behind."""
    for r in records(rec_dir):
        for pid in [r["pid"], *r["children"]]:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def test_daemon_dies_when_its_trial_finishes(
    store,
    start_worker,
    controller,
    rec_dir,
    hostile_program,  # noqa: ANN001
    tree_mode,
):
    sid = store.create_sweep(_grid(hostile_program, ["daemon"], stop_grace=1))
    start_worker(env={"SWEEPQ_TEST_RECORD": str(rec_dir), **tree_mode})
    controller()
    try:
        wait_for(lambda: sweep_done(store, sid), 60, what="sweep end", info=lambda: describe(store, sid))
        (t,) = check_sweep(store, sid, rec_dir, expect={"finished": 1}, n_trials=1)
        (daemon,) = _daemons(rec_dir).values()
        assert not pid_alive(daemon), f"the trial {t['id']} finished but its daemon {daemon} still runs"
    finally:
        _kill_all(rec_dir)


def test_daemons_die_when_their_trials_are_stopped_or_canceled(
    store,
    start_worker,
    controller,
    rec_dir,  # noqa: ANN001
    hostile_program,
    tree_mode,
):
    sid = store.create_sweep(_grid(hostile_program, ["daemon_stop", "daemon_cancel"], stop_grace=1))
    start_worker(concurrency=2, env={"SWEEPQ_TEST_RECORD": str(rec_dir), **tree_mode})
    controller()
    try:
        daemons = wait_for(
            lambda: len(_daemons(rec_dir)) == 2 and _daemons(rec_dir),
            60,
            what="both daemons",
            info=lambda: describe(store, sid),
        )
        by_mode = {r["mode"]: r["run"] for r in records(rec_dir)}
        assert store.request_stop(sid, by_mode["daemon_stop"], "stop") == "requested"
        wait_for(
            lambda: store.get_trial(by_mode["daemon_stop"])["state"] == "stopped",
            30,
            what="stopped trial",
            info=lambda: describe(store, sid),
        )
        assert not pid_alive(daemons[by_mode["daemon_stop"]]), "a stopped trial's daemon still runs"
        store.sweep_action(sid, "cancel")
        wait_for(lambda: sweep_done(store, sid), 30, what="sweep end", info=lambda: describe(store, sid))
        check_sweep(store, sid, rec_dir, expect={"stopped": 1, "canceled": 1}, n_trials=2)
        assert not pid_alive(daemons[by_mode["daemon_cancel"]]), "a canceled trial's daemon still runs"
    finally:
        _kill_all(rec_dir)


def _ppid(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def test_daemon_of_a_killed_worker_process_dies(
    store,
    start_worker,
    controller,
    rec_dir,
    hostile_program,  # noqa: ANN001
    tree_mode,
):
    """The pool process running the trial is SIGKILLed: the program dies with it (parent-death
    signal); the daemon is killed by the pool process Celery starts in its place."""
    sid = store.create_sweep(_grid(hostile_program, ["daemon_wait"], stop_grace=1, retries=0))
    start_worker(env={"SWEEPQ_TEST_RECORD": str(rec_dir), **tree_mode})
    controller()
    try:
        (daemon,) = wait_for(
            lambda: _daemons(rec_dir), 60, what="daemon", info=lambda: describe(store, sid)
        ).values()
        (rec,) = records(rec_dir)
        os.kill(_ppid(rec["pid"]), signal.SIGKILL)  # the pool process: the program's parent
        wait_for(lambda: not pid_alive(daemon), 30, what="the daemon of the killed worker process to die")
        wait_for(lambda: sweep_done(store, sid), 30, what="sweep end", info=lambda: describe(store, sid))
        check_sweep(store, sid, rec_dir, expect={"crashed": 1}, n_trials=1)
    finally:
        _kill_all(rec_dir)
