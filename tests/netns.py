"""A small network of "hosts" made of Linux network namespaces, for tests that cut a host off.

Why namespaces: a silent network partition (packets dropped, no error, no reset) is the fault a
real cluster meets and loopback cannot show. Each host is a network namespace with one veth
interface; the other end of every veth is a port of one Linux bridge that lives in a "switch"
namespace of its own, so the root namespace's network (and every other engineer's test on the
machine) is never touched. Addresses come from a random 10.X.Y.0/24 per lab, so concurrent labs
never look alike in logs (they could not collide anyway: each lab is its own isolated network).

A cut detaches the host's port from the bridge (``ip link set PORT nomaster`` in the switch):
the host's interface keeps its carrier, address and route, and packets just stop. Every host
has a permanent neighbour entry for every other host, so not even an ARP failure tells a
sender anything (as behind a router, where the gateway still answers ARP): established TCP
connections hang in retransmission and new ones time out.

The test process stays in the root namespace and cannot reach the 10.X.Y.Z addresses; a server
that it must read (Redis) also listens on a unix socket in the lab's directory, because
path-based unix sockets are reachable across network namespaces (:class:`HostRedis`).

Everything is torn down by :meth:`Lab.close` (the ``lab`` fixture calls it, also when a test
fails midway): every process started in a host (whole process groups, then whatever is still
inside each namespace, found by ``ip netns pids``), every namespace (deleting one removes its
veth ends), and a check that nothing with the lab's prefix is left.

Needs root and iproute2's ``ip`` (CI runs as root); a missing prerequisite is an error naming
the fix, never a skip.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

from tests.conftest import pid_alive

PREFIX = "sqn"  # every namespace a lab makes is named sqn-<creator pid>-<lab id>-<host>
_HOST_NAME = re.compile(r"[a-z][a-z0-9]{0,7}")  # interface names hold at most 15 bytes
_NS_NAME = re.compile(rf"{PREFIX}-(\d+)-([0-9a-f]+)-")


def prerequisite_problem(euid: int | None = None, ip_path: str | None | bool = True) -> str:
    """Why this machine cannot build a lab ('' if it can): root and the ``ip`` command.

    ``euid`` and ``ip_path`` exist for the harness's own test; by default the real ones are used.
    """
    euid = os.geteuid() if euid is None else euid
    ip = shutil.which("ip") if ip_path is True else ip_path
    if euid != 0:
        return (
            "network-namespace tests need root (creating namespaces, veths and a bridge): run "
            "pytest as root, as CI does"
        )
    if not ip:
        return "network-namespace tests need iproute2's `ip` command: apt-get install iproute2"
    return ""


def _run(argv: list[str], timeout: float = 20.0, check: bool = True) -> subprocess.CompletedProcess:
    """Run a short command; on failure raise with its stderr (an `ip` error names the problem)."""
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    if check and p.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)} failed ({p.returncode}): {p.stderr.strip() or p.stdout.strip()}"
        )
    return p


def _netns_names() -> list[str]:
    out = _run(["ip", "-j", "netns", "list"], check=False).stdout.strip()
    try:
        return [e["name"] for e in json.loads(out or "[]")]
    except ValueError:  # old iproute2 without JSON for netns: "name (id: N)" lines
        return [line.split()[0] for line in out.splitlines() if line.strip()]


def _netns_pids(ns: str) -> list[int]:
    out = _run(["ip", "netns", "pids", ns], check=False).stdout
    return [int(x) for x in out.split() if x.isdigit()]


def _kill_netns_processes(ns: str, timeout: float = 10.0) -> list[int]:
    """SIGKILL every process inside the namespace until none is left; returns the survivors."""
    deadline = time.monotonic() + timeout
    while True:
        pids = [p for p in _netns_pids(ns) if pid_alive(p)]
        if not pids or time.monotonic() > deadline:
            return pids
        for p in pids:
            with contextlib.suppress(OSError):
                os.kill(p, signal.SIGKILL)
        time.sleep(0.05)


def reap_abandoned() -> list[str]:
    """Delete namespaces left by labs whose creating process is gone (a test run killed with
    SIGKILL cannot clean up); labs of live processes (other test runs) are left alone."""
    gone = []
    for ns in _netns_names():
        m = _NS_NAME.match(ns)
        if m and not pid_alive(int(m.group(1))):
            _kill_netns_processes(ns)
            _run(["ip", "netns", "del", ns], check=False)
            gone.append(ns)
    return gone


class Host:
    """One host: a network namespace with one interface (``iface``, address ``addr``) on the
    lab's bridge. Processes started with :meth:`popen` run inside it, in their own process
    group, and are killed by the lab's teardown."""

    def __init__(self, lab: Lab, name: str, index: int) -> None:
        self.lab = lab
        self.name = name
        self.index = index
        self.netns = f"{lab.ns_prefix}{name}"
        self.iface = f"{lab.id}h{name}"  # the veth end inside the host
        self.port = f"{lab.id}p{name}"  # its peer: a port of the bridge, in the switch namespace
        self.addr = f"{lab.net}.{index}"
        self.mac = f"02:5a:{lab.octets[0]:02x}:{lab.octets[1]:02x}:00:{index:02x}"

    def __repr__(self) -> str:
        return f"Host({self.name!r}, {self.addr}, netns={self.netns})"

    def popen(
        self, argv: list[str], env: dict[str, str] | None = None, log: Path | None = None, **kw: Any
    ) -> subprocess.Popen:
        """Start ``argv`` inside this host (``ip netns exec``, which execs it: the Popen's pid is
        the program's). Own session and process group; output to ``log`` (appended) unless
        stdout/stderr are given. Tracked: the lab kills its whole group at teardown."""
        kw.setdefault("stdin", subprocess.DEVNULL)
        kw.setdefault("start_new_session", True)
        if log is not None:
            with open(log, "ab") as out:
                kw.setdefault("stdout", out)
                kw.setdefault("stderr", subprocess.STDOUT)
                proc = subprocess.Popen(["ip", "netns", "exec", self.netns, *argv], env=env, **kw)
        else:
            proc = subprocess.Popen(["ip", "netns", "exec", self.netns, *argv], env=env, **kw)
        self.lab.procs.append(proc)
        return proc

    def run(
        self, argv: list[str], timeout: float = 30.0, check: bool = True, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess:
        """Run a short command inside this host and wait for it (output captured as text)."""
        p = subprocess.run(
            ["ip", "netns", "exec", self.netns, *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            stdin=subprocess.DEVNULL,
        )
        if check and p.returncode != 0:
            raise RuntimeError(
                f"in {self.name}: {' '.join(argv)} failed ({p.returncode}): "
                f"{p.stderr.strip() or p.stdout.strip()}"
            )
        return p

    def ip(self, *args: str) -> Any:
        """``ip -n NETNS -j ARGS`` parsed from JSON (e.g. ``host.ip("link", "show", "dev", ...)``)."""
        return json.loads(_run(["ip", "-n", self.netns, "-j", *args]).stdout or "[]")

    def link(self) -> dict[str, Any]:
        """The state of this host's interface as the host sees it: ``up`` (operstate UP and
        LOWER_UP, i.e. it has a carrier), ``addrs`` (its IPv4 addresses), ``routes`` (IPv4
        destinations routed through it)."""
        link = self.ip("link", "show", "dev", self.iface)[0]
        addrs = [a["local"] for a in self.ip("-4", "addr", "show", "dev", self.iface)[0].get("addr_info", [])]
        routes = [r["dst"] for r in self.ip("-4", "route", "show", "dev", self.iface)]
        return {
            "up": link.get("operstate") == "UP" and "LOWER_UP" in link.get("flags", []),
            "addrs": addrs,
            "routes": routes,
        }


class Lab:
    """A bridge in a switch namespace and hosts on it; use as a context manager (or call
    :meth:`close`). ``directory`` holds unix sockets and logs: kept short, because a unix
    socket's path is limited to 107 bytes.

    >>> with Lab() as lab:
    ...     a, b = lab.add_host("a"), lab.add_host("b")
    ...     lab.cut("b")      # b's packets stop; its link, address and route stay up
    ...     lab.heal("b")
    """

    def __init__(self) -> None:
        problem = prerequisite_problem()
        if problem:
            raise RuntimeError(problem)
        reap_abandoned()
        self.id = f"sq{secrets.token_hex(2)}"
        self.ns_prefix = f"{PREFIX}-{os.getpid()}-{self.id[2:]}-"
        self.octets = (64 + secrets.randbelow(190), secrets.randbelow(256))
        self.net = f"10.{self.octets[0]}.{self.octets[1]}"
        self.switch = f"{self.ns_prefix}sw"
        self.bridge = f"{self.id}br"
        self.hosts: dict[str, Host] = {}
        self.procs: list[subprocess.Popen] = []
        self.namespaces: list[str] = []
        self.directory = Path(tempfile.mkdtemp(prefix=f"{self.id}-", dir="/tmp"))
        self.closed = False
        try:
            self._add_netns(self.switch)
            _run(
                [
                    "ip",
                    "-n",
                    self.switch,
                    "link",
                    "add",
                    self.bridge,
                    "type",
                    "bridge",
                    "stp_state",
                    "0",
                    "forward_delay",
                    "0",
                ]
            )
            _run(["ip", "-n", self.switch, "link", "set", self.bridge, "up"])
        except Exception:
            self.close()
            raise

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _add_netns(self, name: str) -> None:
        try:
            _run(["ip", "netns", "add", name])
        except RuntimeError as exc:
            raise RuntimeError(
                f"{exc} (network namespaces need root with CAP_SYS_ADMIN; CI runs as root)"
            ) from exc
        self.namespaces.append(name)
        _run(["ip", "-n", name, "link", "set", "lo", "up"])

    def add_host(self, name: str) -> Host:
        """A new host on the bridge, with the next address of the lab's /24 (.1 first)."""
        if not _HOST_NAME.fullmatch(name) or name == "sw":
            raise ValueError(f"host name {name!r}: 1-8 lowercase letters and digits, starting with a letter")
        if name in self.hosts:
            raise ValueError(f"host {name!r} exists already")
        host = Host(self, name, len(self.hosts) + 1)
        self._add_netns(host.netns)
        # both ends made in their namespaces at once: no veth ever appears in the root namespace
        _run(
            [
                "ip",
                "-n",
                self.switch,
                "link",
                "add",
                host.port,
                "type",
                "veth",
                "peer",
                "name",
                host.iface,
                "netns",
                host.netns,
                "address",
                host.mac,
            ]
        )
        _run(["ip", "-n", self.switch, "link", "set", host.port, "master", self.bridge])
        _run(["ip", "-n", self.switch, "link", "set", host.port, "up"])
        _run(["ip", "-n", host.netns, "addr", "add", f"{host.addr}/24", "dev", host.iface])
        _run(["ip", "-n", host.netns, "link", "set", host.iface, "up"])
        for other in self.hosts.values():  # permanent neighbours: a cut gives no ARP failure either
            _run(
                [
                    "ip",
                    "-n",
                    host.netns,
                    "neigh",
                    "replace",
                    other.addr,
                    "lladdr",
                    other.mac,
                    "dev",
                    host.iface,
                    "nud",
                    "permanent",
                ]
            )
            _run(
                [
                    "ip",
                    "-n",
                    other.netns,
                    "neigh",
                    "replace",
                    host.addr,
                    "lladdr",
                    host.mac,
                    "dev",
                    other.iface,
                    "nud",
                    "permanent",
                ]
            )
        self.hosts[name] = host
        return host

    def cut(self, name: str) -> None:
        """Silently partition host ``name``: detach its bridge port. Its interface stays up with
        its address and route; its packets (and packets to it) are dropped without an error."""
        _run(["ip", "-n", self.switch, "link", "set", self.hosts[name].port, "nomaster"])

    def heal(self, name: str) -> None:
        """Attach host ``name``'s port to the bridge again (forwarding at once: no STP)."""
        _run(["ip", "-n", self.switch, "link", "set", self.hosts[name].port, "master", self.bridge])

    def is_cut(self, name: str) -> bool:
        link = json.loads(
            _run(["ip", "-n", self.switch, "-j", "link", "show", "dev", self.hosts[name].port]).stdout
        )[0]
        return link.get("master") != self.bridge

    def leftovers(self) -> list[str]:
        """What of this lab still exists: namespaces with its prefix, links with its id in the
        root namespace, live processes it started. Empty after :meth:`close`."""
        left = [f"netns {n}" for n in _netns_names() if n.startswith(self.ns_prefix)]
        root_links = json.loads(_run(["ip", "-j", "link", "show"]).stdout or "[]")
        left += [f"link {link['ifname']}" for link in root_links if self.id in link.get("ifname", "")]
        left += [f"process {p.pid}" for p in self.procs if pid_alive(p.pid)]
        if self.directory.exists():
            left.append(f"directory {self.directory}")
        return left

    def close(self) -> None:
        """Kill every process the lab started, delete its namespaces, and check nothing is left
        (raises AssertionError naming what is). Safe to call twice."""
        if self.closed:
            return
        self.closed = True
        for p in self.procs:  # whole process groups first: a worker's pool children with it
            with contextlib.suppress(OSError):
                os.killpg(p.pid, signal.SIGKILL)
        survivors: dict[str, list[int]] = {}
        for ns in self.namespaces:  # then anything else inside (other sessions: trial programs)
            left = _kill_netns_processes(ns)
            if left:
                survivors[ns] = left
        for p in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(10)
        for ns in reversed(self.namespaces):
            _run(["ip", "netns", "del", ns], check=False)
        shutil.rmtree(self.directory, ignore_errors=True)
        left = self.leftovers()
        assert not left and not survivors, f"lab {self.id} left behind: {left} {survivors}"


class HostRedis:
    """A redis-server inside a host: on the host's address (for the other hosts) and on a unix
    socket in the lab's directory (for the test process in the root namespace, which cannot
    reach the lab's addresses). No persistence: it dies with the lab."""

    def __init__(self, host: Host, port: int = 6379) -> None:
        self.host = host
        self.port = port
        self.socket = host.lab.directory / f"redis-{host.name}.sock"
        self.log = host.lab.directory / f"redis-{host.name}.log"
        binary = shutil.which("redis-server") or shutil.which("valkey-server")
        if not binary:
            raise RuntimeError("the lab's Redis needs redis-server: apt-get install redis-server")
        self.proc = host.popen(
            [
                binary,
                "--bind",
                host.addr,
                "--port",
                str(port),
                "--unixsocket",
                str(self.socket),
                "--unixsocketperm",
                "700",
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "no",
                "--dir",
                str(host.lab.directory),
            ],
            log=self.log,
        )
        deadline = time.monotonic() + 20
        while not self.ping():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis in {host.name} did not start: {self.log.read_text()[-2000:]}")
            time.sleep(0.05)

    @property
    def url(self) -> str:
        """For processes inside the lab's hosts."""
        return f"redis://{self.host.addr}:{self.port}/0"

    @property
    def socket_url(self) -> str:
        """For the test process: redis-py's unix socket URL."""
        return f"unix://{self.socket}?db=0"

    def client(self, **kw: Any) -> redis.Redis:
        """A client for the test process, as sweepq's store wants one (``decode_responses``):
        ``Store(client=srv.client(), namespace=...)``. Not ``Store(url=socket_url)``: sweepq's
        ``connect`` adds TCP-only options (``socket_keepalive``) that a unix socket refuses."""
        return redis.Redis(unix_socket_path=str(self.socket), decode_responses=True, socket_timeout=30, **kw)

    def ping(self) -> bool:
        try:
            return bool(redis.Redis(unix_socket_path=str(self.socket), socket_timeout=1).ping())
        except (redis.RedisError, OSError):
            return False
