"""Controller faults: SIGKILL of a `sweepq controller` process and a fresh one taking over; two
controllers at once (the leader lease lets one act; run_cap and grid points stay exact)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, wait_for
from tests.faults.conftest import check_sweep, describe, make_config, sweep_done

pytestmark = [pytest.mark.redis, pytest.mark.faults]


def _controller_proc(env: dict[str, str], log: Path) -> subprocess.Popen:
    exe = Path(sys.executable).parent / "sweepq"
    argv = [str(exe)] if exe.exists() else [sys.executable, "-c", "from sweepq.cli import main; main()"]
    with open(log, "ab") as out:
        return subprocess.Popen(
            [*argv, "controller", "--tick", "0.2"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=str(ROOT),
        )


def _kill(p: subprocess.Popen) -> None:
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except OSError:
        pass
    p.wait(10)


def test_sigkill_controller_new_one_takes_over(store, start_worker, sq_env, rec_dir, tmp_path):  # noqa: ANN001
    sid = store.create_sweep(
        make_config(
            run_cap=10,
            parameters={"x": {"min": 0.0, "max": 1.0}, "steps": {"value": 5}, "sleep": {"value": 0.08}},
        )
    )
    env = {"SWEEPQ_TEST_RECORD": str(rec_dir)}
    start_worker(concurrency=2, env=env)
    first = _controller_proc(sq_env, tmp_path / "ctl1.log")
    procs = [first]
    try:
        wait_for(
            lambda: store.counts(sid)["finished"] >= 3,
            60,
            what="3 trials done",
            info=lambda: (tmp_path / "ctl1.log").read_text()[-2000:],
        )
        _kill(first)
        n_at_kill = store.n_trials(sid)
        assert store._r.get(store.keys.leader), "the killed leader's lease is still held (it expires)"
        second = _controller_proc(sq_env, tmp_path / "ctl2.log")
        procs.append(second)
        wait_for(
            lambda: sweep_done(store, sid),
            90,
            what="sweep end under the new controller",
            info=lambda: describe(store, sid) + (tmp_path / "ctl2.log").read_text()[-2000:],
        )
        assert n_at_kill < 10, "the sweep was already complete when the controller was killed"
        check_sweep(store, sid, rec_dir, expect={"finished": 10}, n_trials=10)
        assert store.status(sid)["end_reason"] == "run_cap 10 reached"
    finally:
        for p in procs:
            _kill(p)


def test_two_controllers_at_once_no_double_suggest(store, start_worker, controller, rec_dir):  # noqa: ANN001
    xs = [0.1, 0.2, 0.3, 0.4, 0.5]
    grid = store.create_sweep(
        make_config(
            method="grid",
            run_cap=None,
            parameters={"x": {"values": xs}, "steps": {"values": [1, 2]}, "sleep": {"value": 0.05}},
        )
    )
    rnd = store.create_sweep(
        make_config(
            run_cap=7,
            parameters={"x": {"min": 0.0, "max": 1.0}, "steps": {"value": 2}, "sleep": {"value": 0.05}},
        )
    )
    env = {"SWEEPQ_TEST_RECORD": str(rec_dir)}
    start_worker(concurrency=2, env=env)
    start_worker(concurrency=2, env=env)
    a = controller(tick=0.1)
    b = controller(tick=0.1)
    # hand leadership over mid-sweep: stop whichever leads (it releases the lease), the other acts
    wait_for(lambda: store.counts(grid)["finished"] >= 2, 60, what="first grid trials")
    leader = a if a.is_leader else b
    leader.stop_event.set()
    wait_for(
        lambda: sweep_done(store, grid) and sweep_done(store, rnd),
        90,
        what="both sweeps",
        info=lambda: describe(store, grid) + describe(store, rnd),
    )
    trials = check_sweep(store, grid, rec_dir, expect={"finished": 10}, n_trials=10)
    points = Counter((t["params"]["x"], t["params"]["steps"]) for t in trials)
    assert points == Counter((x, s) for x in xs for s in (1, 2)), points
    check_sweep(store, rnd, rec_dir, expect={"finished": 7}, n_trials=7)
    other = b if leader is a else a
    assert store._r.get(store.keys.leader) == other.token, "the remaining controller holds the lease"


def test_split_brain_steps_never_exceed_run_cap(store, start_worker, rec_dir):  # noqa: ANN001
    """Even without the leader lease (two controllers stepping at once, e.g. a leader paused past
    its lease), trial creation is one atomic script bounded by run_cap."""
    import threading

    from sweepq.controller import Controller

    sid = store.create_sweep(
        make_config(
            run_cap=9,
            parameters={"x": {"min": 0.0, "max": 1.0}, "steps": {"value": 1}, "sleep": {"value": 0.02}},
        )
    )
    start_worker(concurrency=3, env={"SWEEPQ_TEST_RECORD": str(rec_dir)})
    ctls = [Controller(store, tick=0.05) for _ in range(3)]
    stop = threading.Event()

    def loop(c: Any) -> None:
        while not stop.is_set() and not sweep_done(store, sid):
            try:
                c.step()  # step() does not look at the leader lease: all three act
            except Exception:  # a racing finish_sweep may pull the sweep away mid-step
                pass
            stop.wait(0.02)

    threads = [threading.Thread(target=loop, args=(c,), daemon=True) for c in ctls]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: sweep_done(store, sid), 60, what="sweep end", info=lambda: describe(store, sid))
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    check_sweep(store, sid, rec_dir, expect={"finished": 9}, n_trials=9)
