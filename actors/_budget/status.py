"""What ``BudgetHandle.status()`` returns: the budget's books as typed rows."""

from __future__ import annotations

from dataclasses import dataclass, field

from .book import LedgerBook
from .breakers import BreakerView, Incident


@dataclass(frozen=True, slots=True, kw_only=True)
class LedgerStatus:
    """The spending against one cap by one spender.

    Attributes:
        scope: the cap's scope kind: ``cluster``, ``run``, ``agent``, ``model`` or ``tool``.
        key: the cap's scope key: ``"*"`` (one budget per spender) or a name.
        spender: the run, agent, model or tool spending against it (``"*"`` for the
            cluster).
        dimension: what is counted (a ``Dimension`` value).
        cap: the cap.
        committed: spent and settled (grants charged in full included).
        outstanding: handed out and not yet settled.
    """

    scope: str
    key: str
    spender: str
    dimension: str
    cap: float
    committed: float
    outstanding: float

    @property
    def remaining(self) -> float:
        """What is neither spent nor handed out, at least 0."""
        return max(0.0, self.cap - self.committed - self.outstanding)


@dataclass(frozen=True, slots=True, kw_only=True)
class SpendRow:
    """What one agent spent in one run on one model or tool (settled, or charged in full).

    Attributes:
        run: the run's trace id.
        agent: the agent's name.
        target: the model or tool, or ``""``.
        amounts: per dimension name.
    """

    run: str
    agent: str
    target: str
    amounts: dict[str, float]


@dataclass(frozen=True, slots=True, kw_only=True)
class IncidentStatus:
    """One failure fingerprint of the shared error registry.

    Attributes:
        fingerprint: the failure's fingerprint (see ``policies.fingerprint``).
        dependency: what failed.
        reports: how many times any agent reported it.
        agents: the agents that reported it, sorted.
    """

    fingerprint: str
    dependency: str
    reports: int
    agents: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class BudgetStatus:
    """The budget actor's books, as it stands.

    Attributes:
        incarnation: how many times the budget's state was opened (it grows by one with
            every restart of the budget actor), so two reads can be told apart.
        ledgers: every ledger in use, one per (cap, spender).
        spent: spend by (run, agent, model or tool), for the runs kept
            (``BudgetRetention.runs``).
        open_grants: reservations and leases handed out and not settled.
        late_settles: settles of grants already charged in full (expired or killed).
        breakers: every breaker known, by dependency.
        incidents: the shared error registry.
        retries: retries asked for, by outcome, since the actor started.
        events: events applied since the log began.
        replayed: events replayed at the last start (after the last snapshot).
        calls: calls the actor served since it started.
    """

    incarnation: int
    ledgers: tuple[LedgerStatus, ...]
    spent: tuple[SpendRow, ...]
    open_grants: int
    late_settles: int
    breakers: dict[str, BreakerView] = field(default_factory=dict)
    incidents: tuple[IncidentStatus, ...] = ()
    retries: dict[str, int] = field(default_factory=dict)
    events: int = 0
    replayed: int = 0
    calls: int = 0

    def ledger(
        self, *, scope: str, dimension: str, key: str = "*", spender: str | None = None
    ) -> LedgerStatus:
        """The ledger of a cap (``spender`` defaults to ``key``, or ``"*"``).

        Raises:
            KeyError: no such ledger is in use.
        """
        who = spender if spender is not None else key
        for row in self.ledgers:
            if (row.scope, row.key, row.spender, row.dimension) == (scope, key, who, dimension):
                return row
        raise KeyError((scope, key, who, dimension))

    def spend(self, *, run: str, agent: str, target: str = "") -> dict[str, float]:
        """What ``agent`` spent in ``run`` on ``target``; empty if nothing."""
        for row in self.spent:
            if (row.run, row.agent, row.target) == (run, agent, target):
                return dict(row.amounts)
        return {}


def ledger_rows(book: LedgerBook) -> tuple[LedgerStatus, ...]:
    """The book's ledgers as rows."""
    return tuple(
        LedgerStatus(
            scope=k[0],
            key=k[1],
            spender=k[2],
            dimension=k[3],
            cap=v.cap,
            committed=v.committed,
            outstanding=v.outstanding,
        )
        for k, v in book.ledgers.items()
    )


def spend_rows(book: LedgerBook) -> tuple[SpendRow, ...]:
    """The book's spend by (run, agent, target) as rows."""
    return tuple(
        SpendRow(run=run, agent=agent, target=target, amounts=dict(amounts))
        for (run, agent, target), amounts in book.spent.items()
    )


def incident_rows(incidents: dict[str, Incident]) -> tuple[IncidentStatus, ...]:
    """The error registry as rows."""
    return tuple(
        IncidentStatus(
            fingerprint=fp,
            dependency=i.dependency,
            reports=i.reports,
            agents=tuple(sorted(i.agents)),
        )
        for fp, i in incidents.items()
    )
