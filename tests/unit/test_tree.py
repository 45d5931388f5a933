"""sweepq.tree's clean-up of trials whose pool process died: it kills what is left of them on
this host, and nothing that belongs to another PID namespace (a container's trial, whose token
names its pool process by a pid that means nothing here)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from sweepq.tree import TOKEN_ENV, clean_stale
from tests.conftest import pid_alive, wait_for


def _dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def test_clean_stale_kills_orphans_of_a_dead_pool_process_here_only() -> None:
    assert shutil.which("unshare"), "util-linux's unshare is needed (apt-get install util-linux)"
    token = f"{_dead_pid()}.deadbeef0001"
    env = {**os.environ, TOKEN_ENV: token}
    here = subprocess.Popen(["sleep", "60"], env=env, start_new_session=True)
    # the same marker inside another PID namespace, as a container's trial would carry it
    there = subprocess.Popen(["unshare", "--pid", "--fork", "sleep", "60"], env=env, start_new_session=True)
    try:
        wait_for(lambda: [c for c in _children(there.pid) if pid_alive(c)], 10, what="the namespaced sleep")
        (inner,) = _children(there.pid)
        assert clean_stale() >= 1
        assert here.wait(10) == -9
        time.sleep(0.2)
        assert pid_alive(inner), "a process of another PID namespace was killed"
    finally:
        for p in (here, there):
            if p.poll() is None:
                os.killpg(p.pid, 9)
            p.wait()


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


@pytest.fixture(autouse=True)
def _root() -> None:
    assert os.geteuid() == 0, "run as root (CI is): creating a PID namespace needs it"


_SLOT_CHILD = """
import subprocess, sys, time
from sweepq import tree
assert tree.enter_slot(), "cannot enter a cgroup"
assert tree.guarded()
t = tree.TrialTree("r1")
assert t.mode == "slot"
assert tree._guard().pid not in t._members(), "the end of every trial would kill the guard"
prog = subprocess.Popen(["sh", "-c", "setsid sleep 60 & echo $!; exec sleep 60"],
                        stdout=subprocess.PIPE, start_new_session=True)
daemon = int(prog.stdout.readline())
print(prog.pid, daemon, tree._guard().pid, tree._slot(), flush=True)
time.sleep(60)
"""


def test_a_slot_guard_kills_the_trial_of_a_sigkilled_pool_process_without_a_parent_death_signal() -> None:
    """The trial is spawned without setpriv or a preexec hook: the slot's guard is what kills it,
    its daemon (another session) included, as soon as the pool process dies; no later pool process
    is needed."""
    pids: list[int] = []
    slot = ""
    child = subprocess.Popen(
        [sys.executable, "-c", _SLOT_CHILD],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = child.stdout.readline() if child.stdout else ""
        assert line, f"the pool stand-in failed (exit {child.wait(10)})"
        prog, daemon, guard, slot = line.split()
        pids[:] = [int(prog), int(daemon), int(guard)]
        assert all(pid_alive(p) for p in pids)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
        wait_for(
            lambda: not any(pid_alive(p) for p in pids), 5, what="the trial, its daemon and the guard to die"
        )
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        for pid in pids:  # a failing guard leaves them: never leave them behind
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
    if slot:
        with contextlib.suppress(OSError):
            os.rmdir(slot)


def test_leaving_the_slot_stops_its_guard_and_removes_the_cgroup() -> None:
    code = (
        "from sweepq import tree\n"
        "assert tree.enter_slot()\n"
        "g, s = tree._guard(), tree._slot()\n"
        "tree.leave_slot()\n"
        "assert g.poll() is not None, 'the guard still runs'\n"
        "assert not s.exists(), 'the slot cgroup is left'\n"
        "assert not tree.guarded()\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert out.stdout.strip() == "ok", out.stderr
