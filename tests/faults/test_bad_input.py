"""Bad input from the training program and the config: each gets a defined outcome, the sweep
ends, nothing is left running."""

from __future__ import annotations

import contextlib
import math
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import wait_for
from tests.faults.conftest import check_sweep, describe, make_config, records, sweep_done

pytestmark = [pytest.mark.redis, pytest.mark.faults]


def _by_mode(trials: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {t["params"]["mode"]: t for t in trials}


def _grid(program: str, modes: list[str], **over: Any) -> dict[str, Any]:
    return make_config(
        program=program, method="grid", run_cap=None, parameters={"mode": {"values": modes}}, **over
    )


def test_hostile_output_metrics_flood_binary_fork(
    store,
    start_worker,
    controller,
    rec_dir,
    hostile_program,  # noqa: ANN001
    sq_env,
):
    modes = ["metrics", "flood", "binary", "fork"]
    sid = store.create_sweep(_grid(hostile_program, modes, stop_grace=1))
    start_worker(concurrency=len(modes), env={"SWEEPQ_TEST_RECORD": str(rec_dir)})
    controller()

    def forks_started() -> list[dict[str, Any]]:
        return [r for r in records(rec_dir) if r["mode"].startswith("fork") and len(r["children"]) == 3]

    wait_for(lambda: len(forks_started()) == 1, 60, what="forking program", info=lambda: describe(store, sid))
    for r in forks_started():  # cancel: the whole process group must go
        assert store.request_stop(sid, r["run"], "cancel") == "requested"
    wait_for(lambda: sweep_done(store, sid), 90, what="sweep end", info=lambda: describe(store, sid))
    trials = _by_mode(check_sweep(store, sid, rec_dir, expect={"finished": 3, "canceled": 1}, n_trials=4))

    # metrics: NaN, inf, strings, bools, null, lists are not values of the metric; they stay in rows
    m = trials["metrics"]
    assert m["history"] == [1e308, 0.25] and m["metric"] == 0.25, m
    assert m["steps"] == 10
    rows = store.trial_rows(m["id"])
    assert len(rows) == 10
    assert math.isnan(rows[0]["loss"]) and rows[1]["loss"] == math.inf and rows[3]["loss"] == "0.5"
    assert rows[7]["unknown_name"] == "x" * 10 and rows[8] == {"some_other_metric": 3.5}
    assert "2 malformed @sweepq line(s) ignored" in m["log_tail"]

    # flood: 24 MiB of output, the log file is capped, the trial finishes with its metric
    from sweepq.runner import LOG_CAP_BYTES

    f = trials["flood"]
    assert f["state"] == "finished" and f["metric"] == 0.125, f
    log = Path(sq_env["SWEEPQ_LOG_DIR"]) / f"{f['id']}.log"
    assert 0 < log.stat().st_size <= LOG_CAP_BYTES
    assert "log capped" in f["log_tail"] and len(f["log_tail"]) <= 8000

    # binary: undecodable bytes are replaced in the tail, the bad metric line counted
    b = trials["binary"]
    assert b["state"] == "finished" and b["metric"] == 0.75, b
    assert "\ufffd" in b["log_tail"] and "[stdout] @sweepq \ufffd\ufffd{}" in b["log_tail"]
    assert "[stderr] \ufffd( bad utf8 on stderr" in b["log_tail"]

    # fork: cancel stops the program and every child it forked
    t = trials["fork"]
    assert t["state"] == "canceled" and t["reason"] == "canceled", t
    # check_sweep already verified every recorded pid and child pid is gone


def test_cancel_program_whose_children_ignore_sigterm(
    store,
    start_worker,
    controller,
    rec_dir,  # noqa: ANN001
    hostile_program,
):
    sid = store.create_sweep(_grid(hostile_program, ["fork_stubborn"], stop_grace=1))
    start_worker(concurrency=2, env={"SWEEPQ_TEST_RECORD": str(rec_dir)})
    controller()
    try:
        r = wait_for(
            lambda: [r for r in records(rec_dir) if len(r["children"]) == 3], 60, what="forking program"
        )[0]
        assert store.request_stop(sid, r["run"], "cancel") == "requested"
        wait_for(lambda: sweep_done(store, sid), 20, what="sweep end", info=lambda: describe(store, sid))
        (t,) = check_sweep(store, sid, rec_dir, expect={"canceled": 1}, n_trials=1)
        assert t["attempt"] == 1
    finally:  # under the bug, grandchildren outlive the worker: do not leave them behind
        for rec in records(rec_dir):
            for pid in [rec["pid"], *rec["children"]]:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)


def test_trial_timeout_and_sigterm_ignored(store, start_worker, controller, rec_dir, hostile_program):  # noqa: ANN001
    sid = store.create_sweep(_grid(hostile_program, ["sleep", "ignore_term"], trial_timeout=2, stop_grace=1))
    start_worker(concurrency=2, env={"SWEEPQ_TEST_RECORD": str(rec_dir)})
    controller()
    wait_for(lambda: sweep_done(store, sid), 60, what="sweep end", info=lambda: describe(store, sid))
    trials = _by_mode(check_sweep(store, sid, rec_dir, expect={"failed": 2}, n_trials=2))
    for mode, code in (("sleep", -15), ("ignore_term", -9)):
        t = trials[mode]
        assert "trial_timeout" in t["reason"] and t["exit_code"] == code, t
        # TERM at 2 s (exit -15); the program ignoring it is KILLed after stop_grace (exit -9).
        # Only the lower bound is checked: an upper one would flake on a loaded machine, and the
        # exit codes already show the timeout (not the program's own end) stopped them.
        assert t["ended_at"] - t["started_at"] >= 2.0, (mode, t)


def test_missing_program_fails_with_127(store, start_worker, controller):  # noqa: ANN001
    missing = "/nonexistent/sweepq-no-such-program"
    sid = store.create_sweep(make_config(program=missing, command=["${program}", "${args}"], run_cap=2))
    start_worker(concurrency=1)
    controller()
    wait_for(lambda: sweep_done(store, sid), 60, what="sweep end", info=lambda: describe(store, sid))
    trials = check_sweep(store, sid, expect={"failed": 2}, n_trials=2)
    for t in trials:
        assert t["exit_code"] == 127 and missing in t["reason"] and "No such file" in t["reason"], t
        assert t["attempt"] == 1, "a missing program is not retried"


def test_metric_integer_beyond_float_range_is_ignored(
    store,
    start_worker,
    controller,
    rec_dir,  # noqa: ANN001
    hostile_program,
):
    sid = store.create_sweep(_grid(hostile_program, ["hugeint"], retries=0))
    start_worker(concurrency=1, env={"SWEEPQ_TEST_RECORD": str(rec_dir)})
    controller()
    wait_for(lambda: sweep_done(store, sid), 60, what="sweep end", info=lambda: describe(store, sid))
    (t,) = check_sweep(store, sid, rec_dir, n_trials=1)
    assert t["state"] == "finished" and t["history"] == [0.5], t
