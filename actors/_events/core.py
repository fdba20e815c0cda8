"""The dispatcher's logic as a plain class: what each partition (consumer group x
resource) has pending, checkpoints moved after a delivery, lag, the retention horizon.

The dispatcher pulls: it reads each resource's events table (read-only: readers never
block the resource's writer, on SQLite or PostgreSQL) after the group's checkpoint, and moves the
checkpoint only once the group's replica reported the events done. A crash of the
dispatcher loses only deliveries not yet acknowledged: they are delivered again, and
the handlers' writes are deduplicated by their idempotency keys.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from policies import EventsPolicy
from runtime import (
    Clock,
    ConfigurationError,
    Location,
    StorageError,
    SystemClock,
    check_name,
    stores_in,
)

from .checkpoints import CheckpointStore
from .store import EventLog, EventRecord


@dataclass(frozen=True, slots=True)
class Pending:
    """What one partition has to deliver now.

    Attributes:
        after: the checkpoint the events were read after.
        events: up to ``max_in_flight`` events of the group's types, in order.
        upto: the checkpoint once ``events`` are done: the last of them, or, when fewer
            than a full batch matched, the newest sequence number seen (the events of
            other types in between are passed with them).
    """

    after: int
    events: list[EventRecord]
    upto: int


@dataclass(frozen=True, slots=True)
class Lag:
    """One partition's position: ``lag`` events committed past ``checkpoint``."""

    group: str
    resource: str
    checkpoint: int
    last_seq: int

    @property
    def lag(self) -> int:
        return max(self.last_seq - self.checkpoint, 0)


class DispatchCore:
    """Consumer groups, their checkpoints, and the events they have pending."""

    def __init__(
        self, root: Location, policy: EventsPolicy | None = None, clock: Clock | None = None
    ) -> None:
        self.root = root
        self.policy = policy or EventsPolicy()
        self._clock = clock or SystemClock()
        self._store = CheckpointStore(root)
        self._logs: dict[str, EventLog] = {}
        self.groups = self._store.groups()

    def close(self) -> None:
        for log in self._logs.values():
            log.close()
        self._store.close()

    def register(self, group: str, types: list[str]) -> None:
        """Make ``group`` a consumer of ``types``; it starts at its checkpoint on each
        resource (from the first retained event if it has none).

        Raises:
            ConfigurationError: a bad group name, or no types.
            StorageError: nothing was stored.
        """
        check_name("agent", group)
        if not types or not all(isinstance(t, str) and t for t in types):
            raise ConfigurationError(f"group {group!r} must take at least one event type")
        self._store.register(group, tuple(sorted(types)), self._clock.now())
        self.groups[group] = tuple(sorted(types))

    def forget(self, group: str) -> None:
        """Drop ``group`` and its checkpoints (its events may then be trimmed)."""
        self._store.forget(group)
        self.groups.pop(group, None)

    def resources(self) -> list[str]:
        """The resources whose stores exist in this storage, by name.

        Raises:
            StorageError: the storage could not be listed.
        """
        return stores_in(self.root / "resources")

    def _log(self, resource: str) -> EventLog:
        log = self._logs.get(resource)
        if log is None:
            log = self._logs[resource] = EventLog(self.root, resource)
        return log

    def _drop(self, resource: str) -> None:
        """Forget ``resource``'s reader after a failed read: the next read opens a new
        connection (a PostgreSQL session may have been cut)."""
        log = self._logs.pop(resource, None)
        if log is not None:
            with contextlib.suppress(Exception):
                log.close()

    def last_seq(self, resource: str) -> int:
        """The newest event number of ``resource`` (0 if it has none, no store yet, or
        cannot be read now: nothing then moves past what was read before)."""
        try:
            return self._log(resource).last_seq()
        except StorageError:
            self._drop(resource)
            return 0

    def pending(self, group: str, resource: str) -> Pending:
        """The next batch of ``group`` on ``resource``.

        Raises:
            ConfigurationError: ``group`` is not registered.
            StorageError: the resource's events could not be read.
        """
        types = self.groups.get(group)
        if types is None:
            raise ConfigurationError(f"no consumer group {group!r}")
        after = self._store.get(group, resource)
        newest = self.last_seq(resource)  # read first: every event up to it is visible
        limit = self.policy.max_in_flight
        try:
            read = self._log(resource).read
            events = read(after=after, types=types, limit=limit) if newest else []
        except StorageError:
            self._drop(resource)
            raise
        last = events[-1].seq if events else 0
        upto = last if len(events) == limit else max(newest, after, last)
        return Pending(after, events, upto)

    def acked(self, group: str, resource: str, pending: Pending, done_upto: int) -> bool:
        """Move the checkpoint past what the replica reported done: ``pending.upto`` if
        it did the whole batch, else ``done_upto``. Returns whether it moved (not if a
        replay moved it meanwhile)."""
        done_all = not pending.events or done_upto >= pending.events[-1].seq
        to = pending.upto if done_all else done_upto
        if to <= pending.after:
            return False
        now = self._clock.now()
        return self._store.move(group, resource, expected=pending.after, to=to, now=now)

    def rewind(self, group: str, resource: str, to: int = 0) -> None:
        """Replay: ``group`` gets ``resource``'s retained events after ``to`` again.

        Raises:
            ConfigurationError: ``group`` is not registered, or ``to`` is negative.
        """
        if group not in self.groups or not isinstance(to, int) or to < 0:
            raise ConfigurationError(f"cannot rewind {group!r} on {resource!r} to {to!r}")
        self._store.rewind(group, resource, to, self._clock.now())

    def lags(self) -> list[Lag]:
        """Every partition's checkpoint and the newest event number, sorted."""
        checkpoints = self._store.all()
        return [
            Lag(group, resource, checkpoints.get((group, resource), 0), self.last_seq(resource))
            for group in sorted(self.groups)
            for resource in self.resources()
        ]

    def horizon(self, resource: str) -> int:
        """Every group is done with ``resource``'s events up to this number."""
        return self._store.horizon(resource, sorted(self.groups))
