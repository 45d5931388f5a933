"""The runner's one I/O thread, against a real Redis and real subprocesses: both pipes are read to
the end, metric lines are parsed wherever the pipe splits them, over-long lines are output (not
metrics), a program that ends while its child still holds the pipes is noticed at once, and all
of it also works where Linux has no pidfds (the fallback thread that waits on the process)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from sweepq import runner as runner_mod
from sweepq.config import load_config

pytestmark = pytest.mark.redis

PROGRAM = r"""
import json, os, subprocess, sys, time
out = sys.stdout.buffer
out.write(b"hello\n")
# one metric line written in three pieces, with pauses: the reader must join them
out.write(b'@sweepq {"loss": 0.'); out.flush(); time.sleep(0.05)
out.write(b'5, "step"'); out.flush(); time.sleep(0.05)
out.write(b': 1}\n'); out.flush()
out.write(b"@sweepq " + b"x" * (1 << 20) + b"\n")  # longer than any metric line: plain output
for i in range(2, 200):
    out.write(b'@sweepq {"loss": %f, "step": %d}\n' % (1.0 / i, i))
sys.stderr.write("warning: on stderr\n")
out.write(b'@sweepq {"loss": 0.001}')  # the last line has no newline
out.flush()
if os.environ.get("LINGER"):
    # a child that keeps both pipes open after the program ends (a dataloader worker, say)
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
"""


def _claimed_runner(store, tmp_path: Path, cfg: dict):  # noqa: ANN001, ANN202
    """A runner for the one trial of a new sweep of ``cfg``, claimed as its worker would."""
    sid = store.create_sweep(cfg)
    (tid,) = store.create_trials(sid, [{"x": 1}])
    assert store.claim(sid, tid, "own", "w", 30).ok
    runner = runner_mod.TrialRunner(
        store,
        sid,
        {"id": tid, "params": {"x": 1}},
        cfg,
        "own",
        lease_ttl=30,
        workdir=str(tmp_path),
        log_dir=str(tmp_path / "logs"),
    )
    return runner, tid


def _run(store, tmp_path: Path, env: dict[str, str] | None = None):  # noqa: ANN001, ANN202
    prog = tmp_path / "prog.py"
    prog.write_text(PROGRAM)
    cfg = load_config(
        {
            "method": "random",
            "command": [sys.executable, str(prog)],
            "metric": {"name": "loss", "goal": "minimize"},
            "stop_grace": 1,
            "parameters": {"x": {"values": [1]}},
            "run_cap": 1,
        }
    )
    old = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    try:
        r, tid = _claimed_runner(store, tmp_path, cfg)
        t0 = time.monotonic()
        out = r.run()
        took = time.monotonic() - t0
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return (
        out,
        store.get_trial(tid),
        store.trial_rows(tid, limit=1000),
        took,
        tmp_path / "logs" / f"{tid}.log",
    )


@pytest.mark.parametrize("pidfd", [True, False], ids=["pidfd", "no-pidfd"])
def test_pipes_read_to_the_end_and_metrics_parsed(store, tmp_path: Path, monkeypatch, pidfd: bool) -> None:  # noqa: ANN001
    if not pidfd:
        monkeypatch.delattr(os, "pidfd_open", raising=False)
    elif not hasattr(os, "pidfd_open"):
        pytest.skip("no pidfds on this platform")
    out, t, rows, _, log = _run(store, tmp_path)
    assert out.state == "finished" and t["state"] == "finished"
    assert [r["step"] for r in rows if "step" in r] == list(range(1, 200))
    assert rows[0] == {"loss": 0.5, "step": 1}
    assert rows[-1] == {"loss": 0.001}  # the unterminated last line still counts
    assert t["history"][0] == 0.5 and t["metric"] == 0.001 and len(t["history"]) == 200
    text = log.read_bytes()
    assert b"hello\n" in text and b"warning: on stderr" in text
    assert b"x" * (1 << 20) in text  # the over-long line went to the log as output
    assert b'"step": 5' not in text  # metric lines are not log output


def test_program_end_is_noticed_while_a_child_holds_the_pipes(store, tmp_path: Path) -> None:  # noqa: ANN001
    """The exit is seen by its pidfd (or waitpid), not by the pipes' EOF: the lingering child is
    killed with the group right away instead of the trial running until the child's 30 s end."""
    out, t, rows, took, _ = _run(store, tmp_path, env={"LINGER": "1"})
    assert out.state == "finished" and t["metric"] == 0.001
    assert took < 15, f"the runner waited {took:.1f} s for a child that outlived the program"


def test_fence_file_exists_from_the_programs_first_instant(store, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    """The worker's main process can fence a trial whose pool process is stopped at any instant
    after the spawn: the fence file (with the trial's token) is there before the program runs its
    first line, and gone once the trial has ended."""
    fence = tmp_path / "fence"
    monkeypatch.setenv("SWEEPQ_FENCE_DIR", str(fence))
    script = (
        'if ls "$SWEEPQ_FENCE_DIR" | grep -q -- "-$SWEEPQ_TRIAL_TOKEN.fence$"; '
        "then echo '@sweepq {\"seen\": 1}'; else echo '@sweepq {\"seen\": 0}'; fi"
    )
    cfg = load_config(
        {
            "method": "random",
            "command": ["/bin/sh", "-c", script],
            "metric": {"name": "seen", "goal": "maximize"},
            "parameters": {"x": {"values": [1]}},
            "run_cap": 1,
        }
    )
    r, tid = _claimed_runner(store, tmp_path, cfg)
    out = r.run()
    assert out.state == "finished"
    assert store.get_trial(tid)["metric"] == 1.0, "the program ran before its fence file existed"
    assert not list(fence.glob("*.fence")), "the fence file outlived its trial"


def test_a_trial_that_prints_only_metrics_leaves_no_log_file(store, tmp_path: Path) -> None:  # noqa: ANN001
    """The log file is created at the first line of output it must keep: a program that prints
    only metric lines (most very short trials) costs no file; one ordinary line makes it."""
    logs: dict[str, Path] = {}
    for mode, line in (("quiet", ""), ("talks", "echo hello;")):
        cfg = load_config(
            {
                "method": "random",
                "command": ["/bin/sh", "-c", f"{line} echo '@sweepq {{\"loss\": 0.5}}'"],
                "metric": {"name": "loss", "goal": "minimize"},
                "parameters": {"x": {"values": [1]}},
                "run_cap": 1,
            }
        )
        r, tid = _claimed_runner(store, tmp_path, cfg)
        assert r.run().state == "finished"
        assert store.get_trial(tid)["metric"] == 0.5
        logs[mode] = tmp_path / "logs" / f"{tid}.log"
    assert not logs["quiet"].exists(), "a log file for a program that printed only metrics"
    assert logs["talks"].read_bytes() == b"hello\n"


def test_fence_files_default_to_a_memory_file_system(monkeypatch) -> None:  # noqa: ANN001
    """Every trial writes, renames and removes its fence file: on /dev/shm where the host has it."""
    from sweepq.executor import fence_dir

    monkeypatch.delenv("SWEEPQ_FENCE_DIR", raising=False)
    assert os.path.isdir("/dev/shm"), "this Linux machine has /dev/shm"
    assert fence_dir() == Path(f"/dev/shm/sweepq-fence-{os.getuid()}")
    monkeypatch.setenv("SWEEPQ_FENCE_DIR", "/somewhere/else")
    assert fence_dir() == Path("/somewhere/else")
