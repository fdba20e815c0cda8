"""The lock errors of the tree drawn in ``runtime.errors``: refusals of the locks actor
(``LockError`` and its subclasses) and of a resource's lease fencing (``StaleLeaseError``)."""

from __future__ import annotations

from datetime import timedelta

from .errors import AgentcastError, FencedError


class StaleLeaseError(FencedError):
    """A write made under a lease whose fencing token is older than the newest token the
    resource has seen for that key: a newer lease on the key exists, so this holder's
    lease has expired or been taken over (Kleppmann fencing). Nothing was applied; the
    attempt is logged as a rejection (reason ``stale_lease``).

    Attributes:
        key: the lease key.
        token: the write's token for ``key``.
        newest: the newest token the resource has seen for ``key``.
    """

    def __init__(self, resource: str, key: str, token: int, newest: int) -> None:
        super().__init__(resource, f"lease on {key!r} with token {token} is older than {newest}")
        self.key = key
        self.token = token
        self.newest = newest


class LockError(AgentcastError):
    """Refused by the locks actor.

    Attributes:
        keys: the keys of the lease concerned.
    """

    def __init__(self, keys: tuple[str, ...], message: str) -> None:
        super().__init__(f"{', '.join(keys)}: {message}")
        self.keys = keys


class LockTimeoutError(LockError):
    """The keys were not all free within the wait's timeout; nothing of the lease is held.

    Attributes:
        waited: how long the caller waited.
    """

    def __init__(self, keys: tuple[str, ...], waited: timedelta) -> None:
        super().__init__(keys, f"not granted within {waited.total_seconds():g}s")
        self.waited = waited


class LockOrderError(LockError):
    """The lease would take a key that does not sort after every key its owner already
    holds: nested leases must follow the global order (``LockPolicy.order``).

    Attributes:
        held: the held key the lease's keys do not sort after.
    """

    def __init__(self, keys: tuple[str, ...], held: str) -> None:
        super().__init__(keys, f"breaks the global lock order: {held!r} is held already")
        self.held = held


class DeadlockError(LockError):
    """The wait closed a cycle in the wait-for graph and was chosen to break it: the
    youngest waiter of the cycle (the one that started waiting last). Nothing of this
    lease is held any more; the caller's other leases are untouched.

    Attributes:
        cycle: the owners in the cycle, starting with this one.
    """

    def __init__(self, keys: tuple[str, ...], cycle: tuple[str, ...]) -> None:
        super().__init__(keys, f"deadlock broken: waits of {' -> '.join(cycle)}")
        self.cycle = cycle


class LeaseExpiredError(LockError):
    """The lease is gone (it expired, was released, or its agent was killed): it can no
    longer be renewed, and a write under it is refused by fencing.

    Attributes:
        lease_id: the lease.
    """

    def __init__(self, keys: tuple[str, ...], lease_id: str) -> None:
        super().__init__(keys, f"lease {lease_id} is no longer held")
        self.lease_id = lease_id
