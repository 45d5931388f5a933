"""Sending a pass's trials: one publish batch at the end of the pass, then the published marks.

Why at the end: a pass decides what to send for many sweeps and trials; sending them together
is one round trip to the broker, and marking them published afterwards is one pipeline to Redis.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any

from sweepq.store import Store

# (sweep id, trial id, queue, attempt). A publisher that also has ``many(items)`` with ``batches =
# True`` takes items whose second field is a tuple of trial ids: one message for all of them.
Publisher = Callable[[str, str, str, int], None]


class Outbox:
    """The trials one pass sends, flushed by :meth:`flush` at the end of each sweep's pass."""

    def __init__(self, store: Store, publish: Publisher) -> None:
        self.store = store
        self.publish = publish
        self._items: list[tuple[str, tuple[str, ...], str, int, bool]] = []

    @property
    def batches(self) -> bool:
        """Whether the publisher sends several trials in one message (the real one does)."""
        return bool(getattr(self.publish, "batches", False))

    def add(
        self, sid: str, tids: str | Sequence[str], queue: str, attempt: int, marked: bool = False
    ) -> None:
        """Queue one message for ``tids`` (a trial id or a batch of them); ``marked``: created
        already marked published on ``queue``."""
        batch = (tids,) if isinstance(tids, str) else tuple(tids)
        self._items.append((sid, batch, queue, attempt, marked))

    def flush(self) -> None:
        """Send the queued trials in one publish batch, then mark the rest published in one
        pipeline.

        Trials created by this pass were marked published by the creating script (one round trip
        less); if the send fails they are unmarked again, and whatever a dying controller could not
        unmark is found by the re-send of trials left unclaimed while a worker idles. Other trials
        are marked after the send: a controller dying in between sends them again on restart (a
        duplicate delivery is harmless, the claim is atomic).
        """
        items, self._items = self._items, []
        if not items:
            return
        sends = [
            it[:4] for it in items if not it[2].startswith("direct:")
        ]  # in-process agents claim directly
        try:
            self._send(sends)
        except Exception:
            for _, tids, _, _, marked in items:
                if marked:
                    for tid in tids:
                        with contextlib.suppress(Exception):
                            self.store.unpublish(tid)
            raise
        unmarked = [(tid, queue) for _, tids, queue, _, marked in items if not marked for tid in tids]
        if unmarked:
            self.store.mark_published_many(unmarked)

    def _send(self, sends: list[Any]) -> None:
        many = getattr(self.publish, "many", None)
        if many is not None and self.batches and sends:
            many(sends)
        elif many is not None and sends:
            many([(sid, tids[0], q, a) for sid, tids, q, a in sends])
        else:
            for sid, tids, q, a in sends:
                self.publish(sid, tids[0], q, a)
