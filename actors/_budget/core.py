"""The logic of the budget actor as a plain class: caps and grants, with the retry budgets
(``RetryBook``), the breakers and the shared error registry (``BreakerBoard``) beside them.

Operations change the books in memory and buffer their events; ``commit`` writes the
buffered events in one transaction. The Ray actor (``_budget_host``) commits after each
batch of calls and only then answers them, so nothing is handed out that is not durable:
after a restart, every grant of the log is outstanding until it is settled, expires or its
holder is killed, and no cap is handed out twice. An unsettled grant that expires is
charged in full (strict mode stays safe when its holder vanished); a settle that comes
later corrects the charge. Breakers and the error registry are in the log too: a restart
does not close an open breaker. The retry budgets' windows are not: a restart starts them
afresh.

Every ``BudgetRetention.snapshot_every`` events the whole state is written as a snapshot,
so a restart replays at most that many events whatever the history; closed grants and
quiet runs are forgotten after their retention (``actors._budget.retention``).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Any

from policies import BudgetLimit, BudgetPolicy, RetryBudgetState
from runtime import Clock, InvalidArgumentError, Location, SystemClock

from .book import LedgerBook, SpendContext
from .breakers import REGISTRY_EVENTS, BreakerBoard, BreakerView
from .retention import book_snapshot, prune_book, restore_book
from .retries import RetryBook, RetryDecision
from .store import BudgetEvent, BudgetStore

__all__ = ["BreakerView", "BudgetCore", "Grant", "RetryDecision"]

_PRUNE_EVERY_S = 60.0


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


class BudgetCore:
    """The budget's state, recovered from ``<root>/budget.sqlite``.

    Raises:
        StorageError: the log cannot be opened or read.
    """

    def __init__(self, root: Location, policy: BudgetPolicy, *, clock: Clock | None = None) -> None:
        self.policy = policy
        self._clock: Clock = clock or SystemClock()
        self._store = BudgetStore(root, policy.durability)
        self._pending: list[tuple[float, str, dict[str, Any]]] = []
        self._expiry: list[tuple[float, str]] = []
        self.board = BreakerBoard(policy, self._clock, self._log)
        self.events = 0
        self.replayed = 0
        self._since_snapshot = 0
        self._pruned_at = float("-inf")
        self.book = self._recover()
        fresh = RetryBudgetState(budget=policy.retry_budget)
        self.retries = RetryBook(fresh, self._clock, self.book, self.board, self._record)
        for limit in policy.limits:
            if self.book.limits.get(_limit_key(limit)) != limit.cap:
                self.declare(limit)
        self.commit()

    @property
    def incarnation(self) -> int:
        """How many times the budget's state was opened, this time included."""
        return self._store.incarnation

    @property
    def incidents(self) -> dict[str, Any]:
        """The shared error registry, by fingerprint."""
        return self.board.incidents

    @property
    def retry_outcomes(self) -> dict[str, int]:
        """Retries asked for, by outcome, since this core started."""
        return self.retries.outcomes

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
        view = None if dependency is None else self.board.admit(dependency)
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

        A grant that expired, or whose holder was killed, was charged in full: its settle
        corrects the charge to ``used`` (counted as a late settle).

        Returns:
            ``"settled"``, ``"late"`` (a grant charged in full, corrected), ``"repeat"``
            (settled before) or ``"unknown"`` (no such grant, or closed longer ago than
            ``BudgetRetention.closed_grants``).
        """
        if grant_id in self.book.grants:
            self._record("settle", {"id": grant_id, "used": used})
            outcome = "settled"
        else:
            correction = self.book.late_correction(grant_id, used)
            if correction is None:
                return "repeat" if grant_id in self.book.closed else "unknown"
            ctx, delta, ledgers = correction
            self._record("charge", {
                "ctx": ctx.to_dict(), "amounts": delta, "ledgers": [list(k) for k in ledgers],
                "late": grant_id,
            })  # fmt: skip
            outcome = "late"
        self.retries.record_attempts(context.run, int(used.get("calls", 0)))
        return outcome

    def expire_due(self) -> int:
        """Charge in full every open grant whose time is up; returns how many."""
        now, expired = self._wall(), 0
        while self._expiry and self._expiry[0][0] <= now:
            _, grant_id = heapq.heappop(self._expiry)
            if grant_id in self.book.grants:
                self._record("expire", {"id": grant_id, "why": "expired"})
                expired += 1
        if now - self._pruned_at >= _PRUNE_EVERY_S:
            self.prune()
        return expired

    def charge_holder(self, agent: str) -> list[str]:
        """Charge in full every open grant held by a replica of ``agent`` (``agent`` or
        ``agent:<i>``), e.g. when the kill switch killed it; returns their ids."""
        prefix = f"{agent}:"
        ids = [
            g.id for g in self.book.grants.values()
            if g.holder == agent or g.holder.startswith(prefix)
        ]  # fmt: skip
        for grant_id in ids:
            self._record("expire", {"id": grant_id, "why": "killed"})
        return ids

    def remaining(self, context: SpendContext, dimension: str) -> float | None:
        """The least left under the caps covering ``context`` on ``dimension``, or None
        when none covers it."""
        keys = self.book.matching(context, dimension)
        return min((self.book.ledger(k).remaining for k in keys), default=None)

    # -- retries and breakers: see RetryBook and BreakerBoard ---------------------------

    def record_attempts(self, run: str, count: int = 1) -> None:
        """Count ``count`` first attempts of ``run`` (each deposits in its retry budget)."""
        self.retries.record_attempts(run, count)

    def try_retry(
        self, run: str, *, agent: str = "", dependency: str | None = None
    ) -> RetryDecision:
        """Whether ``run`` may retry now; see ``RetryBook.try_retry``."""
        return self.retries.try_retry(run, agent=agent, dependency=dependency)

    def retries_available(self, run: str) -> int:
        """Retries the run's retry budget would allow now (caps aside)."""
        return self.retries.available(run)

    def breaker(self, dependency: str) -> BreakerView:
        """The breaker of ``dependency`` as it stands, without admitting a call."""
        return self.board.view(dependency)

    def admit(self, dependency: str) -> BreakerView:
        """Admit one call to ``dependency`` if its breaker allows (a probe when half-open)."""
        return self.board.admit(dependency)

    def report(
        self, dependency: str, *, ok: bool, fingerprint: str | None = None, agent: str = ""
    ) -> BreakerView:
        """Report a call's outcome; see ``BreakerBoard.report``."""
        return self.board.report(dependency, ok=ok, fingerprint=fingerprint, agent=agent)

    def breakers(self) -> dict[str, BreakerView]:
        """Every breaker known, by dependency."""
        return self.board.all()

    # -- durability and retention ------------------------------------------------------

    def commit(self) -> None:
        """Write the buffered events in one transaction, and a snapshot when
        ``BudgetRetention.snapshot_every`` events were written since the last one.

        Raises:
            StorageError: the commit failed; the caller must drop this core (its memory is
                ahead of the log) and recover a new one.
        """
        pending, self._pending = self._pending, []
        self._store.append(pending)
        self._since_snapshot += len(pending)
        if self._since_snapshot >= self.policy.retention.snapshot_every:
            self.snapshot()

    def snapshot(self) -> None:
        """Write the whole state as a snapshot, then delete the events it covers that are
        older than ``BudgetRetention.log``.

        Raises:
            StorageError: the snapshot could not be written.
        """
        wall = self._wall()
        data = {
            "book": book_snapshot(self.book), "board": self.board.snapshot(wall),
            "events": self.events,
        }  # fmt: skip
        keep_after = wall - self.policy.retention.log.total_seconds()
        self._store.save_snapshot(data, keep_after=keep_after)
        self._since_snapshot = 0

    def prune(self) -> None:
        """Forget closed grants and quiet runs past their retention, and retry budgets
        whose window is empty; cut the log's WAL file back."""
        self._pruned_at = now = self._wall()
        quiet = prune_book(self.book, now, self.policy.retention)
        self.retries.prune(quiet)
        self._store.truncate_wal()

    def read_events(self, after: int = 0, limit: int = 1000) -> list[BudgetEvent]:
        """The durable log's events after position ``after`` (at most ``limit``)."""
        return list(self._store.events(after=after, limit=limit))

    def close(self) -> None:
        self._store.close()

    def _recover(self) -> LedgerBook:
        """The book of the last snapshot, with the events after it replayed."""
        found = self._store.load_snapshot()
        self.book = LedgerBook() if found is None else restore_book(found["book"])
        if found is not None:
            self.board.restore(found["board"], wall=self._wall())
            self.events = int(found["events"])
        for grant in self.book.grants.values():
            heapq.heappush(self._expiry, (grant.expires_at, grant.id))
        for event in self._store.events(after=self._store.snapshot_seq):
            self._apply(event.kind, event.data, event.at)
            self.replayed += 1
        self._since_snapshot = self.replayed
        return self.book

    def _record(self, kind: str, data: dict[str, Any]) -> None:
        wall = self._wall()
        self._apply(kind, data, wall)
        self._pending.append((wall, kind, data))

    def _log(self, kind: str, data: dict[str, Any]) -> None:
        """Buffer an event of the breakers or the error registry (already applied)."""
        self._pending.append((self._wall(), kind, data))
        self.events += 1

    def _apply(self, kind: str, data: dict[str, Any], at: float) -> None:
        if kind in REGISTRY_EVENTS:
            self.board.apply(kind, data, wall=self._wall())
        else:
            self.book.apply(kind, data, at)
        self.events += 1
        if kind == "grant":
            heapq.heappush(self._expiry, (float(data["expires_at"]), data["id"]))

    def _describe(self, grant_id: str, dependency: str | None) -> Grant:
        grant = self.book.grants[grant_id]
        view = None if dependency is None else self.board.view(dependency)
        left = max(0.0, grant.expires_at - self._wall())
        return Grant(id=grant_id, amounts=dict(grant.amounts), expires_in=left, breaker=view)

    def _wall(self) -> float:
        return self._clock.now().timestamp()


def _limit_key(limit: BudgetLimit) -> tuple[str, str, str]:
    return limit.scope.kind.value, limit.scope.key, limit.dimension.value
