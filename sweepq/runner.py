"""Run one trial: the user's command as a subprocess in its own process group, watched.

Why this shape (CELERY-NOTES sections 3 and 8):
* ``start_new_session=True`` so a stop reaches the whole process group (the program and every
  child it forked) and nothing is orphaned when a Celery pool child dies.
* Stops arrive on a Redis list the runner BLPOPs, so a stop lands within milliseconds; SIGTERM
  first, SIGKILL after the sweep's grace period.
* Signal handlers only forward the signal and set a flag: waiting inside a handler deadlocks
  ``Popen.wait``. Escalation happens in the main loop.
* Metrics are read from the program's stdout (``@sweepq {json}`` lines) by a reader thread and
  written to Redis in batches by the main loop; writes are buffered and retried through a Redis
  outage.
* A trial runs only while its lease is held. A worker that could not renew the lease for
  ``FENCE_SHARE`` of its TTL (a partition, a hung socket, Redis down) kills the trial's processes
  itself and hands the trial back, before the lease can expire and the controller gives the trial
  to another worker: a trial never runs twice at once (docs/reliability.md, "Fencing").
* Every process of the trial, daemons that left its process group included, dies with it
  (``sweepq.tree``).
"""

from __future__ import annotations

import _thread
import collections
import contextlib
import json
import logging
import os
import queue
import select
import selectors
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sweepq import command as command_mod
from sweepq import tree as tree_mod
from sweepq import wandb_bridge
from sweepq.executor import BEAT_SHARE, FENCED, TAIL_CHARS, Execution, TrialOutcome
from sweepq.protocol import CONTROL_KEY, MAX_LINE, PREFIX_BYTES, parse_line
from sweepq.settings import Settings, environ_bytes
from sweepq.store import EXITED, Store
from sweepq.tree import TrialTree

log = logging.getLogger("sweepq.runner")

LOG_CAP_BYTES = 20 << 20  # per-trial log file cap; the rest is counted, not written
TAIL_LINES = 40


@dataclass
class _Stream:
    """Collects a pipe into the log file and a bounded tail; parses metric lines from stdout."""

    name: str
    logf: Any
    metrics: queue.Queue | None
    tail: collections.deque = field(default_factory=lambda: collections.deque(maxlen=TAIL_LINES))
    written: int = 0
    dropped: int = 0
    bad_metric_lines: int = 0
    # what the program told sweepq about itself in ``@sweepq {"_sweepq": {...}}`` lines (not
    # metrics): e.g. ``polls_stop``, sent by sweepq.init's run the first time should_stop is read
    control: dict[str, Any] = field(default_factory=dict)
    # output lines for the trial's stream in Redis (both pipes in one deque, in the order read)
    live: collections.deque | None = None

    buf: bytes = b""

    def feed(self, chunk: bytes) -> None:
        """Take what one read returned; handle every complete line (longer ones in pieces of
        MAX_LINE + 1 bytes, as ``readline(MAX_LINE + 1)`` would). One pass over the chunk: the
        rest is sliced off once, not after every line."""
        buf = self.buf + chunk if self.buf else chunk
        start, n = 0, len(buf)
        while start < n:
            nl = buf.find(b"\n", start, start + MAX_LINE + 1)
            if nl >= 0:
                end = nl + 1
            elif n - start > MAX_LINE:
                end = start + MAX_LINE + 1  # a line longer than any metric line: ordinary output
            else:
                break
            self.line(buf[start:end])
            start = end
        self.buf = buf[start:]

    def close(self) -> None:
        if self.buf:
            line, self.buf = self.buf, b""
            self.line(line)

    def line(self, raw: bytes) -> None:
        if self.metrics is not None and raw.startswith(PREFIX_BYTES) and len(raw) <= MAX_LINE:
            row = parse_line(raw)
            if row is not None:
                if CONTROL_KEY in row:
                    if isinstance(row[CONTROL_KEY], dict):
                        self.control.update(row[CONTROL_KEY])
                    return
                self.metrics.put(row)
                return
            self.bad_metric_lines += 1
        text = raw.decode("utf-8", "replace")
        self.tail.append(f"[{self.name}] {text.rstrip()[:1000]}")
        if self.live is not None:
            self.live.append((self.name[3:], text.rstrip("\r\n")[:OUTPUT_LINE]))
        if self.written + len(raw) <= LOG_CAP_BYTES:
            try:
                self.logf.write(raw)
                self.written += len(raw)
            except (OSError, ValueError):
                pass
        else:
            self.dropped += len(raw)


class _LazyFile:
    """The trial's log file, created at its first write: a program that prints only metric lines
    leaves no file (creating one costs a metadata commit, 0.3 ms on ext4: a tenth of a very short
    trial's cycle). ``sweepq logs`` then shows the lines kept in Redis, which are none."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.f: Any = None

    def write(self, data: bytes) -> int:
        if self.f is None:
            self.f = open(self.path, "ab")  # noqa: SIM115 - closed by close()
        return int(self.f.write(data))

    def close(self) -> None:
        if self.f is not None:
            self.f.close()


class _IOThread:
    """The one helper thread of a trial: reads the program's stdout and stderr into their
    streams and notices the program's exit (a pidfd in the same ``select``), calling ``on_exit``.

    One thread instead of one per pipe plus one waiting for the exit, started without waiting for
    it to be scheduled (``threading.Thread.start`` blocks until the new thread runs): every thread
    start and hand-off costs a scheduler wake-up, ~1 ms each on a busy 2-core box
    (benchmarks/dispatch.py). Without pidfds (not Linux >= 5.3) the exit is noticed by
    ``Popen.wait`` in a second thread.
    """

    def __init__(self, proc: subprocess.Popen, streams: list[tuple[Any, _Stream]], on_exit: Any) -> None:
        self.proc = proc
        self.streams = streams
        self.on_exit = on_exit
        self.pidfd: int | None = None
        pidfd_open = getattr(os, "pidfd_open", None)
        if pidfd_open is not None:
            with contextlib.suppress(OSError):
                self.pidfd = pidfd_open(proc.pid)
        self.waiter: threading.Thread | None = None
        self.done = threading.Event()

    def start(self) -> None:
        if self.pidfd is None:
            self.waiter = threading.Thread(target=self._wait_exit, daemon=True)
            self.waiter.start()
        _thread.start_new_thread(self._main, ())

    def _main(self) -> None:
        try:
            self.run()
        except Exception:  # never silently: the trial's output would stop being read
            log.exception("trial output reader failed")
        finally:
            self.done.set()

    def _wait_exit(self) -> None:
        self.proc.wait()
        self.on_exit()

    def join(self, timeout: float | None = None) -> None:
        self.done.wait(timeout)
        if self.waiter is not None:
            self.waiter.join(timeout)

    def run(self) -> None:
        sel = selectors.DefaultSelector()
        try:
            for pipe, stream in self.streams:
                sel.register(pipe.fileno(), selectors.EVENT_READ, (pipe, stream))
            if self.pidfd is not None:
                sel.register(self.pidfd, selectors.EVENT_READ, None)
            while sel.get_map():
                for key, _ in sel.select():
                    if key.data is None:  # the program ended
                        sel.unregister(key.fd)
                        self.on_exit()
                        continue
                    pipe, stream = key.data
                    try:
                        chunk = os.read(key.fd, 1 << 16)
                    except OSError:
                        chunk = b""
                    if chunk:
                        stream.feed(chunk)
                    else:
                        sel.unregister(key.fd)
                        stream.close()
                        pipe.close()
        finally:
            sel.close()
            if self.pidfd is not None:
                with contextlib.suppress(OSError):
                    os.close(self.pidfd)


# Set when a shutdown signal (a cold shutdown, a revoke) reaches this process during a task of
# trials. The forwarders below take the signal, so nothing else would remember it: a runner that
# finds it set hands its trial back without starting it, and the worker starts no further trial
# of the batch (it clears the flag when a task starts). Without it a signal landing just after a
# trial ended, during its final write, was lost, and the batch went on through the shutdown
# (found by a test: a cold shutdown waiting out a batch of 5 s trials).
SHUTDOWN = threading.Event()
HANDED_BACK = "worker shut down; trial handed back"  # the reason of a trial a shutdown gave back


@contextlib.contextmanager
def shutdown_guard() -> Iterator[None]:
    """Between the trials of a task (claims, final writes) a shutdown signal is remembered in
    SHUTDOWN instead of ending the pool process with a trial just claimed and never started."""
    guard = _Forwarder()
    guard.install()
    try:
        yield
    finally:
        guard.uninstall()


class _Forwarder:
    """Forward SIGTERM (and billiard's TERM_SIGNAL, SIGQUIT under REMAP_SIGTERM) to the trial's
    process group so a revoke, a cold shutdown or a Flower kill never orphans a training run."""

    def __init__(self) -> None:
        self.pgid: int | None = None
        self.signalled = False
        self._old: dict[int, Any] = {}

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        sigs = {signal.SIGTERM, signal.SIGQUIT, signal.SIGINT}
        for s in sigs:
            with contextlib.suppress(ValueError, OSError):
                self._old[s] = signal.signal(s, self._handle)

    def uninstall(self) -> None:
        for s, h in self._old.items():
            with contextlib.suppress(ValueError, OSError, TypeError):
                signal.signal(s, h)
        self._old.clear()

    def _handle(self, signum: int, frame: Any) -> None:  # noqa: ARG002
        self.signalled = True
        SHUTDOWN.set()
        if self.pgid is not None:
            with contextlib.suppress(OSError):
                os.killpg(self.pgid, signal.SIGTERM)


def _die_with_parent_fn() -> Any:
    """A preexec hook asking Linux to SIGKILL the trial if the worker process running it dies
    (a SIGKILLed pool child must not leave its training run behind, holding a GPU). Prepared
    before fork: the hook itself only makes one libc call."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig, sigkill = 1, int(signal.SIGKILL)

    def hook() -> None:
        prctl(pr_set_pdeathsig, sigkill, 0, 0, 0)

    return hook


_DIE_WITH_PARENT = _die_with_parent_fn()
# A preexec hook forces fork()+exec (20-35 ms per trial measured); util-linux's setpriv sets the
# same parent-death signal and lets Python spawn with vfork (a few ms). The hook is the fallback.
_SETPRIV = shutil.which("setpriv") if sys.platform.startswith("linux") else None


def _cannot_execute(argv: list[str], path: str, cwd: str) -> str:
    """Why argv[0] cannot be started ('' if it can): checked up front because a wrapper (setpriv)
    would otherwise turn a missing program into an anonymous exit code."""
    if not argv:
        return "cannot start an empty command"
    prog = argv[0]
    if os.sep in prog:
        path = prog if os.path.isabs(prog) else os.path.join(cwd, prog)
        if not os.path.exists(path):
            return f"cannot start {prog!r}: No such file or directory"
        if os.path.isdir(path) or not os.access(path, os.X_OK):
            return f"cannot start {prog!r}: Permission denied (not an executable file)"
        return ""
    if shutil.which(prog, path=path) is None:
        return f"cannot start {prog!r}: No such file or directory (not found on PATH)"
    return ""


FIRST_WAIT_S = 0.05


def log_dir_for(workdir: str | None = None) -> Path:
    """Where a worker writes its trials' output (``<run id>.log``): ``SWEEPQ_LOG_DIR``, else
    ``.sweepq/logs`` under the trials' working directory."""
    env = Settings.from_env().log_dir
    return Path(env) if env else Path(workdir or os.getcwd()) / ".sweepq" / "logs"


OUTPUT_LINE = 2000  # characters of an output line streamed to Redis (the log file keeps it whole)


def _wait_for_end(proc: subprocess.Popen, timeout: float) -> None:
    """Block until ``proc`` ends or ``timeout`` passes (a pidfd where Linux has them)."""
    pidfd_open = getattr(os, "pidfd_open", None)
    if pidfd_open is None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout)
        return
    try:
        fd = pidfd_open(proc.pid)
    except OSError:  # already reaped
        return
    try:
        select.select([fd], [], [], timeout)
    except OSError:
        pass
    finally:
        os.close(fd)


class TrialRunner(Execution):
    """Runs one claimed trial's program to its end and records the outcome in the store.

    The caller has already claimed the trial (it owns it under ``owner``); the lease, the fence
    and the final write are :class:`sweepq.executor.Execution`'s.
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
        workdir: str | None = None,
        gpus: str | None = None,
        log_dir: str | None = None,
        claimed_at: float | None = None,
    ) -> None:
        super().__init__(store, sweep_id, trial, config, owner, lease_ttl=lease_ttl, claimed_at=claimed_at)
        self.workdir = workdir or os.getcwd()
        self.gpus = gpus
        self.log_dir = Path(log_dir) if log_dir else log_dir_for(self.workdir)
        self.grace = float(config.get("stop_grace", 30.0) or 0.0)
        self.timeout = config.get("trial_timeout")
        self.forwarder = _Forwarder()
        self.shutdown_grace = 5.0
        self.pass_fds: list[int] = []  # GPU slot locks: held by the trial process itself
        self._exit_lock = threading.Lock()
        self._exited = False  # the I/O thread saw the program end
        self._waiting = False  # the watch loop is (about to be) blocked in BLPOP on the stop list
        self.tree: TrialTree | None = None
        self._control: dict[str, Any] = {}  # the program's @sweepq control messages (see _Stream)
        # output lines not yet streamed to Redis (sweepq logs --follow); the oldest go first
        self._live: collections.deque = collections.deque(maxlen=1000)
        self._term_due: float | None = None  # when a stop's SIGTERM is due (a program that polls should_stop)
        # a program that uses wandb: its parameters file and its runs' rows (sweepq.wandb_bridge)
        self._wandb: wandb_bridge.TrialBridge | None = None

    # -- environment ----------------------------------------------------------------------------
    def _trial_env(self) -> dict[str, str]:
        env = {
            "SWEEPQ_SWEEP_ID": self.sid,
            "SWEEPQ_RUN_ID": self.tid,
            "SWEEPQ_PARAMS": json.dumps(self.trial["params"]),
            "SWEEPQ_REDIS_URL": os.environ.get("SWEEPQ_REDIS_URL", ""),
            "SWEEPQ_STOP_FILE": str(self.stop_file),
            "PYTHONUNBUFFERED": "1",
        }
        if self.gpus is not None:
            env["CUDA_VISIBLE_DEVICES"] = self.gpus
        if self._wandb is None:
            self._wandb = wandb_bridge.prepare(self.tid, self.sid, self.trial["params"], self.log_dir)
        if self._wandb is not None:
            env.update(self._wandb.env)
        return env

    def _spawn_env(self) -> dict[bytes, bytes]:
        """The trial's environment: this worker's, plus the trial's own variables. Built as bytes
        from ``os.environb``, so no inherited variable is decoded and encoded again for exec (a
        tenth of the runner's CPU per trial, profiled)."""
        raw = environ_bytes()  # copied in C, not through the Mapping view
        env = dict(raw) if raw is not None else dict(os.environb)
        env.update((os.fsencode(k), os.fsencode(v)) for k, v in self._trial_env().items())
        if self.tree is not None:
            env.update((os.fsencode(k), os.fsencode(v)) for k, v in self.tree.env().items())
        return env

    @property
    def stop_file(self) -> Path:
        return self.log_dir / f"{self.tid}.stop"

    def build_argv(self) -> list[str]:
        argv = command_mod.render(
            self.config,
            self.trial["params"],
            sweep_id=self.sid,
            run_id=self.tid,
            args_json_dir=self.workdir,
            interpreter=sys.executable,
        )
        if "${args_json_file}" in [str(c) for c in self.config.get("command") or []]:
            command_mod.write_args_json_file(
                self.trial["params"], sweep_id=self.sid, run_id=self.tid, args_json_dir=self.workdir
            )
        return argv

    def _drain_metrics(self, q: queue.Queue) -> None:
        """Take the rows the program printed (and its wandb runs wrote) so far."""
        rows = []
        while True:
            try:
                rows.append(q.get_nowait())
            except queue.Empty:
                break
        if self._wandb is not None:
            rows.extend(self._wandb.rows())
        self.add_rows(rows)

    def _take_output(self) -> list[tuple[str, str]]:
        lines = []
        while self._live:
            lines.append(self._live.popleft())
        return lines

    def _flush_metrics(self, q: queue.Queue) -> None:
        """Send what the program logged so far (the stopping rules need it while it runs), and
        its new output lines (sweepq logs --follow)."""
        lines = self._take_output()
        if lines:
            self._try(self.store.append_output, self.tid, lines)
        self._drain_metrics(q)
        self.flush()

    # -- the run --------------------------------------------------------------------------------
    def run(self) -> TrialOutcome:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            self.stop_file.unlink()
        try:
            argv = self.build_argv()
        except Exception as exc:  # a config the renderer cannot use: the trial fails, the sweep lives
            return self._finish("failed", None, f"cannot build command: {exc}", "")
        log_path = self.log_dir / f"{self.tid}.log"
        logf = _LazyFile(log_path)  # closed in finally
        mq: queue.Queue = queue.Queue()
        out = _Stream("stdout", logf, mq, live=self._live)
        err = _Stream("stderr", logf, None, live=self._live)
        self._control = out.control
        self.forwarder.install()
        try:
            if SHUTDOWN.is_set():  # the worker is shutting down: hand the trial back unstarted
                self._must(self.store.release_trial, self.sid, self.tid, self.owner, HANDED_BACK)
                return TrialOutcome("released", None, HANDED_BACK)
            self.tree = TrialTree(self.tid)
            try:
                env = self._spawn_env()
            except Exception as exc:  # never a stranded claim: the trial fails with the cause
                log.exception("trial %s: cannot prepare its environment", self.tid)
                msg = f"cannot prepare the trial's environment: {type(exc).__name__}: {exc}"
                return self._finish("failed", None, msg, msg)
            missing = _cannot_execute(argv, os.fsdecode(env.get(b"PATH", os.defpath.encode())), self.workdir)
            if missing:
                return self._finish("failed", 127 if "No such file" in missing else 126, missing, missing)
            spawn_argv, hook = argv, _DIE_WITH_PARENT
            if tree_mod.guarded():
                hook = None  # the slot's guard kills the trial if this process dies (sweepq.tree)
            elif _SETPRIV and argv:
                spawn_argv, hook = [_SETPRIV, "--pdeathsig", "KILL", "--", *argv], None
            # the fence file before the program exists: a pool process stopped at any instant after
            # the spawn leaves its trial to the worker's main process (its cgroup or token kill it;
            # the process group joins the file at the next renewal)
            self.leave_fence_file(self.tree.describe())
            try:
                proc = subprocess.Popen(
                    self.tree.argv(spawn_argv),
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    start_new_session=True,
                    env=env,
                    cwd=self.workdir,
                    pass_fds=tuple(self.pass_fds),
                    preexec_fn=hook,
                )
            except (OSError, ValueError) as exc:
                msg = f"cannot start {argv[0] if argv else 'command'!r}: {exc.strerror if isinstance(exc, OSError) and exc.strerror else exc}"
                return self._finish("failed", 127, msg, msg)
            pgid = proc.pid
            self.tree.started(pgid)
            self.update_fence_file(self.tree.describe())
            self.forwarder.pgid = pgid
            self.arm_fence()
            io = _IOThread(proc, [(proc.stdout, out), (proc.stderr, err)], self._announce_exit)
            io.start()
            outcome = self._watch(proc, mq)
            # whatever of the trial survived the main process goes too (the slot must be free),
            # before waiting on the pipes: surviving children hold them open. The lease is kept
            # alive meanwhile, so the reaper never hands the trial to someone else too early.
            self._end_tree()
            self.disarm_fence()  # nothing of the trial runs any more: nothing to fence
            io.join(timeout=5)  # also: its exit push lands before finish deletes the stop list
            tail = _tail_text(out, err)
            if out.bad_metric_lines:  # at the end: the tail is cut from the front
                tail += f"\n[sweepq] {out.bad_metric_lines} malformed @sweepq line(s) ignored"
            if outcome.state == "lost":
                return outcome
            if outcome.state == "released":
                return self.release(outcome)
            self._drain_metrics(mq)  # the last rows travel with the final state (one round trip)
            return self._finish(outcome.state, outcome.exit_code, outcome.reason, tail)
        finally:
            self.disarm_fence()
            self.forwarder.uninstall()
            self.forwarder.pgid = None
            if self.tree is not None:
                self.tree.close()
            logf.close()

    def _announce_exit(self) -> None:
        """The program ended: wake the watch loop's BLPOP at once (instead of at its timeout),
        but only if it is waiting there: a short trial usually ends before the loop gets there,
        and then the push would be one more round trip for nothing."""
        with self._exit_lock:
            self._exited = True
            waiting = self._waiting
        if waiting:
            self._try(self.store.notify_exited, self.tid)

    def _end_tree(self) -> None:
        """Stop whatever of the trial is still running: SIGTERM to every process, SIGKILL after the
        grace (at most 5 s here: the program itself has ended), heartbeating meanwhile."""
        tree = self.tree
        if tree is None or not tree.alive():
            return
        tree.signal(signal.SIGTERM)
        end = time.monotonic() + min(self.grace, 5.0)
        last_beat = time.monotonic()
        while tree.alive() and time.monotonic() < end:
            if time.monotonic() - last_beat > max(0.1, self.lease_ttl * BEAT_SHARE):
                self.beat()
                last_beat = time.monotonic()
            time.sleep(0.05)
        tree.kill()
        tree.wait_gone(5.0)

    def _watch(self, proc: subprocess.Popen, mq: queue.Queue) -> TrialOutcome:
        tree = self.tree
        assert tree is not None
        started = time.monotonic()
        # the claim has just written the lease, and a stop request arrives on the stop list: the
        # first renewal is due after beat_every, not now (one round trip less per trial)
        last_beat = started
        # short trials end within milliseconds: wait for that on the process itself first, so the
        # end is seen at once without a Redis round trip (a stop request arriving in this window
        # waits for it: at most FIRST_WAIT_S)
        _wait_for_end(proc, FIRST_WAIT_S)
        beat_every = max(0.1, self.lease_ttl * BEAT_SHARE)
        stop_kind = ""
        term_at: float | None = None
        killed = False
        while True:
            rc = proc.poll()
            if rc is not None or self.fenced:
                break
            now = time.monotonic()
            if self.forwarder.signalled and not stop_kind:
                stop_kind = "shutdown"
                term_at = now
                tree.signal(signal.SIGTERM)
            if now - last_beat >= beat_every:
                res = self.beat()
                if res is not None:
                    last_beat = now
                    owned, stop_req = res
                    if not owned:
                        # the reaper gave this trial to someone else: stop our copy now
                        tree.kill()
                        proc.wait()
                        return TrialOutcome("lost", proc.returncode, "lease lost")
                    if stop_req and not stop_kind and self._begin_stop(proc):
                        stop_kind, term_at = stop_req, now
            if (
                self.timeout
                and not stop_kind
                and now - started > float(self.timeout)
                and self._begin_stop(proc)
            ):
                stop_kind, term_at = "timeout", now
            if self._term_due is not None and now >= self._term_due:
                self._term_due = None
                tree.signal(signal.SIGTERM)
            if stop_kind and term_at is not None and not killed:
                grace = self.shutdown_grace if stop_kind == "shutdown" else self.grace
                if now - term_at >= grace:
                    tree.kill()
                    killed = True
            self._flush_metrics(mq)
            if not stop_kind:
                with self._exit_lock:
                    self._waiting = not self._exited
                req = None
                if self._waiting:
                    req = self._try(self.store.wait_stop, self.tid, 1.0)
                    with self._exit_lock:
                        self._waiting = False
                elif proc.poll() is None:  # seen ended by its pidfd, not reaped yet: never spin
                    time.sleep(0.001)
                if req and req != EXITED and self._begin_stop(proc):
                    stop_kind, term_at = req, time.monotonic()
            else:
                time.sleep(0.05)
        if self.fence_fired_elsewhere:
            self.fenced = True  # the main process fenced it while this process could not
        if self.fenced:
            # the watchdog killed it: the lease may go to another worker, this copy's result
            # must not count, and the trial goes back to the queue if it is still ours
            tree.kill()
            proc.wait()
            return TrialOutcome("released", proc.returncode, FENCED)
        rc = proc.returncode
        if not stop_kind and self.forwarder.signalled:
            # the forwarded signal killed the program before the loop saw the flag
            stop_kind = "shutdown"
        if stop_kind == "shutdown":
            if rc == 0:  # exit 0 means finished, even if it came during a shutdown
                return TrialOutcome("finished", 0, "")
            return TrialOutcome("released", rc, HANDED_BACK)
        if stop_kind == "cancel":
            return TrialOutcome("canceled", rc, "canceled")
        if stop_kind == "timeout":
            return TrialOutcome("failed", rc, f"trial_timeout: ran longer than {self.timeout} s")
        if stop_kind:
            return TrialOutcome("stopped", rc, "early-terminated" if stop_kind == "stop" else stop_kind)
        if rc == 0:
            return TrialOutcome("finished", 0, "")
        if rc < 0:
            try:
                name = signal.Signals(-rc).name
            except ValueError:
                name = str(-rc)
            return TrialOutcome("failed", rc, f"killed by signal {name}")
        return TrialOutcome("failed", rc, f"exit code {rc}")

    def _begin_stop(self, proc: subprocess.Popen) -> bool:
        """Start stopping the trial (early termination, cancel, stop, timeout); False when the
        program has already ended (it finished before the stop reached it: not a stop).

        First ``run.should_stop`` becomes true (the stop file). A program that reads it (it said
        so, ``_Stream.control``) gets half the stop grace to checkpoint and exit on its own before
        SIGTERM; any other gets SIGTERM at once. SIGKILL follows ``stop_grace`` after the request."""
        if self._exited or proc.poll() is not None:
            return False
        with contextlib.suppress(OSError):
            self.stop_file.touch()
        if self._control.get("polls_stop") and self.grace > 0:
            self._term_due = time.monotonic() + self.grace / 2
        elif self.tree is not None:
            self.tree.signal(signal.SIGTERM)
        return True

    def _finish(self, state: str, exit_code: int | None, reason: str, tail: str) -> TrialOutcome:
        outcome = self.finish(state, exit_code, reason, tail, output=self._take_output())
        with contextlib.suppress(OSError):
            self.stop_file.unlink()
        return outcome

    def kill(self) -> None:
        """The fence fired: every process of the trial dies now."""
        if self.tree is not None:
            self.tree.kill()


def _tail_text(out: _Stream, err: _Stream) -> str:
    lines = list(err.tail) or list(out.tail)
    if err.tail and out.tail:
        lines = list(out.tail)[-10:] + list(err.tail)
    text = "\n".join(lines)
    if out.dropped or err.dropped:
        text += (
            f"\n[sweepq] log capped at {LOG_CAP_BYTES} bytes; {out.dropped + err.dropped} bytes not written"
        )
    return text[-TAIL_CHARS:]
