"""How many trials a sweep keeps in flight, where each goes, and how many share a Celery message:
pure functions of the sweep's config, its view and the live workers.

Short-trial batching (docs/reliability.md, "Very short trials"): once a random or grid sweep's
trials are known to take a few milliseconds, one Celery message carries up to ``batch_max`` of
them, as many as fit in ``BATCH_WINDOW_S`` by the median of the last finished ones. A message's own
cost (publish, broker round trips, Celery's ack and hand-off: ~4 ms, benchmarks/dispatch.py) is
then paid once per batch. Trials of 25 ms or more are never batched, and bayes never is (each of
its suggestions should see the results before it). ``SWEEPQ_BATCH_MAX=1`` turns it off.
"""

from __future__ import annotations

import collections
import statistics
from typing import Any

from sweepq.controller.view import SweepView
from sweepq.model import DEFAULT_QUEUE

BATCH_WINDOW_S = 0.05
BATCH_MIN_SAMPLES = 2  # finished trials seen before a sweep's trials may count as short
# ...and while fewer than BATCH_FULL_SAMPLES have finished, a message carries at most
# 2 ** (finished - 1) trials (2, 4, 8, 16): batching starts within the first few trials of a sweep
# (the first 1,000 trials of a no-op sweep ran at 0.9x the rate of the rest when it waited for 8),
# and a guess from two trials costs at most one message of 2
BATCH_FULL_SAMPLES = 6
BATCH_METHODS = frozenset({"random", "grid"})


def batch_size(
    config: dict[str, Any], view: SweepView, batch_max: int, window: float = BATCH_WINDOW_S
) -> int:
    """Trials per message for this sweep now: 1 unless its trials are short."""
    if batch_max <= 1 or config.get("method") not in BATCH_METHODS or len(view.durations) < BATCH_MIN_SAMPLES:
        return 1
    typical = statistics.median(view.durations)
    n = len(view.durations)
    ramp = batch_max if n >= BATCH_FULL_SAMPLES else 2 ** (n - 1)
    return max(1, min(batch_max, ramp, int(window / max(typical, 1e-4))))


def target_inflight(
    sid: str, config: dict[str, Any], workers: list[dict[str, Any]], agent_queue: str, batch: int = 1
) -> tuple[int, dict[str, int]]:
    """(how many trials to keep queued+running, slots of agents bound to this sweep by queue);
    ``batch``: trials per message, so that every slot has a batch running and one waiting."""
    queue = config.get("queue") or DEFAULT_QUEUE
    slots = 0
    agents: dict[str, int] = {}
    for w in workers:
        if w.get("sweep") == sid:
            q = (w.get("queues") or [agent_queue])[0]
            agents[q] = agents.get(q, 0) + w["slots"]
        elif queue in w.get("queues", []):
            slots += w["slots"]
    total = slots + sum(agents.values())
    # keep every slot busy plus one suggestion ready per worker, so a worker whose slot frees
    # never waits for the controller (a single spare left the others waiting: dispatch bench)
    spares = max(1, sum(1 for w in workers if w.get("sweep") == sid or queue in w.get("queues", [])))
    target = (total + spares) * batch if total else 1
    cap = config.get("max_concurrent")
    if cap:
        target = min(target, int(cap))
    return target, agents


def route(config: dict[str, Any], agents: dict[str, int], on_q: dict[str, int], batch: int = 1) -> str:
    """Agents bound to the sweep get its trials while they have room (one running and one
    waiting per slot, of ``batch`` trials each); shared workers the rest. ``on_q``: trials in
    flight per queue, counted by the caller (who adds each trial it routes)."""
    for q, slots in sorted(agents.items()):
        if on_q.get(q, 0) < (slots + 1) * batch:
            return q
    return config.get("queue") or DEFAULT_QUEUE


def on_queues(view: SweepView) -> dict[str, int]:
    """The sweep's in-flight trials per queue."""
    return dict(collections.Counter(view.trials[i].get("queue", "") for i in view.inflight))


def fill_plan(
    config: dict[str, Any], n_trials: int, n_inflight: int, target: int, batch: int
) -> tuple[int, int]:
    """(how many new trials to suggest now, trials per message) for a sweep with ``n_trials``
    trials, ``n_inflight`` of them in flight, that should keep ``target`` in flight.

    With batches the last trials before ``run_cap`` go in smaller messages so that the slots end
    together, and new trials come a whole batch at a time while slots still have queued ones
    (the target holds one batch running and one waiting per slot)."""
    cap = config.get("run_cap")
    left = int(cap) - n_trials if cap else None
    if batch > 1:
        messages = max(2, target // batch)
        batch = max(1, min(batch, target // 2))  # max_concurrent may leave room for fewer
        if left is not None:
            batch = max(1, min(batch, -(-left // messages)))
    n_new = target - n_inflight
    if left is not None:
        n_new = min(n_new, left)
    if batch > 1 and 0 < n_new < batch and n_inflight and n_new != left:
        n_new = 0
    return max(0, n_new), batch
