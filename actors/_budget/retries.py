"""The retry budgets of runs (``RetryBook``): Finagle-style windows, one per run, kept
only while their window holds a count.

A run's retry budget lives in memory (a restart of the budget actor starts every window
afresh); it is dropped once its window is empty, so runs that ended cost nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from policies import BreakerStatus, Dimension, RetryBudgetState
from runtime import BudgetExceededError, CircuitOpenError, Clock

from .book import LedgerBook, SpendContext
from .breakers import BreakerBoard


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryDecision:
    """The answer to "may this run retry now?".

    Attributes:
        allowed: whether to retry.
        reason: ``"ok"``, or why not: ``"retry_budget"`` (the run's retry budget is
            spent), ``"retries_cap"`` (a retries cap is reached) or ``"circuit_open"``
            (the dependency's breaker is open).
        retry_after: for ``"circuit_open"``, seconds until the breaker admits a probe.
    """

    allowed: bool
    reason: str
    retry_after: float | None = None

    def refusal(self, run: str, dependency: str | None = None) -> Exception:
        """The typed error for a refused retry: ``CircuitOpenError`` or
        ``BudgetExceededError`` (dimension retries)."""
        if self.reason == "circuit_open" and dependency is not None:
            after = None if self.retry_after is None else timedelta(seconds=self.retry_after)
            return CircuitOpenError(dependency, retry_after=after)
        return BudgetExceededError(
            scope=f"run:{run}", dimension=Dimension.RETRIES.value, cap=None,
            requested=1.0, available=0.0,
        )  # fmt: skip


Record = Callable[[str, dict[str, Any]], None]
"""Applies and buffers one event of the books."""


class RetryBook:
    """The retry budget of every run with a count in its window.

    Args:
        state: a fresh run's (empty) retry budget.
        clock: the budget's clock.
        book: the books (retries caps are charged there).
        board: the breakers (a retry of a dependency whose breaker is open is refused).
        record: applies and buffers an event of the books.
    """

    def __init__(
        self,
        state: RetryBudgetState,
        clock: Clock,
        book: LedgerBook,
        board: BreakerBoard,
        record: Record,
    ) -> None:
        self._fresh = state
        self._clock = clock
        self._book = book
        self._board = board
        self._record = record
        self.runs: dict[str, RetryBudgetState] = {}
        self.outcomes: dict[str, int] = {}

    def record_attempts(self, run: str, count: int = 1) -> None:
        """Count ``count`` first attempts of ``run`` (each deposits in its retry budget)."""
        self.runs[run] = self._state(run).deposit(self._clock.monotonic(), max(0, count))

    def try_retry(
        self, run: str, *, agent: str = "", dependency: str | None = None
    ) -> RetryDecision:
        """Whether ``run`` may retry now: ``dependency``'s breaker must admit calls (a
        breaker whose open period is over is half-open and does), and the run's retry
        budget and every retries cap covering it must allow one. An allowed retry is
        counted (and charged to the caps); a refused one is not. Outcomes are counted."""
        decision = self._decide(run, agent=agent, dependency=dependency)
        self.outcomes[decision.reason] = self.outcomes.get(decision.reason, 0) + 1
        return decision

    def available(self, run: str) -> int:
        """Retries the run's retry budget would allow now (caps aside)."""
        return self._state(run).available(self._clock.monotonic())

    def prune(self, runs: list[str] | None = None) -> None:
        """Drop the retry budgets whose window is empty, and those of ``runs``."""
        now = self._clock.monotonic()
        for run in [r for r, s in self.runs.items() if not s.live(now)] + (runs or []):
            self.runs.pop(run, None)

    def _decide(self, run: str, *, agent: str, dependency: str | None) -> RetryDecision:
        if dependency is not None:
            view = self._board.view(dependency)
            if view.status is BreakerStatus.OPEN or not view.allowed:
                return RetryDecision(
                    allowed=False, reason="circuit_open", retry_after=view.retry_after
                )
        allowed, state = self._state(run).try_withdraw(self._clock.monotonic())
        if not allowed:
            self._keep(run, state)
            return RetryDecision(allowed=False, reason="retry_budget")
        context = SpendContext(run=run, agent=agent or "?", tool=dependency)
        one = {Dimension.RETRIES.value: 1.0}
        try:
            ledgers = self._book.plan_charge(context, one)
        except BudgetExceededError:
            return RetryDecision(allowed=False, reason="retries_cap")
        self.runs[run] = state
        if ledgers:
            self._record("charge", {
                "ctx": context.to_dict(), "amounts": one, "ledgers": [list(k) for k in ledgers],
            })  # fmt: skip
        return RetryDecision(allowed=True, reason="ok")

    def _keep(self, run: str, state: RetryBudgetState) -> None:
        if state.buckets or run in self.runs:
            self.runs[run] = state

    def _state(self, run: str) -> RetryBudgetState:
        return self.runs.get(run) or self._fresh
