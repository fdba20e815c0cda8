"""The budget actor ``budget``: an async Ray actor whose one applier runs calls in order.

Every call becomes an operation on ``BudgetCore``. The applier takes all queued operations,
applies them in arrival order and commits their events in one SQLite transaction, without
yielding between applying and committing; callers hear back only after the commit. Calls
that arrive meanwhile form the next batch (group commit).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from policies import BudgetLimit, BudgetPolicy
from runtime import (
    BudgetExceededError,
    CircuitOpenError,
    Clock,
    ConfigurationError,
    SerialApplier,
    StorageError,
    SystemClock,
    apply_each,
    fix_mmap_threshold,
    storage_root,
)

from .book import SpendContext
from .core import BreakerView, BudgetCore, Grant, RetryDecision
from .metrics import (
    record_books,
    record_breaker,
    record_refusal,
    record_retry,
    record_spend,
)
from .status import BudgetStatus, incident_rows, ledger_rows, spend_rows
from .store import BudgetEvent

_Op = Callable[[BudgetCore], Any]
COUNTED = ("settled", "late")
"""Outcomes of ``BudgetCore.settle`` that count the spend."""
_GAUGE_EVERY_S = 1.0
_EXPIRE_EVERY_S = 1.0


class BudgetHost:
    """The cluster's one budget: caps, grants, retry budgets, breakers, error registry."""

    def __init__(self, root: str, policy: BudgetPolicy, clock: Clock | None = None) -> None:
        # Nothing here may raise: an exception in __init__ kills the actor for good.
        fix_mmap_threshold()  # a burst of calls must not leave an arena of fiber stacks
        self._root = storage_root(root)
        self._policy = policy
        self._clock: Clock = clock or SystemClock()
        self._core: BudgetCore | None = None
        self._applier: SerialApplier[_Op] = SerialApplier(self._apply_batch)
        self._gauges_at = float("-inf")
        self._expiring: asyncio.Task[None] | None = None
        self.calls = 0

    def __repr__(self) -> str:
        # The dashboard's Actors page shows this rather than an empty name.
        return f"Budget(storage {str(getattr(self, '_root', '?'))!r})"

    def _open(self) -> BudgetCore:
        if self._core is None:
            try:
                self._core = BudgetCore(self._root, self._policy, clock=self._clock)
            except Exception as error:
                raise StorageError(f"budget: recovery failed: {error}") from error
        return self._core

    async def describe(self) -> dict[str, Any]:
        """What a metering agent needs: the policy (prices, metering, lease settings)."""
        self.calls += 1
        return {"policy": self._policy}

    async def declare(self, limit: BudgetLimit) -> None:
        """Set or change a cap (durable)."""
        await self._run(lambda core: core.declare(limit))

    async def reserve(
        self,
        grant_id: str,
        context: SpendContext,
        need: dict[str, float],
        want: dict[str, float] | None = None,
        holder: str = "",
        dependency: str | None = None,
    ) -> Grant:
        """Reserve ``need`` (a lease: up to ``want``); see ``BudgetCore.reserve``.

        Raises:
            CircuitOpenError: the dependency's breaker is open.
            BudgetExceededError: a cap cannot cover ``need``.
        """

        def op(core: BudgetCore) -> Grant:
            return core.reserve(
                grant_id=grant_id, context=context, need=need, want=want, holder=holder,
                dependency=dependency,
            )  # fmt: skip

        return await self._spending(context.agent, op)  # type: ignore[no-any-return]

    async def settle(self, grant_id: str, context: SpendContext, used: dict[str, float]) -> bool:
        """Close a grant with what was spent; a repeat changes nothing.

        Returns:
            Whether the spend is counted (by this call or an earlier one); False for an
            unknown grant.
        """
        outcome: str = await self._run(
            lambda core: core.settle(grant_id=grant_id, context=context, used=used)
        )
        if outcome in COUNTED:
            record_spend(context, used)
        return outcome != "unknown"

    async def renew(
        self,
        settles: list[tuple[str, dict[str, float]]],
        context: SpendContext,
        grant_id: str,
        need: dict[str, float],
        want: dict[str, float],
        holder: str = "",
        dependency: str | None = None,
    ) -> Grant:
        """Settle leases (``(grant id, used)`` each) and draw the next one, in one call and
        one commit. The settles stand even when the new lease is refused.

        Raises:
            CircuitOpenError: the dependency's breaker is open.
            BudgetExceededError: a cap cannot cover ``need``.
        """
        counted: list[dict[str, float]] = []

        def op(core: BudgetCore) -> Grant:
            for settle_id, used in settles:
                if core.settle(grant_id=settle_id, context=context, used=used) in COUNTED:
                    counted.append(used)
            return core.reserve(
                grant_id=grant_id, context=context, need=need, want=want, holder=holder,
                dependency=dependency,
            )  # fmt: skip

        try:
            return await self._spending(context.agent, op)  # type: ignore[no-any-return]
        except StorageError:
            counted.clear()  # nothing of the batch was committed
            raise
        finally:
            for used in counted:
                record_spend(context, used)

    async def try_retry(
        self, run: str, agent: str = "", dependency: str | None = None
    ) -> RetryDecision:
        """May ``run`` retry now? Draws on the run's retry budget; see
        ``BudgetCore.try_retry``. The supervisor calls it before each retry of a subtask."""
        decision: RetryDecision = await self._run(
            lambda core: core.try_retry(run, agent=agent, dependency=dependency)
        )
        record_retry(decision.reason)
        return decision

    async def record_attempt(self, run: str, count: int = 1) -> None:
        """Count ``count`` first attempts of ``run``: each lets the run retry a bit more."""
        await self._run(lambda core: core.record_attempts(run, count))

    async def admit(self, dependency: str) -> BreakerView:
        """Admit one call to ``dependency`` if its breaker allows it."""
        view: BreakerView = await self._run(lambda core: core.admit(dependency))
        record_breaker(view)
        return view

    async def report(
        self, dependency: str, ok: bool, fingerprint: str | None = None, agent: str = ""
    ) -> BreakerView:
        """Report a call's outcome to the breaker and the error registry."""
        view: BreakerView = await self._run(
            lambda core: core.report(dependency, ok=ok, fingerprint=fingerprint, agent=agent)
        )
        record_breaker(view)
        return view

    async def breaker(self, dependency: str) -> BreakerView:
        """The breaker of ``dependency``, without admitting a call."""
        self.calls += 1
        return self._open().breaker(dependency)

    async def charge_holder(self, agent: str) -> list[str]:
        """Charge in full every open grant held by a replica of ``agent`` (the kill switch
        calls it once the replicas are dead); returns their ids."""
        ids: list[str] = await self._run(lambda core: core.charge_holder(agent))
        return ids

    async def status(self) -> BudgetStatus:
        """Ledgers, open grants, spend, breakers, incidents and counts."""
        core = self._open()
        self._start_expiring()
        return BudgetStatus(
            incarnation=core.incarnation, ledgers=ledger_rows(core.book),
            spent=spend_rows(core.book), open_grants=len(core.book.grants),
            late_settles=core.book.late_settles, breakers=core.breakers(),
            incidents=incident_rows(core.incidents), retries=dict(core.retry_outcomes),
            events=core.events, replayed=core.replayed, calls=self.calls,
        )  # fmt: skip

    async def events(self, after: int = 0, limit: int = 1000) -> list[BudgetEvent]:
        """The durable log's events after position ``after``, at most ``limit``, oldest
        first (events older than ``BudgetRetention.log`` and covered by a snapshot are
        gone)."""
        return self._open().read_events(after, limit)

    async def _spending(self, agent: str, op: _Op) -> Any:
        try:
            return await self._run(op)
        except BudgetExceededError:
            record_refusal(agent, "budget")
            raise
        except CircuitOpenError:
            record_refusal(agent, "circuit_open")
            raise
        except ConfigurationError:
            record_refusal(agent, "configuration")
            raise

    async def _run(self, op: _Op) -> Any:
        self.calls += 1
        self._open()
        self._start_expiring()
        return await self._applier.submit(op)

    def _start_expiring(self) -> None:
        if self._expiring is None:
            self._expiring = asyncio.get_running_loop().create_task(self._expire_on_timer())

    async def _expire_on_timer(self) -> None:
        """Charge expired grants in full as they expire (and prune), whoever calls."""
        while True:
            await asyncio.sleep(_EXPIRE_EVERY_S)
            with contextlib.suppress(StorageError):  # the next batch recovers the core
                await self._applier.submit(lambda core: core.expire_due())

    def _apply_batch(self, batch: list[_Op]) -> list[tuple[bool, Any]]:
        core = self._open()
        outcomes = apply_each(batch, core)
        try:
            core.commit()
        except Exception as error:  # memory is ahead of the log: recover from the log
            self._core = None
            core.close()
            raise StorageError(f"budget: {error}") from error
        self._record_gauges()
        return outcomes

    def _record_gauges(self) -> None:
        now = self._clock.monotonic()
        if self._core is not None and now - self._gauges_at >= _GAUGE_EVERY_S:
            self._gauges_at = now
            record_books(self._core)
