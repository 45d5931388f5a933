"""The network-namespace lab (tests/netns.py) does what the partition tests rely on: hosts reach
each other, a cut is silent (TCP hangs while the host's link, address and route stay up) and
heals, and teardown leaves nothing, also after a failure midway."""

from __future__ import annotations

import select
import subprocess
import sys
import time

import pytest
import redis

from tests.conftest import pid_alive
from tests.netns import Host, HostRedis, Lab, prerequisite_problem

pytestmark = [pytest.mark.faults]

# Runs inside a host: one TCP connection to a Redis kept from the start ("keep") and fresh ones
# ("connect"). Each stdin line "<keep|connect> <timeout>" answers one line: ok, timeout, or
# "error <errno>" (an error is what a silent partition must not give).
PROBE = r"""
import socket, sys
host, port = sys.argv[1], int(sys.argv[2])
kept = None
def ping(s, timeout):
    s.settimeout(timeout)
    s.sendall(b"PING\r\n")
    data = s.recv(64)
    return "ok" if data.startswith(b"+PONG") else "bad " + repr(data)
for line in sys.stdin:
    cmd, timeout = line.split()
    t = float(timeout)
    try:
        if cmd == "connect":
            with socket.create_connection((host, port), timeout=t) as s:
                out = ping(s, t)
        else:
            if kept is None:
                kept = socket.create_connection((host, port), timeout=t)
            out = ping(kept, t)
    except socket.timeout:
        out = "timeout"
    except OSError as e:
        out = "error %s" % e.errno
    print(out, flush=True)
"""


def _ask(probe: subprocess.Popen, cmd: str, timeout: float) -> tuple[str, float]:
    """Send one probe command; (its answer, seconds it took)."""
    t0 = time.monotonic()
    assert probe.stdin is not None and probe.stdout is not None
    probe.stdin.write(f"{cmd} {timeout}\n")
    probe.stdin.flush()
    ready, _, _ = select.select([probe.stdout], [], [], timeout + 10)
    assert ready, f"probe gave no answer to {cmd!r} in {timeout + 10} s"
    return probe.stdout.readline().strip(), time.monotonic() - t0


def _probe(host: Host, srv: HostRedis) -> subprocess.Popen:
    return host.popen(
        [sys.executable, "-c", PROBE, srv.host.addr, str(srv.port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def test_hosts_reach_each_other_and_a_cut_is_silent(lab: Lab) -> None:
    a, b, c = lab.add_host("a"), lab.add_host("b"), lab.add_host("c")
    srv = HostRedis(a)
    assert redis.Redis.from_url(srv.socket_url).ping(), (
        "the test process reaches the lab's Redis by its socket"
    )
    pb, pc = _probe(b, srv), _probe(c, srv)
    assert _ask(pb, "keep", 5)[0] == "ok"
    assert _ask(pb, "connect", 5)[0] == "ok"
    assert _ask(pc, "keep", 5)[0] == "ok"

    lab.cut("b")
    assert lab.is_cut("b")
    answer, took = _ask(pb, "keep", 2)
    assert (answer, took >= 1.9) == ("timeout", True), "an open connection must hang, not fail"
    assert _ask(pb, "connect", 2)[0] == "timeout", "a new connection must time out, not be refused"
    link = b.link()
    assert link["up"], f"b's link went down with the cut: {link}"
    assert link["addrs"] == [b.addr] and f"{lab.net}.0/24" in link["routes"], link
    assert _ask(pc, "keep", 5)[0] == "ok", "only b is cut off"

    lab.heal("b")
    assert not lab.is_cut("b")
    assert _ask(pb, "connect", 5)[0] == "ok"
    # the open connection recovers when TCP retransmits (backoff: a few seconds after a short cut)
    assert _ask(pb, "keep", 30)[0] == "ok"


def test_teardown_leaves_nothing_even_after_a_failure() -> None:
    daemon = 0
    with pytest.raises(RuntimeError, match="midway"), Lab() as lab:
        x, _ = lab.add_host("x"), lab.add_host("y")
        with pytest.raises(ValueError):
            lab.add_host("namewaytoolong")
        sleeper = x.popen(["sleep", "600"])
        # a process of its own session, as a trial program is: not in any group the lab tracks,
        # found inside the namespace at teardown
        forker = x.popen(
            [
                sys.executable,
                "-c",
                "import os, time\nif os.fork() == 0:\n    os.setsid()\n"
                "    print(os.getpid(), flush=True)\n    time.sleep(600)\n",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert forker.stdout is not None
        daemon = int(forker.stdout.readline())
        assert pid_alive(daemon) and pid_alive(sleeper.pid)
        raise RuntimeError("a test failing midway")
    assert lab.closed and lab.leftovers() == []
    assert not pid_alive(daemon) and not pid_alive(sleeper.pid)


def test_missing_prerequisites_are_named_not_skipped() -> None:
    assert "root" in prerequisite_problem(euid=1000)
    assert "iproute2" in prerequisite_problem(euid=0, ip_path=None)
    assert prerequisite_problem() == "", "CI runs as root with iproute2"
