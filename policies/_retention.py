"""How long the stores of resources, the supervisor and the agent registry keep what is
done with, so that nothing grows without bound on a long-running cluster (the budget's
is ``BudgetRetention``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta


def _check_positive(owner: object, names: tuple[str, ...]) -> None:
    for name in names:
        value = getattr(owner, name)
        if (value <= timedelta(0)) if isinstance(value, timedelta) else value < 1:
            raise ValueError(f"{type(owner).__name__}.{name} must be positive")


@dataclass(frozen=True, slots=True, kw_only=True)
class ResourceRetention:
    """What a resource's log keeps (``ResourcePolicy.retention``).

    Compaction keeps state: it only deletes log records that a snapshot covers, so
    recovery (snapshot + the records after it) gives exactly the committed state.

    Attributes:
        audit: log records and rejections are kept at least this long for the audit
            (``ResourceLog.audit``, ``ResourceLog.rejections``); older records are deleted
            once a snapshot covers them. Default 7 days.
        idempotency_keys: an idempotency key is remembered at least this long after its
            write: a retry within it returns the stored result. A retry later than both
            windows is a new write. Default 1 day.
        compact_every: how often the resource actor runs a compaction pass while writes
            arrive (a pass that hit ``compact_batch`` runs again after the next batch).
            Default 1 minute.
        compact_batch: most rows one pass deletes from each table, so that a pass never
            holds up writes for long. Default 5,000.
    """

    audit: timedelta = timedelta(days=7)
    idempotency_keys: timedelta = timedelta(days=1)
    compact_every: timedelta = timedelta(minutes=1)
    compact_batch: int = 5_000

    def __post_init__(self) -> None:
        _check_positive(self, ("audit", "idempotency_keys", "compact_every", "compact_batch"))


@dataclass(frozen=True, slots=True, kw_only=True)
class SupervisorRetention:
    """What the supervisor's store keeps, counted from when each row was done with.

    Attributes:
        subtasks: a finished subtask (done or failed) is deleted this long after it
            finished; submitting its id again later starts a new subtask. Default 7 days.
        handoffs: a handoff record is deleted this long after it was made. Default 7 days.
        events: an audit event is deleted this long after it was logged. Default 30 days.
        escalations: an answered (or rejected, or cancelled) escalation is deleted this
            long after it was answered; open ones are kept. Default 30 days.
        prune_every: how often the supervisor runs a pruning pass. Default 1 minute.
        prune_batch: most rows one pass deletes from each table. Default 5,000.
    """

    subtasks: timedelta = timedelta(days=7)
    handoffs: timedelta = timedelta(days=7)
    events: timedelta = timedelta(days=30)
    escalations: timedelta = timedelta(days=30)
    prune_every: timedelta = timedelta(minutes=1)
    prune_batch: int = 5_000

    def __post_init__(self) -> None:
        _check_positive(
            self,
            ("subtasks", "handoffs", "events", "escalations", "prune_every", "prune_batch"),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenRetention:
    """What the agent registry keeps of writer tokens.

    Attributes:
        revoked: a token revoked (by the kill switch, or when the driver that held it
            shut down) is deleted this long after; a write carrying it is then refused as
            carrying no valid token rather than as revoked. Default 1 day.
    """

    revoked: timedelta = timedelta(days=1)

    def __post_init__(self) -> None:
        _check_positive(self, ("revoked",))
