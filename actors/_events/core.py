"""The dispatcher's logic as a plain class: what each partition (consumer group x
resource) has pending, checkpoints moved after a delivery, lag, the retention horizon.

The dispatcher pulls: it reads each resource's events table (read-only: readers never
block the resource's writer, on SQLite or PostgreSQL) after the group's checkpoint, and moves the
checkpoint only once the group's replica reported the events done. A crash of the
dispatcher loses only deliveries not yet acknowledged: they are delivered again, and
the handlers' writes are deduplicated by their idempotency keys.

Checkpoints live in memory (the dispatcher is their one writer) and reach the store in
batches: ``acked`` moves a partition at once, ``flush`` writes every move since the last
flush in one transaction (the dispatcher flushes on a short timer, and on ``close``). A
crash between an ack and its flush only means those events are delivered again. Reads
are shared: partitions of one resource asking for the same range while the resource's
newest event number is unchanged get one read between them.

Handler failures in a row at each partition's head event are counted durably (one write
per failure, none on a success; the count is deleted with the flush that passes its
event), so a restarted dispatcher goes on counting where the last one stopped.
"""

from __future__ import annotations

import contextlib
from typing import Any

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
from .dead_letters import DeadLetter, DeadLetterStore
from .partition import Lag, Pending
from .store import EventLog, EventRecord
from .wire import EventBatch

_Read = tuple[list[EventRecord], list[Any]]  # the records, and their wire form


def _none(resource: str) -> _Read:
    return [], EventBatch.of(resource, []).wire()


class DispatchCore:
    """Consumer groups, their checkpoints, and the events they have pending."""

    def __init__(
        self, root: Location, policy: EventsPolicy | None = None, clock: Clock | None = None
    ) -> None:
        self.root = root
        self.policy = policy or EventsPolicy()
        self._clock = clock or SystemClock()
        self._store = CheckpointStore(root)
        self.dead = DeadLetterStore(self._store)
        self._logs: dict[str, EventLog] = {}
        self.groups = self._store.groups()
        self._positions = self._store.all()
        self._moved: dict[tuple[str, str], int] = {}  # in memory, not yet flushed
        self._failing = self._store.failures()  # partition: (head event, failures in a row)
        self._passed: set[tuple[str, str]] = set()  # failing events passed, not yet flushed
        self._reads: dict[str, tuple[int, dict[tuple[Any, ...], _Read]]] = {}
        # Replays per partition by this incarnation (a batch of an earlier one is gone):
        # a checkpoint alone cannot tell a batch read before a replay to that very number.
        self._replays: dict[tuple[str, str], int] = {}
        self._newest_seen: dict[str, int] = {}  # per resource, for the lags (``lags``)

    def close(self) -> None:
        """Flush the checkpoints moved since the last flush, then close the files."""
        with contextlib.suppress(StorageError):  # a crash loses them the same way
            self.flush()
        for log in self._logs.values():
            log.close()
        self._store.close()

    def register(self, group: str, types: list[str]) -> None:
        """Make ``group`` a consumer of ``types``; it starts at its checkpoint on each
        resource (from the first retained event if it has none).

        Raises:
            ConfigurationError: a bad group name, or ``types`` is not a non-empty list
                of type names.
            StorageError: nothing was stored.
        """
        check_name("agent", group)
        if (
            not isinstance(types, list | tuple)
            or not types
            or not all(isinstance(t, str) and t for t in types)
        ):  # a string would pass as its letters
            raise ConfigurationError(f"group {group!r} must take at least one event type")
        self._store.register(group, tuple(sorted(types)), self._clock.now())
        self.groups[group] = tuple(sorted(types))

    def forget(self, group: str) -> None:
        """Drop ``group`` and its checkpoints (its events may then be trimmed)."""
        self._store.forget(group)
        self.dead.forget(group)
        self.groups.pop(group, None)
        for key in [k for k in self._positions if k[0] == group]:
            self._positions.pop(key)
            self._moved.pop(key, None)
        for key in [k for k in self._failing if k[0] == group]:
            self._failing.pop(key)
        for key in [k for k in self._replays if k[0] == group]:
            self._replays.pop(key)
        self._passed = {key for key in self._passed if key[0] != group}

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

    def newest(self, resource: str) -> int:
        """The newest event number of ``resource``, read now (0 if it has none).

        Raises:
            StorageError: it cannot be read now (the next read opens a new connection:
                a PostgreSQL session may have been cut).
        """
        try:
            self._newest_seen[resource] = self._log(resource).last_seq()
        except StorageError:
            self._drop(resource)
            raise
        return self._newest_seen[resource]

    def last_seq(self, resource: str) -> int:
        """``newest``, or 0 if it cannot be read now: nothing then moves past what was
        read before. For a lag, the newest number read before (``lags``): 0 there would
        show every group caught up on a resource nobody can read."""
        with contextlib.suppress(StorageError):
            return self.newest(resource)
        return 0

    def position(self, group: str, resource: str) -> int:
        """``group``'s checkpoint on ``resource`` (in memory: moved, maybe not flushed)."""
        return self._positions.get((group, resource), 0)

    def pending(
        self, group: str, resource: str, *, after: int | None = None, newest: int | None = None
    ) -> Pending:
        """The next batch of ``group`` on ``resource``; with ``after``, the batch that
        follows once the checkpoint is there (a read ahead, while a batch is out: it is
        the next batch only if ``is_next`` still says so when that batch is done). With
        ``newest``, the resource's newest event number as read before (by whoever calls,
        knowing no event was committed since): no read of it now.

        Raises:
            ConfigurationError: ``group`` is not registered.
            StorageError: the resource's events could not be read.
        """
        types = self.groups.get(group)
        if types is None:
            raise ConfigurationError(f"no consumer group {group!r}")
        if after is None:
            after = self.position(group, resource)
        if newest is None:
            newest = self.last_seq(resource)  # read first: every event up to it is visible
        limit = self.policy.max_in_flight
        try:
            events, wire = self._read(resource, newest, after, types) if newest else _none(resource)
        except StorageError:
            self._drop(resource)
            raise
        last = events[-1].seq if events else 0
        upto = last if len(events) == limit else max(newest, after, last)
        return Pending(after, events, upto, wire, self._replays.get((group, resource), 0))

    def _read(self, resource: str, newest: int, after: int, types: tuple[str, ...]) -> _Read:
        """The events of ``types`` after ``after`` and their wire form, shared by every
        partition asking the same while ``newest`` stands (the records are frozen;
        nobody changes the lists): one read and one wire batch between them."""
        seen, cache = self._reads.get(resource, (-1, {}))
        if seen != newest:
            cache = {}
            self._reads[resource] = (newest, cache)
        key = (after, types)
        found = cache.get(key)
        if found is None:
            limit = self.policy.max_in_flight
            events = self._log(resource).read(after=after, types=types, limit=limit)
            found = cache[key] = (events, EventBatch.of(resource, events).wire())
        return found

    def is_next(self, group: str, resource: str, ahead: Pending) -> bool:
        """Whether ``ahead``, read ahead after a batch, is the partition's next batch
        now: it has events and the checkpoint is where it was read after (not if the
        batch before it failed part way, was reported done only in part, a dead letter
        moved the checkpoint, or a replay came meanwhile, even to the same number).
        Events are never changed once committed, so a batch read a little early is the
        batch a read now would give, or an older and shorter one (the events committed
        since are the next read's)."""
        return bool(ahead.events) and self.current(group, resource, ahead)

    def current(self, group: str, resource: str, pending: Pending) -> bool:
        """Whether the checkpoint is where ``pending`` was read after, with no replay of
        the partition since (a replay to that very number included: the batch's
        handlers may have run before the replay, which asked for them to run again)."""
        return self._positions.get((group, resource), 0) == pending.after and not self.replayed(
            group, resource, pending
        )

    def replayed(self, group: str, resource: str, pending: Pending) -> bool:
        """Whether the partition was replayed since ``pending`` was read (its report is
        then no news: the replay delivers those events again)."""
        return self._replays.get((group, resource), 0) != pending.replays

    def acked(self, group: str, resource: str, pending: Pending, done_upto: int) -> bool:
        """Move the checkpoint past what the replica reported done: ``pending.upto`` if
        it did the whole batch, else ``done_upto``. Returns whether it moved (not if a
        replay moved it meanwhile). The move is durable at the next ``flush``."""
        done_all = not pending.events or done_upto >= pending.events[-1].seq
        to = pending.upto if done_all else done_upto
        key = (group, resource)
        if to <= pending.after or not self.current(group, resource, pending):
            return False
        self._positions[key] = self._moved[key] = to
        failing = self._failing.get(key)
        if failing is not None and failing[0] <= to:  # handled at last: the count goes
            del self._failing[key]
            self._passed.add(key)
        return True

    def attempts(self, group: str, resource: str, seq: int) -> int:
        """How many times in a row the handler has failed at event ``seq`` of the
        partition once one more failure is counted (1 if it was failing at another)."""
        at, failures = self._failing.get((group, resource), (seq, 0))
        return failures + 1 if at == seq else 1

    def count_failure(self, group: str, resource: str, seq: int, failures: int) -> None:
        """Store ``failures`` (from ``attempts``) as the partition's count at ``seq``.

        Raises:
            StorageError: nothing was stored (the failure is not counted).
        """
        self._store.count_failure(group, resource, seq, failures, self._clock.now())
        self._failing[(group, resource)] = (seq, failures)

    def bury(self, letter: DeadLetter, *, expected: int) -> bool:
        """Move ``letter`` to the dead letters and its partition's checkpoint past its
        event, in one transaction, if the checkpoint is still ``expected`` (a replay
        meanwhile wins). Returns whether it did.

        Raises:
            StorageError: neither was stored.
        """
        key = (letter.group, letter.record.resource)
        if self._positions.get(key, 0) != expected:
            return False
        self.dead.bury(letter)  # and its failure count deleted
        self._positions[key] = letter.record.seq
        self._moved.pop(key, None)  # older than what was just stored
        self._failing.pop(key, None)
        self._passed.discard(key)
        return True

    def flush(self) -> int:
        """Store every checkpoint moved since the last flush, in one transaction.

        Returns:
            How many checkpoints were stored.

        Raises:
            StorageError: nothing was stored (the moves are kept for the next flush).
        """
        if not self._moved:
            return 0
        moves, self._moved = self._moved, {}
        passed, self._passed = self._passed, set()
        try:
            self._store.move_many(moves, self._clock.now(), tuple(passed & moves.keys()))
        except Exception:
            self._moved = {**moves, **self._moved}
            self._passed |= passed
            raise
        return len(moves)

    def rewind(self, groups: list[str], resource: str, to: int = 0) -> None:
        """Replay: each of ``groups`` gets ``resource``'s retained events after ``to``
        again (one transaction for them all). A batch out meanwhile moves nothing when
        its report comes (``acked``): it is delivered again, after ``to``.

        Raises:
            ConfigurationError: ``groups`` is not a list of registered groups, ``resource``
                no resource of this storage, or ``to`` not an int from 0 to the
                resource's newest event number (past it, events not yet committed would
                be passed unseen).
            StorageError: the resource's events could not be read, or nothing was stored.
        """
        self._check_rewind(groups, resource, to)
        self._store.rewind(groups, resource, to, self._clock.now())
        for key in [(group, resource) for group in groups]:
            self._moved.pop(key, None)  # a later flush must not undo it
            self._positions[key] = to
            self._replays[key] = self._replays.get(key, 0) + 1
            self._failing.pop(key, None)  # deleted with the rewind
            self._passed.discard(key)

    def _check_rewind(self, groups: list[str], resource: str, to: int) -> None:
        if not isinstance(groups, list | tuple):
            raise ConfigurationError(f"a replay names a list of groups, not {groups!r}")
        for group in groups:
            if type(group) is not str or group not in self.groups or type(to) is not int or to < 0:
                raise ConfigurationError(f"cannot rewind {group!r} on {resource!r} to {to!r}")
        if type(resource) is not str or resource not in self.resources():
            raise ConfigurationError(f"cannot replay {resource!r}: no such resource")
        if to > (newest := self.newest(resource)):
            raise ConfigurationError(
                f"cannot replay {resource!r} after {to}: the newest event of {resource!r} is "
                f"{newest}, and a checkpoint past it would pass the events committed next"
            )

    def behind(self, targets: dict[str, int], groups: list[str]) -> list[Lag]:
        """The partitions of ``groups`` (those still registered) whose checkpoint has
        not reached ``targets[resource]``, each with that number as its ``last_seq``."""
        return [
            Lag(group, resource, self.position(group, resource), upto)
            for group in groups
            if group in self.groups
            for resource, upto in targets.items()
            if self.position(group, resource) < upto
        ]

    def lags(self, resources: list[str] | None = None) -> list[Lag]:
        """Every partition's checkpoint and the newest event number, sorted; on
        ``resources`` if given (the dispatcher's list), else on every resource file."""
        checkpoints = self._positions
        resources = self.resources() if resources is None else resources
        # One read each; a resource that cannot be read now: the newest read before.
        newest = {r: self.last_seq(r) or self._newest_seen.get(r, 0) for r in resources}
        return [
            Lag(group, resource, checkpoints.get((group, resource), 0), newest[resource])
            for group in sorted(self.groups)
            for resource in resources
        ]

    def horizon(self, resource: str) -> int:
        """Every group is done with ``resource``'s events up to this number (as stored:
        the moves in memory are flushed first).

        Raises:
            StorageError: the moves could not be stored.
        """
        self.flush()
        return self._store.horizon(resource, sorted(self.groups))
