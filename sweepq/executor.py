"""One claimed trial's execution on a worker, whatever runs it: its lease renewed and fenced, what
it logged sent, its end written. The same for a program in a subprocess (``sweepq.runner``) and for
a function in this process (``sweepq.agents``).

The lease is what makes a trial run once at a time. A worker that could not renew it for
``FENCE_SHARE`` of its TTL (a partition, a hung socket, Redis down) stops the trial itself (for a
subprocess: kills every process of it) before the lease can expire and the controller gives the
trial to another worker; a pool process that cannot act (stopped, hung) is fenced by its worker's
main process from the deadline it leaves in a fence file (docs/reliability.md, "Fencing"). Every
write is fenced by the owner token in the store, so a worker that lost its trial changes nothing.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redis.exceptions import OutOfMemoryError, RedisError

from sweepq.model import is_multi_objective, objectives, primary_metric
from sweepq.protocol import metric_values, row_json
from sweepq.settings import Settings
from sweepq.store import Claim, Store

log = logging.getLogger("sweepq.executor")

TAIL_CHARS = 8000  # a failed trial's tail: what the user needs to see why
FINISHED_TAIL_CHARS = 500  # a finished trial's: short, it is kept for every trial (memory)


@dataclass
class TrialOutcome:
    state: str  # finished | failed | stopped | canceled | released | lost | skipped
    exit_code: int | None = None
    reason: str = ""
    tail: str = ""


# Heartbeats renew the lease every BEAT_SHARE of its TTL; a worker that has not renewed it for
# FENCE_SHARE of the TTL (counted from when the last successful renewal was *sent*, so the lease
# runs at least that long on Redis's clock) kills the trial's processes. The rest of the TTL is the
# margin for the kill; the controller can only give the trial to another worker after the whole TTL.
BEAT_SHARE = 0.2
FENCE_SHARE = 0.7
# A pool process that cannot act on its own fence (stopped, hung) is fenced by its worker's main
# process KEEPER_SHARE of the TTL later; both act before the lease can expire.
KEEPER_SHARE = 0.1
FENCED = "worker lost contact with Redis (lease not renewed in time): trial stopped and handed back"


def fence_dir() -> Path:
    """Where pool processes leave their trials' fence deadlines for the worker's main process
    (one directory per host and user, shared by every worker of that user)."""
    d = Settings.from_env().fence_dir
    if d:
        return Path(d)
    # a memory file system where the host has one: every trial writes, renames and removes its
    # fence file, a metadata commit each on a disk (0.1-0.3 ms per operation on ext4, measured)
    base = _SHM if os.path.isdir(_SHM) and os.access(_SHM, os.W_OK) else tempfile.gettempdir()
    return Path(base) / f"sweepq-fence-{os.getuid()}"


_SHM = "/dev/shm"


class _FenceFile:
    """A trial's fence deadline on disk (``time.monotonic()`` is one clock for the whole host),
    with what it takes to kill the trial's processes, so that the worker's main process can fence
    the trial when the pool process running it cannot (it is stopped, or hung)."""

    def __init__(self, what: dict[str, Any], run_id: str) -> None:
        d = fence_dir()
        d.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.path = d / f"{os.getpid()}-{what['token']}.fence"
        self.record: dict[str, Any] = {**what, "run": run_id}

    def write(self, deadline: float) -> None:
        self.record["deadline"] = deadline
        tmp = self.path.with_suffix(".tmp")
        try:
            tmp.write_text(json.dumps(self.record))
            os.replace(tmp, self.path)
        except OSError as exc:  # the in-process watchdog still fences; only the backstop is lost
            log.warning("cannot write the fence file %s: %s", self.path, exc)

    @property
    def fired(self) -> bool:
        """The main process fenced the trial (it renames the file before it kills)."""
        return self.path.with_suffix(".fenced").exists()

    def remove(self) -> None:
        for p in (self.path, self.path.with_suffix(".tmp"), self.path.with_suffix(".fenced")):
            with contextlib.suppress(OSError):
                p.unlink()


def keep_fences(stop: threading.Event, ttl: float, every: float = 0.25) -> None:
    """The worker main process's loop: kill the trials whose fence deadline passed KEEPER_SHARE of
    the TTL ago without their pool process acting (it renews the deadline while it renews the
    lease, and fences the trial itself at the deadline). Files of pool processes that died go too."""
    from sweepq.tree import kill_described

    grace = KEEPER_SHARE * ttl
    while not stop.wait(every):
        d = fence_dir()
        try:
            names = os.listdir(d)
        except OSError:
            continue
        now = time.monotonic()
        for name in names:
            path = d / name
            if name.endswith(".fenced"):
                pid = name.split("-", 1)[0]
                if pid.isdigit() and not Path(f"/proc/{pid}").exists():
                    with contextlib.suppress(OSError):
                        path.unlink()
                continue
            if not name.endswith(".fence"):
                continue
            try:
                rec = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if float(rec.get("deadline", now)) + grace > now:
                continue
            try:
                os.replace(path, path.with_suffix(".fenced"))  # claim it: the pool process will know
            except OSError:
                continue  # its trial ended meanwhile
            log.warning(
                "trial %s: its worker process has not renewed the lease in time; killing it", rec.get("run")
            )
            kill_described(rec)


class _Watchdog:
    """One daemon thread per process that kills the trials whose lease this process has not renewed
    in time. It touches no socket, so it acts even while the trial's own thread hangs inside a
    Redis call (a silent partition, a hung proxy); a process that was frozen (SIGSTOP, a paused VM)
    acts the moment it runs again (docs/reliability.md states the bound)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._armed: dict[int, list[Any]] = {}  # key -> [deadline (monotonic), callback]
        self._pid = -1

    def arm(self, key: int, deadline: float, fire: Any) -> None:
        with self._cond:
            if self._pid != os.getpid():  # first use in this process (or a fork of one): own thread
                self._pid = os.getpid()
                self._armed = {}
                threading.Thread(target=self._run, name="sweepq-fence", daemon=True).start()
            # no notify: a deadline is at least 0.7 TTL away and the thread looks every 0.25 s,
            # while waking it per trial costs a context switch on every short trial
            self._armed[key] = [deadline, fire]

    def renew(self, key: int, deadline: float) -> None:
        with self._cond:
            entry = self._armed.get(key)
            if entry is not None and deadline > entry[0]:
                entry[0] = deadline

    def disarm(self, key: int) -> None:
        with self._cond:
            self._armed.pop(key, None)

    def _run(self) -> None:
        while True:
            with self._cond:
                now = time.monotonic()
                fires = [self._armed.pop(k)[1] for k, (d, _) in list(self._armed.items()) if d <= now]
                if not fires:
                    nxt = min((d for d, _ in self._armed.values()), default=now + 0.25)
                    # short waits: after a freeze (SIGSTOP) the check runs at once, whatever the clock
                    self._cond.wait(min(0.25, max(0.0, nxt - now)))
                    continue
            for fire in fires:
                try:
                    fire()
                except Exception:
                    log.exception("fencing a trial failed")


WATCHDOG = _Watchdog()


class Execution:
    """A trial this worker claimed (it owns it under ``owner``), between its claim and its end.

    Subclasses run it (``sweepq.runner.TrialRunner``: a program; ``sweepq.agents.FunctionTrial``: a
    function) and say how to stop it at once (:meth:`kill`); this class keeps the lease (renewal,
    fencing), the metrics not yet sent, and the final write.
    """

    def __init__(
        self,
        store: Store,
        sweep_id: str,
        trial: dict[str, Any],
        config: dict[str, Any],
        owner: str,
        *,
        lease_ttl: float = 30.0,
        claimed_at: float | None = None,
    ) -> None:
        self.store = store
        self.sid = sweep_id
        self.trial = trial
        self.tid = trial["id"]
        self.config = config
        self.owner = owner
        self.lease_ttl = lease_ttl
        metric = primary_metric(config)
        self.metric_name = metric.get("name")
        self.goal = metric.get("goal", "minimize")
        # a multi-objective sweep's objective names, and each one's last finite value logged (the
        # summary values that the Pareto front and bayes read); sent with every flush that changes them
        self.objective_names = [o["name"] for o in objectives(config)] if is_multi_objective(config) else []
        self._objectives: dict[str, float] = {}
        self._objectives_changed = False
        self._pending_values: list[float] = []
        self._pending_rows: list[str] = []
        # the next trial of a batch of short trials, claimed with this one's final write (one
        # round trip for both): (id, owner, worker, lease TTL, GPUs, log path); its Claim lands in
        # next_claim
        self.claim_next: tuple[str, str, str, float, str, str] | None = None
        self.next_claim: Claim | None = None
        # when the claim was sent (time.monotonic()): the lease is good for lease_ttl after it
        self.claimed_at = time.monotonic() if claimed_at is None else claimed_at
        self.fenced = False  # the watchdog stopped the trial: its lease went unrenewed too long
        self._fence_deadline = self.claimed_at + FENCE_SHARE * lease_ttl
        self._fence_file: _FenceFile | None = None

    # -- what a subclass provides -----------------------------------------------------------------
    def kill(self) -> None:
        """Stop the trial at once (the fence fired): nothing of it may run on."""

    # -- store calls that must not kill a healthy trial -----------------------------------------
    # -- store calls that must not kill a healthy trial -----------------------------------------
    def _try(self, fn: Any, *args: Any, default: Any = None, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (RedisError, OSError) as exc:
            log.warning("redis unavailable (%s); trial %s keeps running", exc, self.tid)
            return default

    def _must(self, fn: Any, *args: Any, deadline: float = 3600.0, **kwargs: Any) -> Any:
        """Retry a write that matters (final state) until Redis acknowledges it."""
        delay = 0.2
        end = time.monotonic() + deadline
        while True:
            try:
                return fn(*args, **kwargs)
            except (RedisError, OSError) as exc:
                if time.monotonic() > end:
                    raise
                log.warning("redis unavailable (%s); retrying final write for %s", exc, self.tid)
                time.sleep(delay)
                # at most a second apart: a hand-back must land before the controller, settling
                # after Redis comes back (two lease TTLs), reaps the trial and spends a retry
                delay = min(delay * 2, 1.0)

    # -- the lease -----------------------------------------------------------------------------------
    def arm_fence(self) -> None:
        """From now on, the watchdog stops the trial if its lease goes unrenewed too long."""
        WATCHDOG.arm(id(self), self._fence_deadline, self._fence)

    def leave_fence_file(self, what: dict[str, Any]) -> None:
        """Leave the fence deadline where the worker's main process sees it, with ``what`` it
        takes to kill the trial from there (``sweepq.tree.TrialTree.describe``)."""
        self._fence_file = _FenceFile(what, self.tid)
        self._fence_file.write(self._fence_deadline)

    def update_fence_file(self, what: dict[str, Any]) -> None:
        """Add to what the fence file says (the process group once it exists): written with the
        next renewal, so a trial's start costs one file write, not two."""
        if self._fence_file is not None:
            self._fence_file.record.update(what)

    @property
    def fence_fired_elsewhere(self) -> bool:
        """The worker's main process fenced the trial while this process could not."""
        return self._fence_file is not None and self._fence_file.fired

    def disarm_fence(self) -> None:
        """Nothing of the trial runs any more: nothing to fence."""
        WATCHDOG.disarm(id(self))
        if self._fence_file is not None:
            self._fence_file.remove()

    def _fence(self) -> None:
        """The watchdog's verdict: the lease may be about to go to another worker. Stop the trial
        now; it is handed back when Redis answers again."""
        self.fenced = True
        log.warning(
            "trial %s: lease not renewed for %.1f s; stopping it (fencing)",
            self.tid,
            FENCE_SHARE * self.lease_ttl,
        )
        self.kill()

    def beat(self) -> tuple[bool, str] | None:
        """Renew the lease: (still owner, stop request), or None when Redis did not answer. A
        renewal pushes the fence back; so does a refusal because Redis is out of memory: a server
        that answers is up, it refuses the reaper's writes too, and the controller does not reap
        while it is full (nor for two lease TTLs after)."""
        sent = time.monotonic()
        try:
            owned, req = self.store.heartbeat(self.tid, self.owner, self.lease_ttl)
        except OutOfMemoryError:
            self._renew_fence(sent)
            log.warning("Redis is out of memory; trial %s keeps running, its writes are retried", self.tid)
            return None
        except (RedisError, OSError) as exc:
            log.warning("redis unavailable (%s); trial %s keeps running", exc, self.tid)
            return None
        if owned:
            self._renew_fence(sent)
        return owned, req

    def _renew_fence(self, sent: float) -> None:
        self._fence_deadline = sent + FENCE_SHARE * self.lease_ttl
        WATCHDOG.renew(id(self), self._fence_deadline)
        if self._fence_file is not None:
            self._fence_file.write(self._fence_deadline)

    # -- what the trial logged, and its end --------------------------------------------------------
    def add_rows(self, rows: list[dict[str, Any]]) -> None:
        """Rows the trial logged, to send with the next flush or the final write."""
        if rows:
            values = metric_values(rows, self.metric_name) if self.metric_name else []
            self._pending_values.extend(values)
            for name in self.objective_names:  # the first is the metric: its values are at hand
                found = values if name == self.metric_name else metric_values(rows, name)
                if found:
                    self._objectives[name] = found[-1]
                    self._objectives_changed = True
            self._pending_rows.extend(row_json(r) for r in rows)

    def flush(self) -> None:
        """Send what the trial logged so far (the stopping rules need it while it runs); kept
        for the next try while Redis does not answer."""
        if not self._pending_rows:
            return
        ok = self._try(
            self.store.log_metrics,
            self.sid,
            self.tid,
            self.owner,
            self._pending_values,
            self._pending_rows,
            self._objectives_json(),
        )
        if ok is not None:  # None: Redis down, keep buffering
            self._pending_values, self._pending_rows = [], []
            self._objectives_changed = False

    def _objectives_json(self) -> str:
        """The trial's objective values as the store keeps them, or "" when unchanged since sent."""
        if not self._objectives_changed:
            return ""
        return json.dumps(self._objectives, allow_nan=False)

    def finish(
        self,
        state: str,
        exit_code: int | None,
        reason: str,
        tail: str,
        output: list[tuple[str, str]] | None = None,
    ) -> TrialOutcome:
        """The final write (retried until Redis takes it), with the metrics and output lines not
        yet sent and, for a batch, the claim of the next trial; ``lost`` if the trial is no longer
        this worker's."""
        # a failure's tail is what the user needs; a success keeps a short one (memory per trial)
        keep = TAIL_CHARS if state != "finished" else FINISHED_TAIL_CHARS
        kw = {
            "reason": reason,
            "log_tail": tail[-keep:],
            "goal": self.goal,
            "values": self._pending_values,
            "rows": self._pending_rows,
            "output": output,
            "objectives": self._objectives_json(),
        }
        if self.claim_next is not None:
            ok, self.next_claim = self._must(
                self.store.finish_and_claim,
                self.sid,
                self.tid,
                self.owner,
                state,
                exit_code,
                claim_next=self.claim_next,
                **kw,
            )
        else:
            ok = self._must(self.store.finish_trial, self.sid, self.tid, self.owner, state, exit_code, **kw)
        self._pending_values, self._pending_rows = [], []
        if not ok:
            return TrialOutcome("lost", exit_code, "trial no longer owned when finishing")
        return TrialOutcome(state, exit_code, reason, tail)

    def release(self, outcome: TrialOutcome) -> TrialOutcome:
        """Hand the trial back to the queue (no retry spent): a shutdown, or the fence fired;
        ``lost`` if it was reaped meanwhile (its lease expired: this copy's work is not the
        trial's any more)."""
        if not self._must(self.store.release_trial, self.sid, self.tid, self.owner, outcome.reason):
            return TrialOutcome("lost", outcome.exit_code, "lease lost")
        return outcome
