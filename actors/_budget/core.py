"""The logic of the budget actor as a plain class: caps and grants, retry budgets, breakers
and the shared error registry.

Operations change the books in memory and buffer their events; ``commit`` writes the
buffered events in one transaction. The Ray actor (``_budget_host``) commits after each
batch of calls and only then answers them, so nothing is handed out that is not durable:
after a restart, every grant of the log is outstanding until it is settled or expires,
and no cap is handed out twice. Breakers and the error registry are in the log too (see
``_budget_breakers``): a restart does not close an open breaker. The retry budgets'
windows are not: a restart starts them afresh.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from policies import (
    BreakerState,
    BreakerStatus,
    BudgetLimit,
    BudgetPolicy,
    Dimension,
    RetryBudgetState,
)
from runtime import BudgetExceededError, CircuitOpenError, Clock, InvalidArgumentError, SystemClock

from .book import LedgerBook, SpendContext
from .breakers import REGISTRY_EVENTS, Incident, breaker_snapshot, breaker_state
from .store import BudgetStore


@dataclass(frozen=True, slots=True, kw_only=True)
class BreakerView:
    """A breaker as an agent sees it.

    Attributes:
        dependency: the dependency's name.
        status: closed, open or half-open.
        allowed: whether the call that asked may go ahead.
        probe: whether that call is a half-open probe (its result must be reported).
        retry_after: seconds until the breaker admits a probe, or None.
    """

    dependency: str
    status: BreakerStatus
    allowed: bool = True
    probe: bool = False
    retry_after: float | None = None

    def refusal(self) -> CircuitOpenError:
        """The error for a refused call."""
        after = None if self.retry_after is None else timedelta(seconds=self.retry_after)
        return CircuitOpenError(self.dependency, retry_after=after)


@dataclass(frozen=True, slots=True, kw_only=True)
class Grant:
    """A reservation or a lease: what was handed out, and until when.

    Attributes:
        id: the grant's id, given by the caller (a repeated call returns the same grant).
        amounts: what was handed out, per dimension name.
        expires_in: seconds until it expires unless settled.
        breaker: the breaker of the dependency asked about, or None.
    """

    id: str
    amounts: dict[str, float]
    expires_in: float
    breaker: BreakerView | None = None


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


class BudgetCore:
    """The budget's state, recovered from ``<root>/budget.sqlite``.

    Raises:
        StorageError: the log cannot be opened or read.
    """

    def __init__(self, root: Path, policy: BudgetPolicy, *, clock: Clock | None = None) -> None:
        self.policy = policy
        self._clock: Clock = clock or SystemClock()
        self._store = BudgetStore(root, policy.durability)
        self.book = LedgerBook()
        self._pending: list[tuple[float, str, dict[str, Any]]] = []
        self._expiry: list[tuple[float, str]] = []
        self._retries: dict[str, RetryBudgetState] = {}
        self._breakers: dict[str, BreakerState] = {}
        self.incidents: dict[str, Incident] = {}
        self.retry_outcomes: dict[str, int] = {}
        self.events = 0
        for event in self._store.events():
            self._apply(event.kind, event.data)
        for limit in policy.limits:
            if self.book.limits.get(_limit_key(limit)) != limit.cap:
                self.declare(limit)
        self.commit()

    # -- caps and grants ---------------------------------------------------------------

    def declare(self, limit: BudgetLimit) -> None:
        """Set (or change) a cap; spending already counted against its scope stays."""
        kind, key, dim = _limit_key(limit)
        self._record("declare", {"kind": kind, "key": key, "dim": dim, "cap": limit.cap})

    def reserve(
        self,
        *,
        grant_id: str,
        context: SpendContext,
        need: dict[str, float],
        want: dict[str, float] | None = None,
        holder: str = "",
        dependency: str | None = None,
    ) -> Grant:
        """Hand out at least ``need`` and at most ``want`` (a lease) against every cap
        covering ``context``, after checking ``dependency``'s breaker.

        Raises:
            CircuitOpenError: the dependency's breaker refuses the call.
            BudgetExceededError: a cap cannot cover ``need``.
            ConfigurationError: a cost cap covers an unpriced model.
            InvalidArgumentError: ``grant_id`` was used by a grant already closed.
        """
        self.expire_due()
        if grant_id in self.book.grants:
            return self._describe(grant_id, dependency)
        if grant_id in self.book.closed:
            raise InvalidArgumentError(f"grant id {grant_id!r} was used before")
        view = None if dependency is None else self.admit(dependency)
        if view is not None and not view.allowed:
            raise view.refusal()
        lease = want is not None
        amounts, ledgers = self.book.plan_grant(
            context, need, want or need, mode=self.policy.mode,
            share=self.policy.lease_share if lease else 1.0,
        )  # fmt: skip
        ttl = self.policy.lease_ttl if lease else self.policy.reservation_ttl
        expires_at = self._wall() + ttl.total_seconds()
        self._record("grant", {
            "id": grant_id, "ctx": context.to_dict(), "amounts": amounts,
            "ledgers": [list(k) for k in ledgers], "expires_at": expires_at, "holder": holder,
        })  # fmt: skip
        return Grant(id=grant_id, amounts=amounts, expires_in=ttl.total_seconds(), breaker=view)

    def settle(self, *, grant_id: str, context: SpendContext, used: dict[str, float]) -> str:
        """Close a grant with what was really spent; a repeated settle changes nothing.

        A grant that already expired is charged in full anyway (real spend is never
        dropped): that is the one way a strict cap can be crossed, counted as a late
        settle.

        Returns:
            ``"settled"``, ``"late"`` (charged after expiry), ``"repeat"`` (settled
            before) or ``"unknown"`` (no such grant).
        """
        closed = self.book.closed.get(grant_id)
        if grant_id in self.book.grants:
            self._record("settle", {"id": grant_id, "used": used})
            outcome = "settled"
        elif closed == "expired":
            ledgers = [list(k) for dim in used for k in self.book.matching(context, dim)]
            self._record("charge", {
                "ctx": context.to_dict(), "amounts": used, "ledgers": ledgers, "late": True,
            })  # fmt: skip
            self.book.closed[grant_id] = "late"
            outcome = "late"
        else:
            return "unknown" if closed is None else "repeat"
        self.record_attempts(context.run, int(used.get(Dimension.CALLS.value, 0)))
        return outcome

    def expire_due(self) -> int:
        """Release every open grant whose time is up; returns how many."""
        now, expired = self._wall(), 0
        while self._expiry and self._expiry[0][0] <= now:
            _, grant_id = heapq.heappop(self._expiry)
            if grant_id in self.book.grants:
                self._record("expire", {"id": grant_id})
                expired += 1
        return expired

    def remaining(self, context: SpendContext, dimension: str) -> float | None:
        """The least left under the caps covering ``context`` on ``dimension``, or None
        when none covers it."""
        keys = self.book.matching(context, dimension)
        return min((self.book.ledger(k).remaining for k in keys), default=None)

    # -- retries -----------------------------------------------------------------------

    def record_attempts(self, run: str, count: int = 1) -> None:
        """Count ``count`` first attempts of ``run`` (each deposits in its retry budget)."""
        now = self._clock.monotonic()
        state = self._retry_state(run)
        for _ in range(max(0, count)):
            state = state.deposit(now)
        self._retries[run] = state

    def try_retry(
        self, run: str, *, agent: str = "", dependency: str | None = None
    ) -> RetryDecision:
        """Whether ``run`` may retry now (see ``_decide_retry``); outcomes are counted."""
        decision = self._decide_retry(run, agent=agent, dependency=dependency)
        self.retry_outcomes[decision.reason] = self.retry_outcomes.get(decision.reason, 0) + 1
        return decision

    def _decide_retry(
        self, run: str, *, agent: str = "", dependency: str | None = None
    ) -> RetryDecision:
        """Whether ``run`` may retry now: ``dependency``'s breaker must not be open, and
        the run's retry budget and every retries cap covering it must allow one. An
        allowed retry is counted (and charged to the caps); a refused one is not."""
        if dependency is not None:
            view = self.breaker(dependency)
            if view.status is BreakerStatus.OPEN:
                return RetryDecision(
                    allowed=False, reason="circuit_open", retry_after=view.retry_after
                )
        allowed, state = self._retry_state(run).try_withdraw(self._clock.monotonic())
        self._retries[run] = state if not allowed else self._retries.get(run, state)
        if not allowed:
            return RetryDecision(allowed=False, reason="retry_budget")
        context = SpendContext(run=run, agent=agent or "?", tool=dependency)
        one = {Dimension.RETRIES.value: 1.0}
        try:
            ledgers = self.book.plan_charge(context, one)
        except BudgetExceededError:
            return RetryDecision(allowed=False, reason="retries_cap")
        self._retries[run] = state
        if ledgers:
            self._record("charge", {
                "ctx": context.to_dict(), "amounts": one, "ledgers": [list(k) for k in ledgers],
            })  # fmt: skip
        return RetryDecision(allowed=True, reason="ok")

    def retries_available(self, run: str) -> int:
        """Retries the run's retry budget would allow now (caps aside)."""
        return self._retry_state(run).available(self._clock.monotonic())

    def _retry_state(self, run: str) -> RetryBudgetState:
        return self._retries.get(run) or RetryBudgetState(budget=self.policy.retry_budget)

    # -- breakers and the error registry -------------------------------------------------

    def breaker(self, dependency: str) -> BreakerView:
        """The breaker of ``dependency`` as it stands, without admitting a call."""
        return self._view(dependency, self._state(dependency))

    def admit(self, dependency: str) -> BreakerView:
        """Admit one call to ``dependency`` if its breaker allows (a probe when half-open)."""
        allowed, state, probe = self._state(dependency).allow(self._clock.monotonic())
        self._set_breaker(dependency, state)
        return self._view(dependency, state, allowed=allowed, probe=probe)

    def report(
        self, dependency: str, *, ok: bool, fingerprint: str | None = None, agent: str = ""
    ) -> BreakerView:
        """Report a call's outcome. A failure counts toward the breaker; its fingerprint
        is counted once in the registry, and once ``block_after_agents`` agents report
        the same one, the breaker opens at once. A success that leaves the breaker closed
        clears the dependency's incidents."""
        now = self._clock.monotonic()
        state = self._state(dependency)
        if ok:
            state = state.on_success(now)
            if state.status is BreakerStatus.CLOSED and any(
                i.dependency == dependency for i in self.incidents.values()
            ):
                self._log("cleared", {"dep": dependency})
        else:
            state = state.on_failure(now)
            if fingerprint is not None:
                self._log("incident", {"fp": fingerprint, "dep": dependency, "agent": agent})
                incident = self.incidents[fingerprint]
                shared = len(incident.agents) >= self.policy.block_after_agents
                if shared and state.status is BreakerStatus.CLOSED:
                    state = BreakerState(policy=state.policy, status=BreakerStatus.OPEN, since=now)
        self._set_breaker(dependency, state)
        return self._view(dependency, state)

    def _set_breaker(self, dependency: str, state: BreakerState) -> None:
        """Keep ``state``, and log it when it changed, so a restart finds it again."""
        if state == self._state(dependency):
            return
        self._breakers[dependency] = state
        self._pending.append((self._wall(), "breaker", breaker_snapshot(
            dependency, state, wall=self._wall(), mono=self._clock.monotonic()
        )))  # fmt: skip
        self.events += 1

    def breakers(self) -> dict[str, BreakerView]:
        """Every breaker known, by dependency."""
        return {dep: self._view(dep, state) for dep, state in self._breakers.items()}

    def _state(self, dependency: str) -> BreakerState:
        return self._breakers.get(dependency) or BreakerState(policy=self.policy.breaker)

    def _view(
        self, dependency: str, state: BreakerState, *, allowed: bool = True, probe: bool = False
    ) -> BreakerView:
        at = state.next_probe_at()
        after = None if at is None else max(0.0, at - self._clock.monotonic())
        return BreakerView(
            dependency=dependency, status=state.status, allowed=allowed, probe=probe,
            retry_after=after,
        )  # fmt: skip

    # -- durability ----------------------------------------------------------------------

    def commit(self) -> None:
        """Write the buffered events in one transaction.

        Raises:
            StorageError: the commit failed; the caller must drop this core (its memory is
                ahead of the log) and recover a new one.
        """
        pending, self._pending = self._pending, []
        self._store.append(pending)

    def close(self) -> None:
        self._store.close()

    def _record(self, kind: str, data: dict[str, Any]) -> None:
        self._apply(kind, data)
        self._pending.append((self._wall(), kind, data))

    def _log(self, kind: str, data: dict[str, Any]) -> None:
        """Apply and buffer an event of the breakers or the error registry."""
        self._apply_registry(kind, data)
        self._pending.append((self._wall(), kind, data))
        self.events += 1

    def _apply_registry(self, kind: str, data: dict[str, Any]) -> None:
        if kind == "incident":
            incident = self.incidents.setdefault(data["fp"], Incident(data["dep"]))
            incident.reports += 1
            incident.agents.add(data["agent"])
        elif kind == "cleared":
            for key in [k for k, i in self.incidents.items() if i.dependency == data["dep"]]:
                del self.incidents[key]
        else:  # "breaker", replayed: its instants move to this process's monotonic clock
            state = breaker_state(
                data, self.policy, wall=self._wall(), mono=self._clock.monotonic()
            )
            self._breakers[data["dep"]] = state

    def _apply(self, kind: str, data: dict[str, Any]) -> None:
        if kind in REGISTRY_EVENTS:
            self._apply_registry(kind, data)
        else:
            self.book.apply(kind, data)
        self.events += 1
        if kind == "grant":
            heapq.heappush(self._expiry, (float(data["expires_at"]), data["id"]))

    def _describe(self, grant_id: str, dependency: str | None) -> Grant:
        grant = self.book.grants[grant_id]
        view = None if dependency is None else self.breaker(dependency)
        left = max(0.0, grant.expires_at - self._wall())
        return Grant(id=grant_id, amounts=dict(grant.amounts), expires_in=left, breaker=view)

    def _wall(self) -> float:
        return self._clock.now().timestamp()


def _limit_key(limit: BudgetLimit) -> tuple[str, str, str]:
    return limit.scope.kind.value, limit.scope.key, limit.dimension.value
