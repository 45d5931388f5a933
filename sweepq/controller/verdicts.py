"""What a pass concludes about a sweep from its config and its view, as pure functions: whether
it is done, whether its first trials say its program is broken (``fail_fast``), and whether its
metric was never logged. The loop acts on them (the store's writes are its own)."""

from __future__ import annotations

from typing import Any

from sweepq.controller.view import SweepView, failure_line
from sweepq.model import primary_metric


def done_reason(config: dict[str, Any], sweep: dict[str, Any], view: SweepView) -> str | None:
    """Why the sweep should create no more trials (the space is exhausted, ``run_cap`` or the
    metric's ``target`` is reached), or None."""
    if view.exhausted:
        return "search space exhausted"
    cap = config.get("run_cap")
    if cap and len(view.trials) >= int(cap):
        return f"run_cap {cap} reached"
    metric = primary_metric(config)
    target = metric.get("target")
    best = sweep.get("best_value")
    if target is not None and best not in (None, ""):
        goal = metric.get("goal", "minimize")
        b = float(best)
        if (goal == "maximize" and b >= float(target)) or (goal != "maximize" and b <= float(target)):
            return f"metric target {target} reached"
    return None


def fail_fast(config: dict[str, Any], view: SweepView) -> str | None:
    """The reason to end the sweep ``failed`` when its first ``fail_fast`` trials to end all
    failed (their program exited non-zero, could not start, or timed out), instead of burning
    ``run_cap`` on a broken program; the reason quotes the first failure. Trials lost with their
    worker, stopped or canceled say nothing about the program and do not count. Judged once
    (the view remembers)."""
    n = int(config.get("fail_fast") or 0)
    if not n or view.fail_fast_judged:
        return None
    ended = [t for t in view.trials.values() if t["state"] in ("finished", "failed")]
    if len(ended) < n:
        return None
    view.fail_fast_judged = True
    first = sorted(ended, key=lambda t: (t.get("ended_at") or 0.0, t.get("n") or 0))[:n]
    if any(t["state"] != "failed" for t in first):
        return None
    return f"its first {n} trials failed; the first ({first[0]['id']}): {failure_line(first[0])}"


def missing_metric_prefix(config: dict[str, Any]) -> str | None:
    """The start of the sweep warning for a metric no ended trial logged (None: no metric)."""
    name = primary_metric(config).get("name")
    return f"metric {name!r} was never logged by any ended trial" if name else None


def metric_missing(view: SweepView) -> bool:
    """Some trial ran to its end and none of them logged the sweep's metric."""
    return view.n_ended_run >= 1 and not view.any_metric


def ran_trial_ids(view: SweepView) -> list[str]:
    """Trials whose program ran to a verdict of its own (it could log metrics)."""
    return [t["id"] for t in view.trials.values() if t["state"] in ("finished", "failed", "stopped")]
