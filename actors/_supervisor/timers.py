"""The supervisor's timers: when each attempt's next phase bound falls due, and when each
delayed retry may start, on the supervisor's clock.

Entries are never removed when an attempt ends; a stale one is recognised by its attempt
number when it falls due, and ``compact`` drops them in bulk when they pile up.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable

from policies import Deadlines, Expiry, next_expiry

from .state import Attempt


class Timers:
    """Two heaps: attempt expiries ``(at, seq, subtask id, attempt number)`` and retries
    due ``(at, seq, subtask id)``."""

    def __init__(self) -> None:
        self._expiries: list[tuple[float, int, str, int]] = []
        self._retries: list[tuple[float, int, str]] = []
        self._seq = itertools.count()

    def arm(self, subtask_id: str, attempt: Attempt, deadlines: Deadlines) -> None:
        """Watch ``attempt`` for its next phase bound (queued, running or heartbeat)."""
        expiry = self._next(attempt, deadlines)
        if expiry is not None:
            self._push(expiry.at, subtask_id, attempt.number)

    def passed(
        self, subtask_id: str, attempt: Attempt, deadlines: Deadlines, now: float
    ) -> Expiry | None:
        """The phase bound ``attempt`` has crossed at ``now``, or None after arming the
        next one (a heartbeat or a start moves the bound later)."""
        expiry = self._next(attempt, deadlines)
        if expiry is None or expiry.at <= now:
            return expiry
        self._push(expiry.at, subtask_id, attempt.number)
        return None

    def retry_at(self, at: float, subtask_id: str) -> None:
        """Start the subtask's next attempt at ``at``."""
        heapq.heappush(self._retries, (at, next(self._seq), subtask_id))

    def due_expiries(self, now: float) -> list[tuple[str, int]]:
        """(subtask id, attempt number) of every expiry due at ``now``, removed."""
        due = []
        while self._expiries and self._expiries[0][0] <= now:
            _, _, subtask_id, number = heapq.heappop(self._expiries)
            due.append((subtask_id, number))
        return due

    def due_retries(self, now: float) -> list[str]:
        """Subtask ids whose retry is due at ``now``, removed."""
        due = []
        while self._retries and self._retries[0][0] <= now:
            due.append(heapq.heappop(self._retries)[2])
        return due

    def compact(self, current: Callable[[str, int], bool], live: int) -> None:
        """Drop expiries of attempts that are no longer ``current`` once they outnumber
        the ``live`` subtasks by far."""
        if len(self._expiries) <= 2 * live + 64:
            return
        kept = [entry for entry in self._expiries if current(entry[2], entry[3])]
        heapq.heapify(kept)
        self._expiries = kept

    def _push(self, at: float, subtask_id: str, number: int) -> None:
        heapq.heappush(self._expiries, (at, next(self._seq), subtask_id, number))

    @staticmethod
    def _next(attempt: Attempt, deadlines: Deadlines) -> Expiry | None:
        return next_expiry(
            deadlines, queued_at=attempt.queued_at, started_at=attempt.started_at,
            last_heartbeat_at=attempt.heartbeat_at,
        )  # fmt: skip
