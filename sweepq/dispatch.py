"""How trials reach workers: the Celery app factory and the publisher, with no import side
effects (importing this module builds no app and patches nothing).

Every Celery setting is chosen for trials that run for hours or days; the reason for each is next
to it (and in docs/reliability.md). A message carries only the sweep id and the trial id (or, for a
batch of very short trials, several trial ids): the command is rendered on the worker from the
sweep's config in Redis, and claiming a trial is an atomic script, so a message delivered twice
(redelivery after the visibility timeout, a duplicate publish) runs each trial once.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Sequence
from typing import Any

from celery import Celery

from sweepq.model import DEFAULT_QUEUE
from sweepq.settings import Settings
from sweepq.store.keys import Keys

TASK_NAME = "sweepq.run_trial"


def celery_config(settings: Settings, namespace: str | None = None) -> dict[str, Any]:
    """One documented Celery configuration (each setting's reason beside it; docs/reliability.md)."""
    keys = Keys(namespace or settings.namespace)
    transport: dict[str, Any] = {
        # Trials own their lease in Redis (30 s, renewed by heartbeat): recovery of a dead worker is
        # the controller's reaper, in seconds. Celery's own redelivery is only a last-resort net,
        # so its visibility timeout is longer than any trial could run.
        "visibility_timeout": settings.visibility_timeout,
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
        "task_serializer": "json",
        "result_serializer": "json",
        "event_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
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
        "worker_send_task_events": settings.task_events,
        "task_send_sent_event": False,
        "task_track_started": True,
        # no Celery time limits: they orphan subprocesses; trial_timeout is enforced by the runner
        "task_time_limit": None,
        "task_soft_time_limit": None,
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
    kredis.Channel._create_client = _create_client  # type: ignore[method-assign]


def make_app(
    settings: Settings | None = None,
    namespace: str | None = None,
    broker: str | None = None,
    main: str = "sweepq",
    set_as_current: bool = True,
) -> Celery:
    """A Celery app for a namespace and broker (the environment's by default)."""
    settings = settings or Settings.from_env()
    _reuse_kombu_redis_clients()
    application = Celery(
        main, broker=broker or settings.broker_url or settings.redis_url, set_as_current=set_as_current
    )
    application.conf.update(celery_config(settings, namespace))
    return application


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


def _send(
    application: Celery,
    sweep_id: str,
    trial_id: str | Sequence[str],
    queue: str,
    attempt: int,
    producer: Any = None,
    declare: list[Any] | None = None,
) -> None:
    ids = [trial_id] if isinstance(trial_id, str) else list(trial_id)
    args = [sweep_id, *ids]
    # argsrepr given: Celery would otherwise saferepr() the args of every message (a sixth of a
    # send's CPU, profiled); ids are plain tokens, so repr() is the same text
    application.send_task(
        TASK_NAME,
        args=args,
        queue=queue,
        producer=producer,
        argsrepr=repr(args),
        kwargsrepr="{}",
        task_id=f"{ids[0]}.{attempt}.{secrets.token_hex(3)}",
        declare=declare,
    )


_publishers: dict[tuple[str, str], Publisher] = {}
_publishers_lock = threading.Lock()


def make_publisher(namespace: str, broker: str) -> Publisher:
    """The publisher for a namespace and broker (one app each, made on first use and shared)."""
    key = (namespace, broker)
    with _publishers_lock:
        if key not in _publishers:
            _publishers[key] = Publisher(
                make_app(namespace=namespace, broker=broker, main=f"sweepq-{namespace}", set_as_current=False)
            )
        return _publishers[key]
