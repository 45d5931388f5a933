"""Prometheus ``/metrics`` for sweepq, read from Redis at scrape time.

Why a custom collector rather than counters updated in-process: the facts live in Redis and are
written by other processes (controller, workers), so the web process reports what Redis says at
each scrape; nothing is lost when the web restarts and several web replicas agree.

Metrics (all prefixed ``sweepq_``):

* ``sweepq_trials{sweep, state}``: trials of each sweep by state (the exact per-state counters the
  store's Lua scripts keep).
* ``sweepq_sweeps{state}``: sweeps by state.
* ``sweepq_queue_depth{queue}``: messages waiting in each Celery queue (LLEN of kombu's lists).
* ``sweepq_celery_unacked``: messages delivered to a worker and not yet acknowledged (trials
  running, since sweepq acks late).
* ``sweepq_workers_alive`` and ``sweepq_worker_slots``: workers whose heartbeat is fresh, and their
  trial slots.
* ``sweepq_suggest_seconds`` (histogram): how long one ``engine.suggest`` call took. The
  controller keeps these durations in memory (``Controller.stats["suggest_s"]``), so they are
  reported for controllers running in the web's own process (``WebSettings.controllers``)
  and, should a controller publish them, from the Redis list ``<ns>:stats:suggest_s`` (seconds,
  newest last). With a separate ``sweepq controller`` process and no such list the histogram is
  empty.
* ``sweepq_stop_latency_seconds{sweep}`` (histogram): from the controller's stop request
  (``stop_requested_at`` on the trial) to the trial's end (``ended_at``), for early-stopped
  trials of active and recent sweeps.
* ``sweepq_queue_wait_seconds{sweep}`` (histogram): from a trial's creation to its start, same
  sweeps: how long trials wait for a worker.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from sweepq.model import DEFAULT_QUEUE, SWEEP_STATES, TRIAL_STATES
from sweepq.store import Store
from sweepq.web.data import TrialCache

SUGGEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
STOP_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0)
WAIT_BUCKETS = (0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0)
RECENT_SWEEPS = 20  # besides active sweeps, latency histograms cover this many newest sweeps


def _histogram(values: Iterable[float], bounds: tuple[float, ...]) -> tuple[list[tuple[str, float]], float]:
    vals = sorted(v for v in values if v is not None and v >= 0)
    buckets: list[tuple[str, float]] = []
    i = 0
    for b in bounds:
        while i < len(vals) and vals[i] <= b:
            i += 1
        buckets.append((repr(float(b)), float(i)))
    buckets.append(("+Inf", float(len(vals))))
    return buckets, float(sum(vals))


def queue_names(store: Store) -> list[str]:
    """The Celery queues sweepq uses now: the default one, each sweep's ``queue``, the agent
    queues of active sweeps, and whatever live workers consume."""
    names = {DEFAULT_QUEUE}
    active = store.active_sweeps()
    names.update(store.sweep_queues(active))
    names.update(store.keys.agent_queue(sid) for sid in active)
    try:
        for w in store.alive_workers():
            names.update(str(q) for q in w.get("queues") or [])
    except Exception:  # a half-written worker record must not break /metrics
        pass
    return sorted(names)


def queue_depths(store: Store) -> dict[str, int]:
    """Messages waiting in each Celery queue: LLEN of ``<ns>:celery:<queue>`` (kombu's Redis
    transport keeps one list per queue, plus one per priority step, summed here)."""
    return store.queue_depths(queue_names(store))


class SweepqCollector(Collector):
    """Reads Redis on every scrape (see the module docstring for each metric)."""

    def __init__(self, store: Store, cache: TrialCache, controllers: Iterable[Any] = ()) -> None:
        self.store = store
        self.cache = cache
        self.controllers = list(controllers)

    def describe(self) -> list[Any]:
        return []  # metrics are dynamic: no describe-time scrape

    def collect(self) -> Iterable[Any]:
        store = self.store
        sweeps = store.list_sweeps()
        trials = GaugeMetricFamily("sweepq_trials", "Trials of a sweep by state.", labels=["sweep", "state"])
        by_state = dict.fromkeys(SWEEP_STATES, 0)
        for sid, (st, counts) in zip(sweeps, store.sweep_states(sweeps), strict=True):
            if st in by_state:
                by_state[st] += 1
            for s in TRIAL_STATES:
                trials.add_metric([sid, s], counts[s])
        yield trials
        sw = GaugeMetricFamily("sweepq_sweeps", "Sweeps by state.", labels=["state"])
        for s, n in by_state.items():
            sw.add_metric([s], n)
        yield sw

        depth = GaugeMetricFamily(
            "sweepq_queue_depth", "Messages waiting in a Celery queue.", labels=["queue"]
        )
        for q, n in queue_depths(store).items():
            depth.add_metric([q], n)
        yield depth
        unacked = store.unacked_messages()
        yield GaugeMetricFamily(
            "sweepq_celery_unacked", "Celery messages delivered and not yet acked.", value=unacked
        )

        workers = store.alive_workers()
        yield GaugeMetricFamily("sweepq_workers_alive", "Workers with a fresh heartbeat.", value=len(workers))
        yield GaugeMetricFamily(
            "sweepq_worker_slots",
            "Trial slots of live workers.",
            value=sum(int(w.get("slots") or 1) for w in workers),
        )

        suggest: list[float] = []
        for ctl in self.controllers:
            suggest.extend(list(getattr(ctl, "stats", {}).get("suggest_s", [])))
        suggest.extend(store.record_suggest_times())
        h = HistogramMetricFamily(
            "sweepq_suggest_seconds", "Duration of one engine.suggest call (see docs/dashboard.md)."
        )
        buckets, total = _histogram(suggest, SUGGEST_BUCKETS)
        h.add_metric([], buckets, total)
        yield h

        recent = list(dict.fromkeys(store.active_sweeps() + sweeps[-RECENT_SWEEPS:]))
        stop = HistogramMetricFamily(
            "sweepq_stop_latency_seconds",
            "From the controller's stop request to the trial's end.",
            labels=["sweep"],
        )
        wait = HistogramMetricFamily(
            "sweepq_queue_wait_seconds", "From a trial's creation to its start on a worker.", labels=["sweep"]
        )
        now = time.time()
        for sid in recent:
            try:
                recs = self.cache.get(sid, min_interval=1.0).trials()
            except Exception:  # a sweep deleted between the two reads
                continue
            stops = [
                t["ended_at"] - t["stop_requested_at"]
                for t in recs
                if t["stop_requested_at"] is not None and t["ended_at"] is not None
            ]
            b, total = _histogram(stops, STOP_BUCKETS)
            stop.add_metric([sid], b, total)
            waits = [
                t["started_at"] - t["queued_at"]
                for t in recs
                if t["started_at"] is not None and t["queued_at"] is not None and t["started_at"] <= now
            ]
            b, total = _histogram(waits, WAIT_BUCKETS)
            wait.add_metric([sid], b, total)
        yield stop
        yield wait


def make_registry(store: Store, cache: TrialCache, controllers: Iterable[Any] = ()) -> CollectorRegistry:
    """A registry holding only sweepq's collector (not the process/platform defaults: the web's
    own Python process is not what operators watch here)."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(SweepqCollector(store, cache, controllers))
    return reg
