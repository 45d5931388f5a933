"""A stop reaches a script before any signal: ``run.should_stop`` turns true first, so a script
that checks it saves a checkpoint and exits 0, and its trial ends ``stopped`` with all it logged;
a trial whose program already ended is never recorded as stopped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import PROGRAMS, wait_for

pytestmark = [pytest.mark.redis]


def test_hyperband_stopped_trials_checkpoint_and_exit_zero(
    store, start_worker, controller, tmp_path: Path
) -> None:  # noqa: ANN001
    from sweepq.config import load_config

    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    sid = store.create_sweep(
        load_config(
            {
                "method": "grid",
                "program": str(PROGRAMS / "checkpoint_train.py"),
                "command": ["${env}", "${interpreter}", "${program}", "${args}"],
                "metric": {"name": "loss", "goal": "minimize"},
                "parameters": {
                    "x": {"values": [0.3, 1.5, 2.0, 2.5, 3.0, 3.5]},
                    "steps": {"value": 12},
                    "sleep": {"value": 0.2},
                    "ckpt_dir": {"value": str(ckpt)},
                },
                "early_terminate": {"type": "hyperband", "min_iter": 2, "eta": 2},
                "stop_grace": 20,  # SIGTERM would come 10 s after should_stop: the scripts leave long before
            }
        )
    )
    start_worker(concurrency=3)
    controller()
    wait_for(lambda: sid not in store.active_sweeps(), 120, what="sweep end")
    trials = store.get_trials(store.trial_ids(sid))
    stopped = [t for t in trials if t["state"] == "stopped"]
    assert stopped, [(t["params"]["x"], t["state"], t["history"]) for t in trials]
    for t in stopped:
        saved = ckpt / f"{t['id']}.json"
        assert saved.exists(), f"stopped trial {t['id']} wrote no checkpoint: {t}"
        step = json.loads(saved.read_text())["step"]
        # it left on its own (exit 0), with every value it logged up to its checkpoint
        assert t["exit_code"] == 0 and len(t["history"]) == step + 1, (t, step)
    for t in trials:
        if t["state"] == "finished":
            assert len(t["history"]) == 12 and not (ckpt / f"{t['id']}.json").exists(), t


def test_a_stop_that_finds_the_program_ended_is_not_a_stop(tmp_path: Path) -> None:
    """The stop request raced the program's own end: the trial is recorded by its exit code."""
    import subprocess

    from sweepq.runner import TrialRunner

    runner = TrialRunner(
        store=None,
        sweep_id="s",
        trial={"id": "s-1", "params": {}},
        config={"stop_grace": 5},  # type: ignore[arg-type]
        owner="o",
        log_dir=str(tmp_path),
    )
    proc = subprocess.Popen(["true"])
    proc.wait()
    assert runner._begin_stop(proc) is False
    assert not runner.stop_file.exists()
    live = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        from sweepq.tree import TrialTree

        runner.tree = TrialTree("s-1", use_cgroup=False)
        runner.tree.started(live.pid)
        assert runner._begin_stop(live) is True and runner.stop_file.exists()
        assert live.wait(10) == -15  # it never read should_stop: SIGTERM at once
    finally:
        live.kill()
        live.wait()
