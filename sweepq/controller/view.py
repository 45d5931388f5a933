"""What the controller knows of one sweep, derived from Redis and never the source of truth, and
how a failed trial's cause is told in one line."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from sweepq.model import FINAL_STATES, RAN_STATES


@dataclass
class SweepView:
    """What the controller knows of one sweep (derived from Redis, never the source of truth)."""

    config: dict[str, Any]
    trials: dict[str, dict[str, Any]] = field(default_factory=dict)
    loaded: bool = False
    metrics_dirty: bool = True
    exhausted: bool = False
    inflight: set[str] = field(default_factory=set)  # ids of queued/running trials
    ended_changed: bool = True  # a trial reached a final state since the last look
    n_ended_run: int = 0  # finished/failed/stopped trials (they ran, so they could log)
    any_metric: bool = False  # some ended trial logged the metric: the warning can never apply
    # run times of the last finished trials (seconds): how many fit in one message
    durations: deque[float] = field(default_factory=lambda: deque(maxlen=32))
    state: str = ""  # the sweep's state at the last pass: a change (a resume) re-reads its trials
    fail_fast_judged: bool = False  # its first trials were judged (fail_fast): never again

    def put(self, t: dict[str, Any]) -> None:
        """Insert or update one trial, keeping the in-flight index and counters exact (O(1))."""
        old = self.trials.get(t["id"])
        self.trials[t["id"]] = t
        if t["state"] in FINAL_STATES:
            self.inflight.discard(t["id"])
            if old is None or old["state"] not in FINAL_STATES:
                self.ended_changed = True
                if t["state"] in RAN_STATES:
                    self.n_ended_run += 1
                    if t["metric"] is not None or t.get("history"):
                        self.any_metric = True
                if t["state"] == "finished" and t.get("started_at") and t.get("ended_at"):
                    # finished only: a crash in the first millisecond says nothing of a real run
                    self.durations.append(max(0.0, t["ended_at"] - t["started_at"]))
        else:
            self.inflight.add(t["id"])

    def inflight_trials(self) -> list[dict[str, Any]]:
        return [self.trials[i] for i in sorted(self.inflight)]


def failure_line(t: dict[str, Any]) -> str:
    """A failed trial's cause in one line: its reason, and the last line its program wrote to
    stderr (the exception, the \"can't open file\"), which is what a user needs first."""
    last = ""
    for line in reversed((t.get("log_tail") or "").splitlines()):
        text = line.split("] ", 1)[1] if line.startswith("[std") and "] " in line else line
        if text.strip() and not line.startswith("[sweepq]"):
            last = text.strip()
            break
    reason = t.get("reason") or f"exit code {t.get('exit_code')}"
    line = f"{reason}: {last}" if last and last not in reason else reason
    return " ".join(line.split())[:300]
