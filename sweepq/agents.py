"""Running a sweep's trials on this machine: ``sweepq agent`` and ``sweepq run`` start a Celery
worker bound to the sweep (:class:`AgentProcess`); ``sweepq.agent(sweep_id, function=train)``
runs trials as calls of a function in this process (:class:`FunctionTrial`), as ``wandb.agent``
does. Both claim, renew and finish a trial through :class:`sweepq.executor.Execution`.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sweepq import client
from sweepq.executor import BEAT_SHARE, FENCED, Execution, TrialOutcome
from sweepq.settings import Settings
from sweepq.store import Store


def worker_argv(queues: list[str], concurrency: int, name: str, loglevel: str = "WARNING") -> list[str]:
    # no -E: task events cost ~14 % of a worker's CPU per trial; Flower turns them on when it runs
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "sweepq.worker",
        "worker",
        "-Q",
        ",".join(queues),
        "-c",
        str(concurrency),
        "-n",
        name,
        "--without-gossip",
        "--without-mingle",
        "-l",
        loglevel,
    ]


class AgentProcess:
    """A Celery worker child bound to one sweep (``sweepq agent`` and ``sweepq run``)."""

    def __init__(
        self,
        store: Store,
        sweep_id: str,
        slots: int,
        count: int | None = None,
        gpus: list[str] | None = None,
        loglevel: str = "WARNING",
    ) -> None:
        self.store = store
        self.sid = sweep_id
        self.name = f"agent-{sweep_id}-{secrets.token_hex(3)}@{socket.gethostname()}"
        self.count = count
        self.slots = slots
        env = dict(os.environ)
        env.update(
            {
                "SWEEPQ_AGENT_SWEEP": sweep_id,
                "SWEEPQ_AGENT_NAME": self.name,
                "SWEEPQ_REDIS_URL": store.url,
                "SWEEPQ_NAMESPACE": store.ns,
                # SIGTERM = cold shutdown: running trials are stopped and handed back at once
                "REMAP_SIGTERM": "SIGQUIT",
            }
        )
        if count:
            env["SWEEPQ_AGENT_COUNT"] = str(count)
        if gpus is not None:
            env["SWEEPQ_GPUS"] = ",".join(gpus)
        self.argv = worker_argv([store.keys.agent_queue(sweep_id)], slots, self.name, loglevel)
        self.env = env
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        # registered before the worker is up, so the controller routes the first trials here
        self.store.register_worker(
            self.name, self.slots, [self.store.keys.agent_queue(self.sid)], sweep=self.sid, ttl=15.0
        )
        log_dir = Path(Settings.from_env().log_dir or Path(".sweepq") / "logs")
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"worker-{self.sid}.log"
        with open(self.log_path, "ab") as out:  # the worker's chatter stays out of the progress bar
            self.proc = subprocess.Popen(
                self.argv,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def done_count(self) -> int:
        return self.store.agent_done_count(self.name)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 30.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(OSError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(OSError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        with contextlib.suppress(Exception):
            self.store.forget_agent(self.name)


def default_slots(gpus: list[str] | None, per_trial: int = 1) -> int:
    if gpus:
        return max(1, len(gpus) // max(1, per_trial))
    return 1


def run_agent(
    store: Store,
    sweep_id: str,
    count: int | None = None,
    gpu_list: list[str] | None = None,
    gpus_given: bool = False,
    workers: int | None = None,
    controller: bool = True,
    say: Callable[[str], None] = lambda _m: None,
) -> int:
    """Run trials of one sweep on this machine (a Celery worker bound to it, and a standby
    controller unless told otherwise) until the sweep ends, ``count`` trials ran, or SIGTERM/SIGINT."""
    from sweepq.controller import run_controller_thread

    config = store.sweep_config(sweep_id)
    slots = workers or default_slots(gpu_list, int(config.get("gpus_per_trial") or 1))
    ctl = th = None
    if controller:
        ctl, th = run_controller_thread(store, tick=0.25)
    agent = AgentProcess(store, sweep_id, slots, count=count, gpus=gpu_list if gpus_given else None)
    agent.start()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    say(f"agent {agent.name}: {slots} slot(s) on sweep {sweep_id}")
    try:
        while not stop.wait(0.5):
            if not agent.alive():
                break
            if count and agent.done_count() >= count:
                break
            if sweep_id not in store.active_sweeps():
                break
    finally:
        agent.stop()
        if ctl is not None and th is not None:
            ctl.stop_event.set()
            th.join(timeout=5)
    return 0


# -- trials as function calls in this process -------------------------------------------------------
class FunctionTrial(Execution):
    """One trial run as a call of ``function`` in this thread. Its ``sweepq.init()`` sees the
    trial's parameters, its ``run.log`` rows go to the store as they come, and a stop (early
    termination, cancel, a lost lease) makes ``run.should_stop`` true: a thread cannot be killed,
    so the function is asked."""

    def __init__(
        self,
        store: Store,
        sweep_id: str,
        trial: dict[str, Any],
        config: dict[str, Any],
        owner: str,
        function: Callable[[], Any],
        *,
        lease_ttl: float,
        claimed_at: float,
    ) -> None:
        super().__init__(store, sweep_id, trial, config, owner, lease_ttl=lease_ttl, claimed_at=claimed_at)
        self.function = function
        self.stop_event = threading.Event()
        self._lock = threading.Lock()

    def kill(self) -> None:
        self.stop_event.set()

    def _sink(self, row: dict[str, Any]) -> None:
        with self._lock:
            self.add_rows([row])
            self.flush()

    def _keep_lease(self, done: threading.Event) -> None:
        while not done.wait(max(0.1, self.lease_ttl * BEAT_SHARE)):
            res = self.beat()
            if res is not None and (res[1] or not res[0]):
                self.stop_event.set()

    def run(self) -> TrialOutcome:
        done = threading.Event()
        self.arm_fence()
        threading.Thread(target=self._keep_lease, args=(done,), name="sweepq-lease", daemon=True).start()
        client.enter_trial(self.trial["params"], self.tid, self.sid, self._sink, self.stop_event)
        state, code, tail = "finished", 0, ""
        try:
            self.function()
        except Exception as exc:
            state, code = "failed", 1
            tail = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))[-8000:]
        finally:
            client.leave_trial()
            done.set()
            self.disarm_fence()
        if self.fenced:
            return self.release(TrialOutcome("released", code, FENCED))
        if self.stop_event.is_set() and state == "finished":
            state = "stopped"
        with self._lock:
            return self.finish(state, code, "" if state == "finished" else state, tail)


def run_functions(
    sweep_id: str,
    function: Callable[[], Any],
    count: int | None = None,
    *,
    store: Store | None = None,
    controller: bool = True,
    poll: float = 0.1,
    settings: Settings | None = None,
) -> None:
    """Run trials of ``sweep_id`` as calls of ``function`` in this process (``sweepq.agent``).

    The agent registers as a one-slot worker bound to the sweep; the controller (started here too
    unless one already leads) hands it trials that it claims directly from Redis (no Celery
    message: it is in-process). A function that raises ends its trial ``failed`` with the
    exception in the log tail."""
    settings = settings or Settings.from_env()
    st = store or Store(url=settings.redis_url, namespace=settings.namespace)
    st.get_sweep(sweep_id)  # raises NotFound early
    name = f"inproc-{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(2)}"
    queue = f"direct:{sweep_id}"
    ctl = th = None
    if controller:
        from sweepq.controller import run_controller_thread

        ctl, th = run_controller_thread(st, tick=0.2)
    stop_beat = threading.Event()

    def beat() -> None:
        while not stop_beat.is_set():
            with contextlib.suppress(Exception):
                st.register_worker(name, 1, [queue], sweep=sweep_id, ttl=15.0)
            stop_beat.wait(5.0)

    threading.Thread(target=beat, daemon=True).start()
    done = 0
    try:
        while count is None or done < count:
            state = st.sweep_state(sweep_id)
            inflight = st.inflight_ids(sweep_id)
            if state not in ("running", "paused") and not inflight:
                break
            tid = next(
                (
                    t["id"]
                    for t in st.get_trials(sorted(inflight), history=False)
                    if t["state"] == "queued" and t.get("queue") == queue
                ),
                None,
            )
            if tid is None:
                if state != "running" and not inflight:
                    break
                time.sleep(poll)
                continue
            owner = f"{name}:{secrets.token_hex(4)}"
            claim = st.claim(sweep_id, tid, owner, name, settings.lease_ttl)
            if not claim.ok:
                continue
            trial = {"id": tid, "params": claim.params}
            FunctionTrial(
                st,
                sweep_id,
                trial,
                st.sweep_config(sweep_id),
                owner,
                function,
                lease_ttl=settings.lease_ttl,
                claimed_at=claim.sent_at,
            ).run()
            done += 1
    finally:
        stop_beat.set()
        with contextlib.suppress(Exception):
            st.unregister_worker(name)
        if ctl is not None and th is not None:
            ctl.stop_event.set()
            th.join(timeout=5)
