"""What the locks actor answers: a grant, and its status (``LocksHandle.status()``)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True, kw_only=True)
class LeaseGrant:
    """A lease held: every key with its fencing token.

    Attributes:
        lease_id: the lease.
        keys: its keys, in the global order.
        tokens: key -> fencing token; a write under the lease carries them, and a resource
            refuses a token older than the newest it has seen for the key.
        ttl_s: its time to live in seconds: it expires unless renewed within it.
        shared: whether it is a shared (reader) lease.
    """

    lease_id: str
    keys: tuple[str, ...]
    tokens: dict[str, int]
    ttl_s: float
    shared: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyStatus:
    """One key someone holds or waits for.

    Attributes:
        key: the key. shared: whether its holders hold it shared.
        holders: the owners holding it. queued: the owners waiting for it, in order.
    """

    key: str
    shared: bool
    holders: tuple[str, ...]
    queued: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class WaitAlert:
    """A wait longer than ``LockPolicy.alert_factor`` times its declared expected hold
    time (the ``lock_wait_exceeded`` alert), still going on.

    Attributes:
        lease_id: the waiting lease. owner: who waits. key: the key it waits for.
        waited_s: how long it has waited. expected_s: the hold time it declared.
        blockers: the owners it waits for.
    """

    lease_id: str
    owner: str
    key: str
    waited_s: float
    expected_s: float
    blockers: tuple[str, ...]

    def line(self) -> str:
        """The alert as one line of ``agentcast status``."""
        return (
            f"lock_wait_exceeded {self.owner} waits {self.waited_s:.1f}s for {self.key} "
            f"(expected {self.expected_s:g}s) behind {', '.join(self.blockers) or '-'}"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class LocksStatus:
    """The locks actor as it stands.

    Attributes:
        incarnation: how many times its state was opened (grows by one per restart).
        held: leases holding all their keys. waiting: leases waiting for a key.
        keys: each key held or waited for, sorted.
        alerts: waits past their alert threshold, longest first.
        deadlocks: cycles broken by this incarnation. expired: leases it expired.
        last_token: the newest fencing token drawn.
    """

    incarnation: int
    held: int
    waiting: int
    keys: tuple[KeyStatus, ...] = ()
    alerts: tuple[WaitAlert, ...] = ()
    deadlocks: int = 0
    expired: int = 0
    last_token: int = 0
    counts: dict[str, int] = field(default_factory=dict)

    def lines(self) -> list[str]:
        """The status as lines of ``agentcast status``: a summary, then one per alert."""
        head = (
            f"locks: {self.held} held, {self.waiting} waiting, {len(self.keys)} keys, "
            f"{self.deadlocks} deadlocks broken, {self.expired} expired"
        )
        return [head, *(alert.line() for alert in self.alerts)]
