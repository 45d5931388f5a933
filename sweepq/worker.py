"""The Celery app and the trial task: ``celery -A sweepq.worker worker``.

Every setting below is chosen for trials that run for hours or days (measured in
../shared/CELERY-NOTES.md); the reason for each is next to it. The task message carries only the
sweep id and the trial id (or, for a batch of very short trials, several trial ids): the command
is rendered on the worker from the sweep's config in Redis, and claiming a trial is an atomic
script, so a message delivered twice (redelivery after the visibility timeout, a duplicate
publish) runs each trial once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import socket
import threading
from collections.abc import Sequence
from typing import Any

from celery import Celery, signals

from sweepq.store import Claim, Store, redis_url_from_env
from sweepq.store.keys import Keys, namespace_from_env

log = logging.getLogger("sweepq.worker")

DEFAULT_QUEUE = "sweepq"
LEASE_TTL = float(os.environ.get("SWEEPQ_LEASE_TTL", "30"))
WORKER_TTL = 15.0
TASK_NAME = "sweepq.run_trial"


def broker_url() -> str:
    return os.environ.get("SWEEPQ_BROKER_URL") or redis_url_from_env()


def celery_config(namespace: str | None = None) -> dict[str, Any]:
    """One documented Celery configuration (each setting's reason beside it; docs/reliability.md)."""
    keys = Keys(namespace or namespace_from_env())
    transport: dict[str, Any] = {
        # Trials own their lease in Redis (30 s, renewed by heartbeat): recovery of a dead worker is
        # the controller's reaper, in seconds. Celery's own redelivery is only a last-resort net,
        # so its visibility timeout is longer than any trial could run.
        "visibility_timeout": float(os.environ.get("SWEEPQ_VISIBILITY_TIMEOUT", 7 * 24 * 3600)),
        # notice half-open connections (NAT, a restarted Redis) before a BRPOP hangs forever, and
        # never wait forever on a silent one (a partition, a hung proxy): kombu reconnects
        "health_check_interval": 25,
        "socket_keepalive": True,
        "socket_timeout": 30.0,
        "socket_connect_timeout": 10.0,
        # every broker key under the namespace: teams and tests share a Redis safely
        "global_keyprefix": keys.celery_prefix,
    }
    return {
        # JSON only: a pickled message is refused (anyone who can write the broker could run code)
        "task_serializer": "json", "result_serializer": "json", "event_serializer": "json",
        "accept_content": ["json"], "result_accept_content": ["json"],
        # a trial is acked when it ends: a cold-shut-down worker's message goes back to the queue
        "task_acks_late": True,
        # one trial per slot, no hoarding: a worker takes a message only when a slot is free
        "worker_prefetch_multiplier": 1,
        "worker_disable_prefetch": True,
        # a killed pool child must not requeue in a loop: the reaper decides (bounded by retries)
        "task_reject_on_worker_lost": False,
        "task_acks_on_failure_or_timeout": True,
        # no result backend: state lives in sweepq's own records
        "task_ignore_result": True,
        "broker_transport_options": transport,
        "broker_connection_retry_on_startup": True,
        "broker_connection_retry": True,
        "broker_connection_max_retries": None,  # retry forever: a Redis restart is not fatal
        # a broker blip must not kill day-long trials
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        # Task events off unless asked for (`-E`, SWEEPQ_TASK_EVENTS=1): three events per trial were
        # ~14 % of a worker's CPU per trial (benchmarks/dispatch.py). Flower turns them on in every
        # worker it sees (its --enable_events, the default), so Flower still lists every trial.
        # No task-sent events: they doubled the cost of every publish, and sweepq's own records
        # already say what is queued. Worker heartbeats (Flower's online/offline) stay on.
        "worker_send_task_events": os.environ.get("SWEEPQ_TASK_EVENTS", "") in ("1", "true", "yes"),
        "task_send_sent_event": False, "task_track_started": True,
        # no Celery time limits: they orphan subprocesses; trial_timeout is enforced by the runner
        "task_time_limit": None, "task_soft_time_limit": None,
        "task_default_queue": DEFAULT_QUEUE,
        "worker_hijack_root_logger": False,
    }


def _reuse_kombu_redis_clients() -> None:
    """Make kombu's Redis channel reuse one synchronous client instead of building a new one for
    every ack, event and publish.

    kombu 5.7's ``Channel.conn_or_acquire`` calls ``_create_client`` each time, and a redis-py 8
    client costs ~0.2 ms to build (it fills a ~170-entry table of response callbacks): about a
    fifth of a worker's CPU per trial and an eighth of the controller's publish cost, measured in
    docs/benchmarks.md. A ``redis.Redis`` over a connection pool is thread-safe (each command takes
    a connection from the pool), so one per channel and pool is equivalent; it is rebuilt whenever
    kombu replaces the channel's pool (after a connection error). The asynchronous client that
    kombu's event loop polls is left alone.
    """
    try:
        from kombu.transport import redis as kredis
    except ImportError:  # kombu without the redis transport: nothing to do
        return
    original = getattr(kredis.Channel, "_create_client", None)
    if original is None or getattr(original, "_sweepq_reuse", False):
        return

    def _create_client(self: Any, asynchronous: bool = False) -> Any:
        if asynchronous:
            return original(self, asynchronous=True)
        pool = self.pool
        cached = self.__dict__.get("_sweepq_sync_client")
        if cached is None or cached[0] is not pool:
            cached = (pool, original(self, asynchronous=False))
            self.__dict__["_sweepq_sync_client"] = cached
        return cached[1]

    _create_client._sweepq_reuse = True  # type: ignore[attr-defined]
    kredis.Channel._create_client = _create_client


_reuse_kombu_redis_clients()


def make_app(namespace: str | None = None) -> Celery:
    application = Celery("sweepq", broker=broker_url(), set_as_current=True)
    application.conf.update(celery_config(namespace))
    return application


app = make_app()
_APP_KEY = (namespace_from_env(), broker_url())  # what the module-level app was built for

_store: Store | None = None
_store_lock = threading.Lock()
_state: dict[str, Any] = {"name": None, "gpus": None, "count": None, "sweep": ""}


def get_store() -> Store:
    """One store per process (pool children included: created lazily after fork)."""
    global _store
    with _store_lock:
        if _store is None or _store_pid.get("pid") != os.getpid():
            _store = Store()
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
                state, claimed = _run_one(store, sweep_id, tid, config, hostname, lease, claimed,
                                          ids[i + 1] if i + 1 < len(ids) else None)
                states.append(state)
    finally:
        lease.release()
    return states[0] if len(states) == 1 else ",".join(states)


def _run_one(store: Store, sweep_id: str, trial_id: str, config: dict[str, Any], hostname: str,
             lease: Any, claimed: tuple[str, Claim] | None = None,
             next_id: str | None = None) -> tuple[str, tuple[str, Claim] | None]:
    """Run one trial: (its end state, and the (owner, claim) of ``next_id`` if its claim went with
    this trial's final write). ``claimed``: this trial's own claim, taken that way."""
    from sweepq.runner import TrialRunner

    agent = os.environ.get("SWEEPQ_AGENT_NAME", "")
    count = int(os.environ.get("SWEEPQ_AGENT_COUNT") or 0)
    if agent and count:
        # `sweepq agent --count N`: N trials across all pool children, counted atomically (one
        # claim at a time, so no claim rides on a finish here)
        if not store.agent_take(agent, count):
            store.unpublish(trial_id)
            return "declined", None
    workdir = os.environ.get("SWEEPQ_WORKDIR") or None
    if claimed is not None:
        owner, claim = claimed
    else:
        owner = _owner(hostname)
        claim = store.claim(sweep_id, trial_id, owner, hostname, LEASE_TTL, gpus=lease.visible_devices or "",
                            log_path=_log_path(workdir, trial_id))
    if not claim.ok:
        log.info("trial %s not run: %s %s", trial_id, claim.status, claim.state)
        if agent and count:
            store.agent_untake(agent)
        return claim.status, None
    trial = {"id": trial_id, "params": claim.params}
    runner = TrialRunner(store, sweep_id, trial, config, owner, lease_ttl=LEASE_TTL,
                         gpus=lease.visible_devices, workdir=workdir, claimed_at=claim.sent_at)
    runner.pass_fds = lease.fds
    next_owner = ""
    if next_id is not None and not (agent and count):
        next_owner = _owner(hostname)
        runner.claim_next = (next_id, next_owner, hostname, LEASE_TTL, lease.visible_devices or "",
                             _log_path(workdir, next_id))
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
        cfg = _configs[sweep_id] = store.sweep_config(sweep_id)
        if len(_configs) > 256:
            _configs.pop(next(iter(_configs)))
    return cfg


class Publisher:
    """Sends trials to their queues through one Celery app (readable in Flower: task name
    ``sweepq.run_trial``, args ``[sweep, trial]``, or ``[sweep, trial, trial, ...]`` for a batch
    of short trials: ``trial_id`` may be a sequence of ids).

    ``many`` sends a controller pass's messages through one producer in one kombu publish batch:
    one pipelined round trip to Redis instead of one per message.
    """

    batches = True  # takes several trial ids per message (controller.BATCH_MAX)

    def __init__(self, application: Celery) -> None:
        self.app = application
        # On Redis, Celery sends a direct queue's messages through the anonymous exchange (an
        # LPUSH), which needs no binding, yet by default it re-declares the queue on every send (a
        # third of the controller's publish CPU, measured): skip that. AMQP brokers drop a message
        # for a queue nobody declared yet, so there the declaration stays.
        scheme = str(application.conf.broker_url or "").split("://", 1)[0].lower()
        self.declare: list[Any] | None = [] if scheme in ("redis", "rediss", "redis+socket") else None

    def __call__(self, sweep_id: str, trial_id: str | Sequence[str], queue: str, attempt: int = 0) -> None:
        _send(self.app, sweep_id, trial_id, queue, attempt, declare=self.declare)

    def many(self, items: list[tuple[str, str | Sequence[str], str, int]]) -> None:
        if len(items) == 1:
            self(*items[0])
            return
        with self.app.producer_or_acquire() as producer, producer.batch():
            for sweep_id, trial_id, queue, attempt in items:
                _send(self.app, sweep_id, trial_id, queue, attempt, producer=producer, declare=self.declare)


def _send(application: Celery, sweep_id: str, trial_id: str | Sequence[str], queue: str, attempt: int,
          producer: Any = None, declare: list[Any] | None = None) -> None:
    ids = [trial_id] if isinstance(trial_id, str) else list(trial_id)
    args = [sweep_id, *ids]
    # argsrepr given: Celery would otherwise saferepr() the args of every message (a sixth of a
    # send's CPU, profiled); ids are plain tokens, so repr() is the same text
    application.send_task(TASK_NAME, args=args, queue=queue, producer=producer, argsrepr=repr(args),
                          kwargsrepr="{}", task_id=f"{ids[0]}.{attempt}.{secrets.token_hex(3)}",
                          declare=declare)


publish_trial = Publisher(app)
_publishers: dict[tuple[str, str], Publisher] = {}


def make_publisher(namespace: str | None = None, broker: str | None = None) -> Publisher:
    """A publisher for another namespace or broker than this process's default app
    (the controller serves the namespace of its store; tests run many namespaces at once)."""
    ns = namespace or namespace_from_env()
    url = broker or broker_url()
    if (ns, url) == _APP_KEY:
        return publish_trial
    key = (ns, url)
    if key not in _publishers:
        other = Celery(f"sweepq-{ns}", broker=url, set_as_current=False)
        other.conf.update(celery_config(ns))
        _publishers[key] = Publisher(other)
    return _publishers[key]


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
    from sweepq import tree

    tree.become_subreaper()
    tree.enter_slot()
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
    sweep = os.environ.get("SWEEPQ_AGENT_SWEEP", "")

    def beat() -> None:
        registered = False
        while not _hb_stop.is_set():
            try:
                st = get_store()
                if not registered:
                    st.register_worker(hostname, slots, queues, sweep=sweep, gpus=",".join(gpus or []),
                                       ttl=WORKER_TTL)
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
    from sweepq.runner import keep_fences

    # the backstop for trials whose pool process is stopped or hung: it cannot fence them itself
    threading.Thread(target=keep_fences, args=(_hb_stop, LEASE_TTL), name="sweepq-fence-keeper",
                     daemon=True).start()


@signals.worker_shutting_down.connect
def _on_worker_shutdown(**_: Any) -> None:
    _hb_stop.set()
    name = _state.get("name")
    if name:
        with contextlib.suppress(Exception):
            get_store().unregister_worker(name)
