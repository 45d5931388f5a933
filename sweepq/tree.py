"""A trial's processes: everything a trial starts dies with it, however it detaches.

A process group is not enough: a program that double-forks a daemon with ``setsid`` puts it in a
new session and group, out of reach of ``killpg``, and it would outlive the trial, holding a GPU
lock or writing into the next trial's files. Two mechanisms, the first the machine allows:

* **cgroup v2** (Linux, where this process may create cgroups below its own, e.g. as root or with
  systemd's ``Delegate=yes``). A worker's pool process, which runs one trial at a time, moves
  itself into a cgroup of its own when it starts (:func:`enter_slot`): every process it starts is
  born in it and cannot leave, and at the end of a trial every member but the pool process is
  killed. Nothing is paid per trial (a per-trial cgroup costs an extra ``exec`` per spawn: a
  tenth of a short trial's dispatch cost). Any other process gives each trial a cgroup of its own:
  a ``/bin/sh`` prefix writes the program's pid into its ``cgroup.procs`` and ``exec``s it, and
  ``cgroup.kill`` ends every member at once.
* otherwise **a marker and a subreaper**: the trial's environment carries ``SWEEPQ_TRIAL_TOKEN``,
  which its descendants inherit; a worker's pool process is a child subreaper
  (``PR_SET_CHILD_SUBREAPER``), so orphaned descendants are re-parented to it instead of to init,
  and at the end of the trial every child of the pool process carrying the token is killed. A
  process that clears its environment and double-forks escapes this mode (not the cgroup mode).

A worker that dies (SIGKILL, OOM killer) cannot clean up: its program dies with it (in a slot, the
slot's guard process kills what is left in it; elsewhere, a parent-death signal) and the next
pool process started on the host kills what is left of trials whose worker
process is gone (:func:`clean_stale`): cgroups named after a dead pool pid, or processes whose token
names one.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

log = logging.getLogger("sweepq.tree")

TOKEN_ENV = "SWEEPQ_TRIAL_TOKEN"
_PREFIX = "sweepq."
_PR_SET_CHILD_SUBREAPER = 36
_SH_JOIN = 'echo $$ > "$0"; exec "$@"'  # join the cgroup named by $0, then become the program


def _cgroup_base() -> Path | None:
    """This process's own cgroup directory on a cgroup v2 mount, or None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        mounts = Path("/proc/self/mountinfo").read_text().splitlines()
        own = [
            ln.split("::", 1)[1]
            for ln in Path("/proc/self/cgroup").read_text().splitlines()
            if ln.startswith("0::")
        ]
    except OSError:
        return None
    if not own:
        return None
    for line in mounts:
        pre, _, post = line.partition(" - ")
        if post.split(" ", 1)[0] != "cgroup2":
            continue
        fields = pre.split()
        root, mount_point = fields[3], fields[4]
        rel = own[0].strip()
        if root != "/" and rel.startswith(root):
            rel = rel[len(root) :]
        base = Path(mount_point) / rel.lstrip("/")
        if base.is_dir():
            return base
    return None


_BASE: Path | None | bool = False  # False: not probed yet
_SLOT: tuple[int, Path] | None = None  # (pid, cgroup) of a pool process that lives in its own cgroup
_GUARD: tuple[int, subprocess.Popen] | None = None  # (pool pid, the slot's guard process)
# The slot's guard: started once per pool process, inside the slot, blocked reading a pipe that only
# the pool process holds. However the pool process ends (SIGKILL, the OOM killer), the kernel closes
# the pipe and the guard kills every process left in the slot, itself included: a parent-death
# signal for every trial at no cost per trial (setpriv's extra exec per trial doubled a short
# trial's spawn, 1.1 -> 2.1 ms measured). $0 is the slot's directory; before Linux 5.14 (no
# cgroup.kill) it kills the members one by one, three rounds for children forked meanwhile.
_GUARD_SH = (
    'read _; echo 1 > "$0/cgroup.kill" 2>/dev/null; '
    'for r in 1 2 3; do for p in $(cat "$0/cgroup.procs"); do [ "$p" = "$$" ] || kill -9 "$p"; done; done'
)


def cgroup_base() -> Path | None:
    """Where trial cgroups go, or None when this process cannot create them (probed once), or
    when ``SWEEPQ_TRIAL_CGROUPS=0`` turns them off."""
    global _BASE
    if _BASE is False:
        from sweepq.settings import Settings

        base = _cgroup_base() if Settings.from_env().trial_cgroups else None
        if base is not None:
            probe = base / f"{_PREFIX}{os.getpid()}.probe-{secrets.token_hex(3)}"
            try:
                probe.mkdir()
                ok = (probe / "cgroup.procs").exists()
                probe.rmdir()
            except OSError:
                ok = False
            base = base if ok else None
        _BASE = base
    return _BASE if isinstance(_BASE, Path) else None


def enter_slot() -> bool:
    """Move this process (a worker's pool process: one trial at a time) into a cgroup of its own,
    so that every process of its trials is born there; True on success."""
    global _SLOT
    base = cgroup_base()
    if base is None:
        return False
    path = base / f"{_PREFIX}{os.getpid()}.slot"
    try:
        path.mkdir(exist_ok=True)
        (path / "cgroup.procs").write_text(str(os.getpid()))
    except OSError as exc:  # e.g. controllers enabled on the parent (no internal processes)
        log.info("trials keep their process trees by marker: cannot enter a cgroup (%s)", exc)
        with contextlib.suppress(OSError):
            path.rmdir()
        return False
    _SLOT = (os.getpid(), path)
    _start_guard(path)
    return True


def _start_guard(slot: Path) -> None:
    """Start the slot's guard (see ``_GUARD_SH``); without one, trials get setpriv's parent-death
    signal as before."""
    global _GUARD
    try:
        proc = subprocess.Popen(
            ["/bin/sh", "-c", _GUARD_SH, str(slot)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # no terminal's or worker group's signal reaches it
        )
    except OSError as exc:
        log.info("no guard for this pool process's cgroup (%s); trials use setpriv", exc)
        return
    _GUARD = (os.getpid(), proc)


def _guard() -> subprocess.Popen | None:
    return _GUARD[1] if _GUARD is not None and _GUARD[0] == os.getpid() else None


def guarded() -> bool:
    """This pool process's trials die with it without a parent-death signal of their own: it
    lives in its own cgroup and that cgroup's guard is running."""
    guard = _guard()
    return guard is not None and _slot() is not None and guard.poll() is None


def _stop_guard() -> None:
    """End the guard: closing its pipe makes it kill what is left in the slot, then itself."""
    global _GUARD
    guard = _guard()
    _GUARD = None
    if guard is None:
        return
    with contextlib.suppress(OSError):
        if guard.stdin is not None:
            guard.stdin.close()
    try:
        guard.wait(5)
    except subprocess.TimeoutExpired:
        guard.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            guard.wait(5)


def leave_slot() -> None:
    """Leave this process's own cgroup and remove it (a pool process exiting)."""
    global _SLOT
    slot, base = _slot(), cgroup_base()
    if slot is None or base is None:
        return
    with contextlib.suppress(OSError):
        (base / "cgroup.procs").write_text(str(os.getpid()))
    _stop_guard()  # out of the slot first: the guard kills whatever is still in it
    with contextlib.suppress(OSError):
        slot.rmdir()
    _SLOT = None


def _slot() -> Path | None:
    return _SLOT[1] if _SLOT is not None and _SLOT[0] == os.getpid() else None


def become_subreaper() -> bool:
    """Make this process adopt its orphaned descendants (Linux); a worker's pool processes call it
    so that a trial's double-forked daemon stays within reach of :meth:`TrialTree.kill`."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        ok = libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        ok = False
    _SUBREAPER[os.getpid()] = ok
    return ok


_SUBREAPER: dict[int, bool] = {}  # pid -> whether become_subreaper() succeeded in it


def _is_subreaper() -> bool:
    return _SUBREAPER.get(os.getpid(), False)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _environ_token(pid: int) -> str | None:
    """The trial token in a process's environment, if any (None if unreadable)."""
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return None
    key = TOKEN_ENV.encode() + b"="
    for item in raw.split(b"\0"):
        if item.startswith(key):
            return item[len(key) :].decode(errors="replace")
    return None


def _own_children() -> list[int]:
    """This process's child pids (every thread's), from /proc."""
    out: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path("/proc/self/task").iterdir():
            with contextlib.suppress(OSError):
                out.extend(int(x) for x in (task / "children").read_text().split())
    return out


def _read_pids(path: Path) -> list[int]:
    """The pids in a ``cgroup.procs`` file (read with plain system calls: this runs once per trial
    in a worker, and pathlib's text layer costs more than the read)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return [int(x) for x in b"".join(chunks).split()]


def _all_pids() -> list[int]:
    return (
        [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()] if os.path.isdir("/proc") else []
    )


class TrialTree:
    """The processes of one trial. ``argv``/``env`` prepare the spawn; ``signal``, ``kill`` and
    ``alive`` act on every process of the trial; ``close`` releases the cgroup.

    ``pgid`` is the program's process group (it is started with ``start_new_session``)."""

    def __init__(self, run_id: str, use_cgroup: bool = True) -> None:
        self.token = f"{os.getpid()}.{secrets.token_hex(6)}"
        self.pgid: int | None = None
        self.cgroup: Path | None = None
        self.slot = _slot() if use_cgroup else None  # this process's own cgroup, shared with its trial
        base = cgroup_base() if use_cgroup and self.slot is None else None
        if base is not None:
            safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in run_id)[:64]
            path = base / f"{_PREFIX}{self.token}.{safe}"
            try:
                path.mkdir()
                self.cgroup = path
            except OSError as exc:
                log.warning("cannot create a cgroup for trial %s (%s); using its process group", run_id, exc)

    @property
    def mode(self) -> str:
        return "slot" if self.slot is not None else "cgroup" if self.cgroup is not None else "marker"

    def argv(self, argv: list[str]) -> list[str]:
        """The command that starts ``argv`` inside the trial's cgroup (unchanged without one)."""
        if self.cgroup is None:
            return argv
        return ["/bin/sh", "-c", _SH_JOIN, str(self.cgroup / "cgroup.procs"), *argv]

    def env(self) -> dict[str, str]:
        return {TOKEN_ENV: self.token}

    def started(self, pid: int) -> None:
        self.pgid = pid

    def _members(self) -> list[int]:
        if self.slot is not None:
            guard = _guard()
            mine = (os.getpid(), guard.pid if guard is not None else 0)
            try:
                return [p for p in _read_pids(self.slot / "cgroup.procs") if p not in mine]
            except OSError:
                return []
        if self.cgroup is not None:
            try:
                return _read_pids(self.cgroup / "cgroup.procs")
            except OSError:
                return []
        pids = _own_children() if _is_subreaper() else _all_pids()
        return [p for p in pids if p != os.getpid() and _environ_token(p) == self.token]

    def alive(self) -> bool:
        """Some process of the trial is still there (zombies of the cgroup included until reaped)."""
        if self.slot is not None:
            return bool(self._members())
        if self.cgroup is not None:
            try:
                return "populated 1" in (self.cgroup / "cgroup.events").read_text()
            except OSError:
                return False
        if self.pgid is not None:
            try:
                os.killpg(self.pgid, 0)
                return True
            except ProcessLookupError:
                pass
            except PermissionError:
                return True
        return bool(self._members())

    def signal(self, sig: int) -> None:
        """Send ``sig`` to every process of the trial: its process group and every member."""
        if self.pgid is not None:
            with contextlib.suppress(OSError):
                os.killpg(self.pgid, sig)
        for pid in self._members():
            with contextlib.suppress(OSError):
                os.kill(pid, sig)

    def kill(self) -> None:
        """SIGKILL every process of the trial, daemons in other sessions included."""
        if self.cgroup is not None:
            try:
                (self.cgroup / "cgroup.kill").write_text("1")
            except OSError:  # a kernel before 5.14: kill the members one by one
                self.signal(signal.SIGKILL)
            if self.pgid is not None:
                with contextlib.suppress(OSError):
                    os.killpg(self.pgid, signal.SIGKILL)
            return
        # slot and marker modes: a killed daemon's own children are re-parented to us (the pool
        # process is a subreaper) and found in the next round, as is a child forked meanwhile
        for _ in range(50):
            self.signal(signal.SIGKILL)
            left = self._members()
            self._reap(left)
            if not left:
                break
            time.sleep(0.01)

    def _reap(self, pids: list[int]) -> None:
        """Collect adopted orphans that have died (never the program itself: Popen waits for it)."""
        for pid in pids:
            if pid != self.pgid:
                with contextlib.suppress(ChildProcessError, OSError):
                    os.waitpid(pid, os.WNOHANG)

    def describe(self) -> dict[str, object]:
        """What another process needs to kill this trial's processes (:func:`kill_described`)."""
        return {
            "cgroup": str(self.cgroup) if self.cgroup is not None else None,
            "pgid": self.pgid,
            "token": self.token,
        }

    def wait_gone(self, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while self.alive():
            if self.cgroup is None:  # adopted orphans are ours to collect (never the cgroup's)
                self._reap(self._members())
            if time.monotonic() > end:
                return False
            time.sleep(0.01)
        return True

    def close(self) -> None:
        """Kill whatever is left and remove the cgroup."""
        if self.cgroup is None:
            return
        if self.alive():
            self.kill()
            self.wait_gone(5.0)
        with contextlib.suppress(OSError):
            self.cgroup.rmdir()
        self.cgroup = None


def kill_described(d: dict[str, object]) -> None:
    """SIGKILL every process of a trial from another process (the worker's main process fencing a
    frozen pool process's trial): its cgroup, its process group, and whatever carries its token."""
    cgroup, pgid, token = d.get("cgroup"), d.get("pgid"), d.get("token")
    if isinstance(cgroup, str):
        with contextlib.suppress(OSError):
            (Path(cgroup) / "cgroup.kill").write_text("1")
    if isinstance(pgid, int):
        with contextlib.suppress(OSError):
            os.killpg(pgid, signal.SIGKILL)
    if isinstance(token, str) and cgroup is None:
        for pid in _all_pids():
            if _environ_token(pid) == token:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)


def _pid_namespace(pid: str) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return None


def clean_stale() -> int:
    """Kill the processes of trials whose pool process is gone (it was killed before it could end
    them); returns how many trial trees were cleaned. Run when a pool process starts."""
    cleaned = 0
    base = cgroup_base()
    if base is not None:
        with contextlib.suppress(OSError):
            for d in base.iterdir():
                if not d.name.startswith(_PREFIX) or not d.is_dir():
                    continue
                try:
                    owner = int(d.name[len(_PREFIX) :].split(".", 1)[0])
                except ValueError:
                    continue
                if owner == os.getpid() or _pid_alive(owner):
                    continue
                with contextlib.suppress(OSError):
                    (d / "cgroup.kill").write_text("1")
                for _ in range(100):
                    try:
                        d.rmdir()
                        break
                    except OSError:
                        time.sleep(0.02)
                cleaned += 1
    own_ns = _pid_namespace("self")
    for pid in _all_pids():
        token = _environ_token(pid)
        if not token or pid == os.getpid():
            continue
        # a token names its pool process by its pid in the pool's own PID namespace: a trial in a
        # container (another namespace) is not ours to judge, its owner's pid means nothing here
        if _pid_namespace(str(pid)) != own_ns:
            continue
        with contextlib.suppress(ValueError):
            owner = int(token.split(".", 1)[0])
            if owner != os.getpid() and not _pid_alive(owner):
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
                cleaned += 1
    return cleaned
