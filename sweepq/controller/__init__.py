"""The controller: for every active sweep, keep the right number of trials queued, stop losers,
reap lost trials, and end the sweep when it is done.

Its parts: ``loop`` (leadership, the event stream, a pass over the sweeps, filling), ``outbox``
(sending a pass's trials), ``verdicts`` (done, fail_fast, a metric never logged: pure),
``view`` (what it knows of one sweep), ``capacity`` (how many trials in flight, where each goes,
how many share a message), ``reaper`` (when an expired lease may be judged).
"""

from __future__ import annotations

from sweepq.controller.loop import LEADER_TTL_MS, Controller, run_controller_thread
from sweepq.controller.outbox import Publisher
from sweepq.controller.view import SweepView, failure_line

__all__ = ["LEADER_TTL_MS", "Controller", "Publisher", "SweepView", "failure_line", "run_controller_thread"]
