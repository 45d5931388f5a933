"""The controller: for every active sweep, keep the right number of trials queued, stop losers,
reap lost trials, and end the sweep when it is done.

It keeps no state that Redis does not have: its per-sweep cache of trials is rebuilt from Redis
when it starts and refreshed from the event stream and the in-flight set, so a controller killed
and restarted carries on. Several controllers may run (every ``sweepq agent`` and ``sweepq run``
starts one); a leader lease in Redis lets exactly one act at a time.

Failures are kept apart: a sweep whose pass raises (a config the engine cannot run, anything that
is not Redis's fault) ends ``failed`` with a one-line reason and the other sweeps go on in the same
pass; a Redis error (unreachable, out of memory) is no sweep's fault and ends only the pass.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import socket
import threading
import time
from collections.abc import Sequence
from typing import Any

from redis.exceptions import OutOfMemoryError, RedisError

from sweepq import engine
from sweepq.config import load_config
from sweepq.controller import verdicts
from sweepq.controller.capacity import (
    BATCH_WINDOW_S,
    batch_size,
    fill_plan,
    on_queues,
    route,
    target_inflight,
)
from sweepq.controller.outbox import Outbox, Publisher
from sweepq.controller.reaper import Reaper
from sweepq.controller.view import SweepView
from sweepq.settings import Settings
from sweepq.store import NotFound, Store, StoreError, StoreUnavailable

log = logging.getLogger("sweepq.controller")

LEADER_TTL_MS = 10_000
WORKERS_REFRESH_S = 2.0
# events that need no pass of their own (the next pass reads their trials): a trial was claimed
# (queued -> running leaves the in-flight count as it was), created (by this controller), or
# unpublished (a claim found its sweep paused: the resume's event brings the pass; an agent at its
# --count declined it: re-sent at the next tick, not at once, or agent and controller would bounce
# it back and forth as fast as they can)
PASSIVE_EVENTS = frozenset({"started", "created", "unpublished"})
# the shortest time between two passes while some sweep's trials are batched: trials ending together
# are handled by one pass (a pass per trial end was most of the controller's CPU), and the slots
# have a whole batch waiting meanwhile. Without batches a pass follows every trial end at once:
# with one spare trial per worker, a gap would leave workers idle (measured: half the rate).
PASS_GAP_S = 0.02

__all__ = ["LEADER_TTL_MS", "Controller", "Publisher", "run_controller_thread"]


class Controller:
    """One controller process (or thread). ``run()`` loops until ``stop`` is set."""

    def __init__(
        self,
        store: Store,
        publish: Publisher | None = None,
        tick: float = 0.5,
        name: str | None = None,
        reap_every: float | None = None,
        batch_max: int | None = None,
        batch_window: float = BATCH_WINDOW_S,
        settings: Settings | None = None,
    ) -> None:
        settings = settings or Settings.from_env()
        self.store = store
        if publish is None:
            from sweepq.dispatch import make_publisher

            publish = make_publisher(store.ns, settings.broker_url or store.url)
        self.tick = tick
        self.name = name or f"{socket.gethostname()}:{secrets.token_hex(3)}"
        self.token = f"{self.name}:{secrets.token_hex(8)}"
        self.views: dict[str, SweepView] = {}
        self.stop_event = threading.Event()
        self.is_leader = False
        self._workers: list[dict[str, Any]] = []
        self._workers_at = 0.0
        self._last_event = "$"
        self._dirty: dict[str, set[str]] = {}
        # batched: trials sent in messages of several; resent: trials sent again after they sat
        # unclaimed (a lost message, or a batch held up behind a long trial)
        self.stats: dict[str, Any] = {"suggest_s": [], "stops": 0, "reaped": 0, "batched": 0, "resent": 0}
        self._led_at = -1e9
        self._running: dict[str, int] = {}
        self.outbox = Outbox(store, publish)
        # batches need a publisher that sends several trials in one message (the real one)
        batch_max = settings.batch_max if batch_max is None else batch_max
        self.batch_max = batch_max if getattr(publish, "batches", False) else 1
        self.batch_window = batch_window
        self._full_at = -1e9  # last pass that re-read every in-flight trial
        self._full_pass = True
        self._batching = False  # the last pass found some sweep's trials short enough to batch
        self._reaped_at = -1e9
        # leases run for the lease TTL and the reaper waits two of them after a Redis restart:
        # looking for expired ones on every pass (hundreds a second in a busy sweep) buys nothing
        self.reap_every = max(0.05, min(1.0, settings.lease_ttl / 10)) if reap_every is None else reap_every
        # a trial sent this long ago and still unclaimed while a slot on its queue idles lost its
        # message (its worker died between delivery and claim, unacked until the visibility
        # timeout), or waits in a batch behind a long trial: it is sent again
        self.resend_after = max(5.0, settings.lease_ttl)
        self._stepped_at = -1e9
        self._prefetched: dict[str, dict[str, Any]] = {}  # trial records read by this pass's snapshot
        self.reaper = Reaper(store)
        self._logged_error_at = -1e9

    @property
    def publish(self) -> Publisher:
        """What sends trials to Celery (replaceable: a test's broker going down)."""
        return self.outbox.publish

    @publish.setter
    def publish(self, value: Publisher) -> None:
        self.outbox.publish = value

    # -- main loop ------------------------------------------------------------------------------
    def run(self) -> None:
        log.info("controller %s starting", self.name)
        try:
            self._last_event = self.store.last_event_id()
        except Exception:
            self._last_event = "0-0"
        while not self.stop_event.is_set():
            try:
                self._lead()
                if not self.is_leader:
                    self.stop_event.wait(min(1.0, self.tick * 2))
                    continue
                # a pass when something needs one (a trial ended, a metric, a sweep action) or
                # every tick; a claim or our own trial creation changes nothing a pass acts on:
                # skipping those halves the passes per trial (and the controller's CPU)
                # while trials are batched, passes at most every PASS_GAP_S: a burst of trial ends is
                # one pass, not one each
                gap = self._stepped_at + PASS_GAP_S - time.monotonic() if self._batching else 0.0
                if gap > 0:
                    self.stop_event.wait(gap)
                wait = max(0.0, self._stepped_at + self.tick - time.monotonic())
                if self._collect_events(wait) or time.monotonic() >= self._stepped_at + self.tick:
                    self.step(changed_only=True)
                    self._stepped_at = time.monotonic()
            except Exception as exc:  # Redis restarting, full, a network blip: keep going
                if isinstance(exc, OutOfMemoryError):
                    self.reaper.note_oom()
                if time.monotonic() - self._logged_error_at > 30.0:  # one line, not one a second
                    self._logged_error_at = time.monotonic()
                    why = (self.store.unavailable(exc) if isinstance(exc, RedisError) else None) or exc
                    log.warning("controller pass failed: %s: %s", type(exc).__name__, why)
                self.is_leader = False
                self.views.clear()  # resync fully from Redis once it answers
                self.stop_event.wait(1.0)
        if self.is_leader:
            with contextlib.suppress(Exception):
                self.store.release_leader(self.token)
            self.is_leader = False
        log.info("controller %s stopped", self.name)

    def _lead(self) -> None:
        was = self.is_leader
        now = time.monotonic()
        if was and now - self._led_at < LEADER_TTL_MS / 3000.0:
            return  # renewed recently: the lease is good for TTL, renew every TTL/3
        self.is_leader = self.store.acquire_leader(self.token, LEADER_TTL_MS)
        if self.is_leader:
            self._led_at = now
        if self.is_leader and not was:
            log.info("controller %s is the leader", self.name)
            self.reaper.led_since = now
            self.views.clear()

    def _collect_events(self, timeout: float) -> bool:
        """Note what changed; True if a pass should run now (see PASSIVE_EVENTS)."""
        last, events = self.store.wait_events(self._last_event, timeout)
        self._last_event = last
        act = False
        for ev in events:
            sid, tid, kind = ev.get("sweep", ""), ev.get("trial", ""), ev.get("kind", "")
            if not sid:
                continue
            self._dirty.setdefault(sid, set())
            if tid:
                self._dirty[sid].add(tid)
            if kind not in PASSIVE_EVENTS:
                act = True
            view = self.views.get(sid)
            if view is not None and kind in ("metric", "state"):
                view.metrics_dirty = True
        return act

    def step(self, changed_only: bool = False) -> None:
        """One pass over every active sweep (public so tests can drive it without threads).

        ``changed_only`` (``run`` passes it): between ticks, only the sweeps that events named
        (and new ones) are read and stepped, so a trial's end costs a pass over its own sweep,
        not over every active sweep; every tick still looks at all of them (resends, new workers).
        """
        now = time.monotonic()
        reap_due = now - self._reaped_at >= self.reap_every
        # Every in-flight trial is re-read once a tick (a net for anything no event announced, e.g.
        # a claim that found the sweep paused); in between, a pass reads the trials events named
        # and those that entered or left the in-flight set: O(changes), not O(trials in flight),
        # which matters when short trials are batched and dozens are in flight.
        self._full_pass = now - self._full_at >= self.tick
        self._batching = False
        if self._full_pass:
            self._full_at = now
        partial = changed_only and not self._full_pass
        look = [sid for sid in self.views if not partial or sid in self._dirty]
        # one round trip for what every pass reads: active sweeps, heads, in-flight sets, leases
        # and the records of the trials it already knows it must look at (in flight or changed)
        known = [
            tid
            for sid in look
            if self.views[sid].loaded
            for tid in (self.views[sid].inflight if self._full_pass else set()) | self._dirty.get(sid, set())
        ]
        active, snaps, expired, self._prefetched = self.store.pass_snapshot(
            sorted(look), leases=reap_due, trials=sorted(set(known))
        )
        for sid in set(self.views) - set(active):
            self.views.pop(sid, None)  # ended (or deleted) elsewhere: reloaded if it comes back
        if reap_due:
            self._reaped_at = now
            self.reap(expired)
            for tid in expired:  # read before the reaper changed them
                self._prefetched.pop(tid, None)
        self._running = {}
        for view in self.views.values():
            for i in view.inflight:
                t = view.trials[i]
                if t["state"] == "running":
                    self._running[t.get("queue", "")] = self._running.get(t.get("queue", ""), 0) + 1
        for sid in active:
            if partial and sid in self.views and sid not in self._dirty:
                continue  # nothing happened to it since the last pass (the reaper marks what it requeues)
            try:
                self.step_sweep(sid, snaps.get(sid))
            except NotFound:
                self.views.pop(sid, None)
                self.store.forget_active(sid)
            except (RedisError, StoreUnavailable, OSError):
                raise  # Redis's trouble, not the sweep's: the pass ends, run() retries
            except Exception as exc:
                self._fail_sweep(sid, exc)
            finally:
                # a failed send raises to run(), which drops every view: the trials are still
                # unpublished in Redis and the next pass sends them again
                self.outbox.flush()
        self._dirty.clear()
        self.reaper.after_oom(active)

    def _fail_sweep(self, sid: str, exc: Exception) -> None:
        """End a sweep whose pass raised: ``failed``, with the error as its one-line reason; its
        queued trials are canceled and its running ones killed. A sweep that raises again while
        failing (its record cannot even be read) is taken off the active set directly."""
        log.exception("sweep %s failed in the controller", sid)
        self.views.pop(sid, None)
        detail = "; ".join(exc.errors) if hasattr(exc, "errors") else str(exc)
        reason = " ".join(f"controller: {type(exc).__name__}: {detail}".split())[:500]
        if self.store.sweep_state(sid) == "failed":
            self.store.finish_sweep(sid, "failed")
            return
        try:
            self.store.sweep_action(sid, "fail", reason=reason)
        except (StoreError, NotFound):  # ended (or gone) meanwhile
            self.store.finish_sweep(sid, "failed", reason)

    # -- pieces ---------------------------------------------------------------------------------
    def workers(self) -> list[dict[str, Any]]:
        now = time.monotonic()
        if now - self._workers_at > WORKERS_REFRESH_S:
            self._workers = self.store.alive_workers()
            self._workers_at = now
        return self._workers

    def _served_queues(self) -> set[str]:
        return {q for w in self.workers() for q in w.get("queues", [])}

    def _idle_slots(self, queue: str) -> int:
        """Slots of live workers on ``queue`` not running any trial we know of."""
        slots = sum(w["slots"] for w in self.workers() if queue in w.get("queues", []))
        return slots - self._running.get(queue, 0)

    def reap(self, expired: list[str]) -> None:
        """Requeue (or crash) the running trials in ``expired`` (leases past their expiry, read by
        ``step``) whose worker stopped renewing the lease, when the reaper says they may be judged."""
        for tid in self.reaper.judgeable(expired):
            sid = tid.rsplit("-", 1)[0]
            try:
                retries = int(self._view(sid).config.get("retries", 1))
            except NotFound:
                retries = 0
            except (RedisError, StoreUnavailable, OSError):
                raise
            except Exception as exc:  # its config breaks the controller: the sweep fails, no retry
                self._fail_sweep(sid, exc)
                retries = 0
            res = self.store.reap(sid, tid, retries, "worker lost (lease expired)")
            if res in ("requeued", "crashed"):
                self.stats["reaped"] += 1
                log.info("trial %s %s (lease expired)", tid, res)
                self._dirty.setdefault(sid, set()).add(tid)

    def _target(self, sid: str, config: dict[str, Any], batch: int = 1) -> tuple[int, dict[str, int]]:
        return target_inflight(sid, config, self.workers(), self.store.keys.agent_queue(sid), batch)

    def _view(self, sid: str) -> SweepView:
        view = self.views.get(sid)
        if view is None:
            # checked in full once per view: a config that reached Redis some other way (an older
            # version, a hand-written key) fails its own sweep here, not every pass of every sweep
            view = SweepView(config=load_config(self.store.sweep_config(sid)))
            self.views[sid] = view
        return view

    def _refresh(self, sid: str, view: SweepView, inflight_ids: set[str], full: bool = True) -> None:
        if not view.loaded:
            for t in self.store.get_trials(self.store.trial_ids(sid)):
                view.put(t)
            view.loaded = True
            view.metrics_dirty = True
            return
        # O(in flight + changed), not O(all trials): finished trials do not change any more
        ids = (
            (view.inflight if full else set()) | (inflight_ids ^ view.inflight) | self._dirty.get(sid, set())
        )
        missing: list[str] = []
        for tid in sorted(ids):
            known = self._prefetched.pop(tid, None)
            if known is not None:
                view.put(known)
            else:
                missing.append(tid)
        if missing:
            for t in self.store.get_trials(missing):
                view.put(t)

    def _publish(
        self, sid: str, tids: str | Sequence[str], queue: str, attempt: int, marked: bool = False
    ) -> None:
        self.outbox.add(sid, tids, queue, attempt, marked)

    def step_sweep(self, sid: str, snap: tuple[dict[str, Any] | None, set[str]] | None) -> None:
        """One sweep's pass; ``snap`` is its (head, in-flight ids) as ``step`` read them (None: a
        sweep that became active after that read, read now)."""
        if snap is None:
            snap = self.store.pass_snapshot([sid])[1][sid]
        sweep, inflight_ids = snap
        if sweep is None:
            raise NotFound(f"unknown sweep {sid!r}")
        state = sweep["state"]
        view = self._view(sid)
        config = view.config
        self._refresh(sid, view, inflight_ids, full=self._full_pass or state != view.state)
        view.state = state
        inflight = view.inflight_trials()
        _, agents = self._target(sid, config)

        if state == "running":
            # trials created but never sent (a publish failed, a pause, a reaped trial): send them
            served = self._served_queues()
            now = time.time()
            on_q: dict[str, int] | None = None  # with batch: read only when a trial needs routing
            batch = 1
            for t in inflight:
                if t["state"] != "queued":
                    continue
                q_old = t.get("queue") or ""
                if (
                    t["published"]
                    and q_old in served
                    and now - (t.get("published_at") or now) > self.resend_after
                    and self._idle_slots(q_old) > 0
                ):
                    # unclaimed for long while a worker on its queue idles: its message was lost
                    self._publish(sid, t["id"], q_old, t["attempt"])
                    self.stats["resent"] += 1
                    t["published_at"] = now
                    self._running[q_old] = self._running.get(q_old, 0) + 1  # that slot is taken now
                    continue
                stranded = t["published"] and t.get("queue") not in served and served
                if not t["published"] or stranded:
                    # never sent, or sent to a queue no live worker consumes (its agent left):
                    # send again; a duplicate delivery is harmless (the claim is atomic)
                    if on_q is None:
                        on_q, batch = (
                            on_queues(view),
                            batch_size(config, view, self.batch_max, self.batch_window),
                        )
                    q = route(config, agents, on_q, batch)
                    if stranded and q == t.get("queue"):
                        continue
                    on_q[q] = on_q.get(q, 0) + 1
                    self._publish(sid, t["id"], q, t["attempt"])
                    t["published"], t["queue"] = True, q
            if config.get("early_terminate") and view.metrics_dirty:
                view.metrics_dirty = False
                for tid in engine.to_stop(config, list(view.trials.values())):
                    if view.trials.get(tid, {}).get("stop"):
                        continue
                    if self.store.request_stop(sid, tid, "stop") == "requested":
                        self.stats["stops"] += 1
                        view.trials[tid]["stop"] = "stop"
                        log.info("early-terminating trial %s", tid)
            if view.ended_changed:
                view.ended_changed = False
                if self._fail_fast(sid, config, view):
                    return  # the sweep is failing: the next pass ends it
                self._warn_missing_metric(sid, config, view, sweep)
            done_reason = verdicts.done_reason(config, sweep, view)
            if done_reason is None:
                self._fill(sid, config, view, inflight, agents)
                inflight = view.inflight_trials()
                done_reason = verdicts.done_reason(config, sweep, view)
            if done_reason and not inflight:
                log.info("sweep %s finished: %s", sid, done_reason)
                self.store.finish_sweep(sid, "finished", done_reason)
                self.views.pop(sid, None)
        elif state in ("stopped", "canceled", "failed"):
            for t in inflight:  # backstop: nothing queued survives a stopped or canceled sweep
                if t["state"] == "queued":
                    self.store.request_stop(sid, t["id"], "cancel")
            if not inflight:
                self.store.finish_sweep(sid, state, f"sweep {state}")
                self.views.pop(sid, None)
        elif state == "finished":
            self.store.finish_sweep(sid, "finished", sweep.get("end_reason", ""))
            self.views.pop(sid, None)

    def _fill(
        self,
        sid: str,
        config: dict[str, Any],
        view: SweepView,
        inflight: list[dict[str, Any]],
        agents: dict[str, int],
    ) -> None:
        batch = batch_size(config, view, self.batch_max, self.batch_window)
        target, _ = self._target(sid, config, batch)
        n_new, batch = fill_plan(config, len(view.trials), len(inflight), target, batch)
        self._batching = self._batching or batch > 1
        if n_new <= 0:
            return
        t0 = time.perf_counter()
        suggestions = engine.suggest(config, list(view.trials.values()), n=n_new)
        took = time.perf_counter() - t0
        self.stats["suggest_s"].append(took)
        if len(self.stats["suggest_s"]) > 1000:
            del self.stats["suggest_s"][:500]
        if not suggestions:
            self.store.create_trials(sid, [], suggest_time=took)  # the time still counts (/metrics)
            # grid, or bayes over a finite space with every point tried: nothing new to run
            if config.get("method") in ("grid", "bayes"):
                view.exhausted = True
            return
        on_q = on_queues(view)
        queues = []
        for _ in suggestions:
            q = route(config, agents, on_q, batch)
            on_q[q] = on_q.get(q, 0) + 1
            queues.append(q)
        ids = self.store.create_trials(
            sid, suggestions, run_cap=config.get("run_cap"), queues=queues, suggest_time=took
        )
        now = time.time()
        groups: dict[str, list[str]] = {}
        for tid, params, q in zip(ids, suggestions, queues, strict=False):
            view.put(
                {
                    "id": tid,
                    "state": "queued",
                    "params": params,
                    "metric": None,
                    "history": [],
                    "published": True,
                    "attempt": 0,
                    "stop": "",
                    "queue": q,
                    "published_at": now,
                }
            )
            groups.setdefault(q, []).append(tid)
        for q, tids in groups.items():
            size = 1 if q.startswith("direct:") else batch
            for i in range(0, len(tids), size):
                chunk = tids[i : i + size]
                self._publish(sid, chunk, q, 0, marked=True)
                if len(chunk) > 1:
                    self.stats["batched"] += len(chunk)

    def _fail_fast(self, sid: str, config: dict[str, Any], view: SweepView) -> bool:
        """End the sweep ``failed`` if :func:`verdicts.fail_fast` says its program is broken."""
        reason = verdicts.fail_fast(config, view)
        if reason is None:
            return False
        log.warning("sweep %s: %s", sid, reason)
        try:
            self.store.sweep_action(sid, "fail", reason=reason[:500])
        except (StoreError, NotFound):  # ended (or gone) meanwhile
            return False
        self.views.pop(sid, None)
        return True

    def _warn_missing_metric(
        self, sid: str, config: dict[str, Any], view: SweepView, sweep: dict[str, Any]
    ) -> None:
        """Keep the sweep's warning about a metric never logged in step with its trials; the
        warning names the keys the trials did log (usually a misspelt name)."""
        prefix = verdicts.missing_metric_prefix(config)
        if prefix is None:
            return
        warnings = list(sweep.get("warnings") or [])
        have = [w for w in warnings if w.startswith(prefix)]
        missing = verdicts.metric_missing(view)
        if missing and not have:
            keys = self.store.logged_keys(verdicts.ran_trial_ids(view)[:5])
            said = (
                f"they logged {', '.join(repr(k) for k in keys[:10])}"
                if keys
                else "they logged no metric at all (run.log, @sweepq lines or wandb.log)"
            )
            self.store.set_sweep_fields(sid, warnings=[*warnings, f"{prefix}; {said}: check the name"])
        elif not missing and have:
            self.store.set_sweep_fields(sid, warnings=[w for w in warnings if not w.startswith(prefix)])


def run_controller_thread(
    store: Store, tick: float = 0.5, publish: Publisher | None = None
) -> tuple[Controller, threading.Thread]:
    """Start a controller in a daemon thread (``sweepq run`` and ``sweepq agent`` use this)."""
    ctl = Controller(store, publish=publish, tick=tick)
    th = threading.Thread(target=ctl.run, name="sweepq-controller", daemon=True)
    th.start()
    return ctl, th
