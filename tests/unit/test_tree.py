"""sweepq.tree's clean-up of trials whose pool process died: it kills what is left of them on
this host, and nothing that belongs to another PID namespace (a container's trial, whose token
names its pool process by a pid that means nothing here)."""

from __future__ import annotations

import os
import shutil
import subprocess
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
