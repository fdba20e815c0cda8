"""The resource actor's write metrics, counted in memory and recorded on a timer.

A Ray metric call costs tens of microseconds of Python (tags merged and checked, then the
record): three per batch were a visible share of an unbatched write's CPU. ``WriteTally``
adds each batch's outcomes up in a dict, keeps the newest version, and records them at
most once per ``RECORD_EVERY_S`` from the event loop (a timer armed by the first batch
after a record), so a burst of writes costs a few metric calls a second, not three per
batch. Prometheus scrapes every few seconds and Ray exports on its own interval, so the
delay is not visible; what a crash loses is at most that last second of counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from runtime import RecordTimer, counter, gauge, histogram

RECORD_EVERY_S = 1.0


class WriteTally:
    """Counts writes by outcome, batch times and the version for one resource.

    Args:
        resource: the ``resource`` label.
        every_s: how long counts wait before they are recorded (``RECORD_EVERY_S``).
    """

    def __init__(self, resource: str, every_s: float = RECORD_EVERY_S) -> None:
        self._tags = {"resource": resource}
        self._outcomes: dict[str, int] = {}
        self._batch_ms: list[float] = []
        self._version: int | None = None
        self._timer = RecordTimer(self.record, every_s)

    def note(self, results: Sequence[Any], batch_ms: float, version: int) -> None:
        """Count one batch: each result's outcome (committed, duplicate, or the refusal's
        error type), how long it took, the version it left. Recorded within ``every_s``;
        at once when no event loop runs in this thread."""
        outcomes = self._outcomes
        for r in results:
            if r.error is not None:
                outcome = type(r.error).__name__
            else:
                outcome = "duplicate" if r.duplicate else "committed"
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
        self._batch_ms.append(batch_ms)
        self._version = version
        self._timer.due()

    def record(self) -> None:
        """Hand what was counted to Ray's metrics, and start counting afresh."""
        outcomes, batch_ms, version = self._outcomes, self._batch_ms, self._version
        self._outcomes, self._batch_ms, self._version = {}, [], None
        writes = counter("resource_writes_total", "Writes by outcome", ("resource", "outcome"))
        for outcome, n in outcomes.items():
            writes.inc(n, tags={**self._tags, "outcome": outcome})
        times = histogram("resource_batch_ms", "Apply + commit time of one batch", ("resource",))
        for ms in batch_ms:  # one observation per batch: a histogram cannot take a sum
            times.observe(ms, tags=self._tags)
        if version is not None:
            gauge("resource_version", "Committed version", ("resource",)).set(
                version, tags=self._tags
            )
