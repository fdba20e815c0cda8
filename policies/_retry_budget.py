"""Retry budget of a run, Finagle-style: retries at most a ratio of first attempts plus a floor.

Every first attempt deposits; every retry withdraws. Within the window, retries are allowed
while ``withdrawals < min_retries_per_window + floor(ratio * deposits)``. One budget covers
every agent of a run, so three agents circling one failing service share a single small
allowance instead of each multiplying the load.

Events are counted in whole-second buckets (``floor(now)``), so the state holds at most one
entry per second of the window whatever the call rate. The window at ``now`` is the last
``n = ceil(window in seconds)`` buckets, ``floor(now) - n < bucket <= floor(now)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta
from typing import NamedTuple

# Absorbs the rounding of ratio * deposits (0.1 * 30 is 3.0000000000000004).
_EPSILON = 1e-9


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryBudget:
    """How many retries a run may make relative to its first attempts.

    Attributes:
        ratio: retries allowed per first attempt in the window, at least 0. Default 0.2
            (one retry per five calls).
        min_retries_per_window: retries always allowed in a window, so that a run with few
            calls can still retry. Default 10.
        window: span the counts cover, rounded up to whole seconds; at least 1 second and
            at most a day. Default 10 seconds.
    """

    ratio: float = 0.2
    min_retries_per_window: int = 10
    window: timedelta = timedelta(seconds=10)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.ratio) and self.ratio >= 0.0):
            raise ValueError(f"RetryBudget.ratio must be finite and >= 0, got {self.ratio}")
        if self.min_retries_per_window < 0:
            raise ValueError(
                "RetryBudget.min_retries_per_window must not be negative, "
                f"got {self.min_retries_per_window}"
            )
        if not timedelta(seconds=1) <= self.window <= timedelta(days=1):
            raise ValueError(
                f"RetryBudget.window must be between 1 second and 1 day, got {self.window!r}"
            )

    @property
    def window_seconds(self) -> int:
        """The window in whole seconds (buckets)."""
        return math.ceil(self.window.total_seconds())

    def allowance(self, deposits: int) -> int:
        """Retries allowed in a window holding ``deposits`` first attempts."""
        return self.min_retries_per_window + math.floor(self.ratio * deposits + _EPSILON)


class _Bucket(NamedTuple):
    second: int
    deposits: int
    withdrawals: int


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryBudgetState:
    """The counts of one retry budget: an immutable value, replaced on every event.

    Attributes:
        budget: the bound. Default ``RetryBudget()``.
        buckets: per-second counts inside the window, oldest first. Default empty.
    """

    budget: RetryBudget = RetryBudget()
    buckets: tuple[_Bucket, ...] = ()

    def deposit(self, now: float, count: int = 1) -> RetryBudgetState:
        """The state after ``count`` first attempts at ``now`` (one step, whatever the
        count: a lease settles hundreds of calls at once).

        Raises:
            ValueError: ``now`` is not finite or falls in a second before the latest
                event, or ``count`` is negative.
        """
        if count < 0:
            raise ValueError(f"count must be at least 0, got {count}")
        if count == 0:  # no deposit: the same state as making none (its time still checked)
            self._live(now)
            return self
        return self._add(now, deposits=count, withdrawals=0)

    def try_withdraw(self, now: float) -> tuple[bool, RetryBudgetState]:
        """Take one retry from the budget at ``now`` if it allows one.

        Returns:
            ``(allowed, new_state)``; a refused retry is not counted.

        Raises:
            ValueError: ``now`` is not finite or falls in a second before the latest event.
        """
        if self.available(now) < 1:
            return False, self._add(now, deposits=0, withdrawals=0)
        return True, self._add(now, deposits=0, withdrawals=1)

    def available(self, now: float) -> int:
        """Retries the budget would allow at ``now``, at least 0.

        Raises:
            ValueError: ``now`` is not finite or falls in a second before the latest event.
        """
        live = self._live(now)
        deposits = sum(bucket.deposits for bucket in live)
        withdrawals = sum(bucket.withdrawals for bucket in live)
        return max(0, self.budget.allowance(deposits) - withdrawals)

    def live(self, now: float) -> bool:
        """Whether the window at ``now`` holds any count (else the state is a fresh one's).

        Raises:
            ValueError: ``now`` is not finite or falls in a second before the latest event.
        """
        return any(bucket.deposits or bucket.withdrawals for bucket in self._live(now))

    def _live(self, now: float) -> tuple[_Bucket, ...]:
        if not math.isfinite(now):
            raise ValueError(f"now must be finite, got {now!r}")
        second = math.floor(now)
        if self.buckets and second < self.buckets[-1].second:
            raise ValueError(f"now {now} is before the latest event {self.buckets[-1].second}")
        oldest = second - self.budget.window_seconds
        return tuple(bucket for bucket in self.buckets if bucket.second > oldest)

    def _add(self, now: float, *, deposits: int, withdrawals: int) -> RetryBudgetState:
        live = self._live(now)
        second = math.floor(now)
        if live and live[-1].second == second:
            last = live[-1]
            bucket = _Bucket(second, last.deposits + deposits, last.withdrawals + withdrawals)
            live = (*live[:-1], bucket)
        elif deposits or withdrawals:
            live = (*live, _Bucket(second, deposits, withdrawals))
        return RetryBudgetState(budget=self.budget, buckets=live)
