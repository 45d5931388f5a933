"""The worker: ``celery -A sweepq.worker worker``. This module is Celery's entry point: it builds
the app from the environment (``sweepq.dispatch``), defines the trial task, and hooks the worker's
life (the registry the controller sizes queues from, GPU slots, process trees, fencing).

The task hands each trial to the executor (``sweepq.executor``): claim, run with heartbeats,
finish. A message delivered twice (redelivery after the visibility timeout, a duplicate publish)
runs each trial once: the claim is atomic.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import socket
import threading
from typing import Any

from celery import signals

from sweepq.config import load_config
from sweepq.dispatch import DEFAULT_QUEUE, TASK_NAME, make_app
from sweepq.settings import Settings
from sweepq.store import Claim, Store

log = logging.getLogger("sweepq.worker")

SETTINGS = Settings.from_env()  # read once, when Celery imports this module
LEASE_TTL = SETTINGS.lease_ttl
WORKER_TTL = 15.0


app = make_app(SETTINGS)

_store: Store | None = None
_store_lock = threading.Lock()
_state: dict[str, Any] = {"name": None, "gpus": None, "count": None, "sweep": ""}


def get_store() -> Store:
    """One store per process (pool children included: created lazily after fork)."""
    global _store
    with _store_lock:
        if _store is None or _store_pid.get("pid") != os.getpid():
            _store = Store(url=SETTINGS.redis_url, namespace=SETTINGS.namespace)
            _store_pid["pid"] = os.getpid()
        return _store


_store_pid: dict[str, int] = {}


def worker_name() -> str:
    return _state.get("name") or f"{socket.gethostname()}:{os.getpid()}"


@app.task(name=TASK_NAME, bind=True, acks_late=True, ignore_result=True)
def run_trial(self: Any, sweep_id: str, trial_id: str, *more: str) -> str:
    """Claim each trial and run it to its end, one after another (``more``: the rest of a batch of
    short trials, see controller.BATCH_MAX); a second delivery finds them claimed and returns.

    A trial of a batch is claimed only when the one before it has ended: the others stay queued
    and published, so if this worker dies, or a trial of the batch runs long while a slot idles,
    the controller's re-send of long-unclaimed trials hands them to another worker (claims are
    atomic, so the batch skips whatever was taken meanwhile).
    """
    from sweepq.gpus import SlotPool
    from sweepq.runner import HANDED_BACK, SHUTDOWN, shutdown_guard

    SHUTDOWN.clear()  # a signal taken by an earlier task's trial is that task's business
    store = get_store()
    hostname = getattr(self.request, "hostname", None) or worker_name()
    try:
        config = _sweep_config(store, sweep_id)
    except Exception as exc:  # unknown sweep (deleted namespace): nothing to run
        log.warning("trial %s: %s", trial_id, exc)
        return "missing"
    pool = SlotPool.for_this_worker()
    lease = pool.acquire(int(config.get("gpus_per_trial") or 1))
    states: list[str] = []
    ids = (trial_id, *more)
    claimed: tuple[str, Claim] | None = None  # (owner, claim) of the next trial, taken with the last finish
    try:
        with shutdown_guard():
            for i, tid in enumerate(ids):
                if i and SHUTDOWN.is_set():
                    # a shutdown (or a revoke) reached this process during the batch: start nothing
                    # more (the rest stay queued and published, and are sent again or redelivered
                    # elsewhere); a trial claimed with the last final write goes back unused
                    if claimed is not None and claimed[1].ok:
                        store.release_trial(sweep_id, tid, claimed[0], HANDED_BACK)
                    break
                state, claimed = _run_one(
                    store,
                    sweep_id,
                    tid,
                    config,
                    hostname,
                    lease,
                    claimed,
                    ids[i + 1] if i + 1 < len(ids) else None,
                )
                states.append(state)
    finally:
        lease.release()
    return states[0] if len(states) == 1 else ",".join(states)


def _run_one(
    store: Store,
    sweep_id: str,
    trial_id: str,
    config: dict[str, Any],
    hostname: str,
    lease: Any,
    claimed: tuple[str, Claim] | None = None,
    next_id: str | None = None,
) -> tuple[str, tuple[str, Claim] | None]:
    """Run one trial: (its end state, and the (owner, claim) of ``next_id`` if its claim went with
    this trial's final write). ``claimed``: this trial's own claim, taken that way."""
    from sweepq.runner import TrialRunner

    agent, count = SETTINGS.agent_name, SETTINGS.agent_count
    if agent and count:
        # `sweepq agent --count N`: N trials across all pool children, counted atomically (one
        # claim at a time, so no claim rides on a finish here)
        if not store.agent_take(agent, count):
            store.unpublish(trial_id)
            return "declined", None
    workdir = SETTINGS.workdir
    if claimed is not None:
        owner, claim = claimed
    else:
        owner = _owner(hostname)
        claim = store.claim(
            sweep_id,
            trial_id,
            owner,
            hostname,
            LEASE_TTL,
            gpus=lease.visible_devices or "",
            log_path=_log_path(workdir, trial_id),
        )
    if not claim.ok:
        log.info("trial %s not run: %s %s", trial_id, claim.status, claim.state)
        if agent and count:
            store.agent_untake(agent)
        return claim.status, None
    trial = {"id": trial_id, "params": claim.params}
    runner = TrialRunner(
        store,
        sweep_id,
        trial,
        config,
        owner,
        lease_ttl=LEASE_TTL,
        gpus=lease.visible_devices,
        workdir=workdir,
        claimed_at=claim.sent_at,
    )
    runner.pass_fds = lease.fds
    next_owner = ""
    if next_id is not None and not (agent and count):
        next_owner = _owner(hostname)
        runner.claim_next = (
            next_id,
            next_owner,
            hostname,
            LEASE_TTL,
            lease.visible_devices or "",
            _log_path(workdir, next_id),
        )
    outcome = runner.run()
    if agent:
        store.agent_done(agent)
    nxt = (next_owner, runner.next_claim) if runner.next_claim is not None else None
    return outcome.state, nxt


def _log_path(workdir: str | None, tid: str) -> str:
    """The trial's log file as the runner will write it (recorded by the claim, for sweepq logs)."""
    from sweepq.runner import log_dir_for

    return str((log_dir_for(workdir) / f"{tid}.log").absolute())


def _owner(hostname: str) -> str:
    return f"{hostname}:{os.getpid()}:{secrets.token_hex(4)}"


_configs: dict[str, dict[str, Any]] = {}


def _sweep_config(store: Store, sweep_id: str) -> dict[str, Any]:
    """A sweep's config never changes: read and parse it once per process."""
    cfg = _configs.get(sweep_id)
    if cfg is None:
        # checked in full once per process (a config that reached Redis another way fails here,
        # and the controller fails its sweep); then the engine's fast path
        cfg = _configs[sweep_id] = load_config(store.sweep_config(sweep_id))
        if len(_configs) > 256:
            _configs.pop(next(iter(_configs)))
    return cfg


@signals.celeryd_init.connect
def _default_concurrency_to_gpus(conf: Any = None, options: dict[str, Any] | None = None, **_: Any) -> None:
    """Without ``-c``, a GPU box runs one pool child per GPU, not Celery's one per CPU: a child
    waiting for a free GPU holds its trial message (one that an idle box could run), and the
    controller would size the queue for slots that cannot run anything."""
    if conf is None or (options or {}).get("concurrency") or conf.worker_concurrency:
        return
    from sweepq.gpus import detect_gpus

    gpus = detect_gpus()
    if gpus:
        conf.worker_concurrency = len(gpus)


@signals.worker_process_init.connect
def _pool_process_init(**_: Any) -> None:
    """A pool process adopts its trials' orphans and lives in a cgroup of its own where the machine
    allows (so a double-forked daemon stays killable, sweepq.tree), and kills what is left of
    trials whose pool process died before it could (a SIGKILLed child this one replaces)."""
    from sweepq import tree, wandb_bridge

    tree.become_subreaper()
    tree.enter_slot()
    # what a first trial would otherwise wait for (~40 ms: the runner's imports, wandb's lookup),
    # paid here, before any message arrives: the first trials of a sweep start at once
    import sweepq.gpus
    import sweepq.runner  # noqa: F401

    wandb_bridge.enabled()
    try:
        n = tree.clean_stale()
    except Exception as exc:  # cleaning is best effort; a worker must start anyway
        log.warning("cleaning up after dead pool processes failed: %s", exc)
        return
    if n:
        log.warning("killed the leftover processes of %d trial(s) whose worker process died", n)


@signals.worker_process_shutdown.connect
def _pool_process_exit(**_: Any) -> None:
    from sweepq import tree

    tree.leave_slot()


@signals.worker_shutdown.connect
def _worker_exit(**_: Any) -> None:
    """The pool processes are gone: what a killed one left behind goes too (its cgroup)."""
    from sweepq import tree

    with contextlib.suppress(Exception):
        tree.clean_stale()


# -- worker registry: the controller sizes the queue from the slots of live workers ------------
_hb_stop = threading.Event()


@signals.worker_ready.connect
def _on_worker_ready(sender: Any = None, **_: Any) -> None:
    hostname = getattr(sender, "hostname", None) or worker_name()
    _state["name"] = hostname
    consumer = sender
    queues = [DEFAULT_QUEUE]
    slots = 1
    try:
        queues = sorted(q.name for q in consumer.task_consumer.queues)
        slots = int(consumer.pool.limit or consumer.controller.concurrency or 1)
    except Exception:  # the shape of Celery internals varies; defaults are safe
        try:
            slots = int(app.conf.worker_concurrency or 1)
        except Exception:
            slots = 1
    from sweepq.gpus import detect_gpus

    gpus = detect_gpus()
    sweep = SETTINGS.agent_sweep

    def beat() -> None:
        registered = False
        while not _hb_stop.is_set():
            try:
                st = get_store()
                if not registered:
                    st.register_worker(
                        hostname, slots, queues, sweep=sweep, gpus=",".join(gpus or []), ttl=WORKER_TTL
                    )
                    registered = True
                else:
                    st.worker_heartbeat(hostname, ttl=WORKER_TTL)
                    if not st.worker_registered(hostname):
                        registered = False
                        continue
            except Exception as exc:
                log.warning("worker heartbeat failed: %s", exc)
                registered = False
            _hb_stop.wait(WORKER_TTL / 3)

    threading.Thread(target=beat, name="sweepq-worker-heartbeat", daemon=True).start()
    from sweepq.executor import keep_fences

    # the backstop for trials whose pool process is stopped or hung: it cannot fence them itself
    threading.Thread(
        target=keep_fences, args=(_hb_stop, LEASE_TTL), name="sweepq-fence-keeper", daemon=True
    ).start()


@signals.worker_shutting_down.connect
def _on_worker_shutdown(**_: Any) -> None:
    _hb_stop.set()
    name = _state.get("name")
    if name:
        with contextlib.suppress(Exception):
            get_store().unregister_worker(name)
