"""The dispatcher actor ``events``: pulls committed events from every resource's store
and delivers them to consumer groups (agents with ``@subscribe`` handlers).

One asyncio task per partition (group x resource) delivers one batch at a time to the
replica the partition maps to, so a partition's events are handled in order and at most
``max_in_flight`` are outstanding (backpressure). While a full batch is out (a
backlog), the partition reads the batch after it, so it sends that one the moment the
report comes, if the report leaves the checkpoint where that read started
(``DispatchCore.is_next``); else it reads again. One watcher task reads each resource's
newest event number every ``poll_interval`` and wakes the idle partitions of that
resource; a resource's commits also send ``nudge`` (one call in flight per resource),
which wakes them at once: the poll is only the fallback for a lost nudge. Checkpoint
moves are flushed in one transaction every ``_FLUSH_S``, and wake the callers of
``wait_caught_up`` (answered when the checkpoints get there, not polled). Everything durable is in
``DispatchCore``: a restarted dispatcher (Ray restarts it) resumes every partition from
its checkpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime
from typing import Any

from policies import EventsPolicy
from runtime import (
    Clock,
    StorageError,
    SystemClock,
    storage_root,
)

from .catchup import CheckpointWatch, check_wait
from .core import DispatchCore
from .dead_letters import DeadLetter, after_failure, on_the_wire
from .nudge import check_nudge
from .partition import Lag, Pending
from .routing import ReplicaRoutes, future_of
from .subscribe import DeliveryReport
from .tally import DeliveryTally
from .trim import trim_retained

_log = logging.getLogger(__name__)
_SUPERVISE_S = 0.1  # how often new groups and resources are picked up
_IDLE_WAKE_S = 1.0  # an idle partition looks again at least this often, bell or not
_LIST_S = 1.0  # how often the resource files are listed (a nudge from a new one: at once)
# Checkpoint moves wait at most this long to share a transaction. A flush is a commit
# with an fsync on the event loop (0.3 ms on a quiet disk, milliseconds under load): every
# 20 ms it held the loop for 11 % of the time at one subscriber. A crash redelivers at
# most this long of acknowledged batches (their effects are deduplicated).
_FLUSH_S = 0.1


class EventsHost:
    """The ``events`` actor (async). Nothing in ``__init__`` may raise: the store is
    opened by the supervising task, which retries."""

    def __init__(self, root: str, namespace: str, policy: EventsPolicy, clock: Clock | None = None):
        self._root = storage_root(root)
        self._namespace = namespace
        self._policy = policy
        self._clock = clock or SystemClock()
        self._core: DispatchCore | None = None
        self._tasks: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._bells: dict[str, asyncio.Event] = {}
        self._newest: dict[str, int] = {}
        self._read_newest: dict[str, int] = {}  # per resource, since its last ring
        self._errors: dict[tuple[str, str], str] = {}
        self._handled: dict[tuple[str, str], int] = {}
        self._timeout_s = policy.delivery_timeout.total_seconds()
        self._routes = ReplicaRoutes(namespace, self._timeout_s)
        self._tally = DeliveryTally(self._clock)
        self._trimmed_at: datetime | None = None
        self._moved = asyncio.Event()  # a checkpoint moved since the last flush
        self._watch_moves = CheckpointWatch()  # wakes ``wait_caught_up``
        self._listed: tuple[float, list[str]] = (float("-inf"), [])  # when, resources
        loop = asyncio.get_running_loop()
        self._main = [
            loop.create_task(self._supervise()), loop.create_task(self._watch()),
            loop.create_task(self._flush()),
        ]  # fmt: skip

    def _open(self) -> DispatchCore:
        if self._core is None:
            self._core = DispatchCore(self._root, self._policy, self._clock)
        return self._core

    # -- calls ------------------------------------------------------------------------

    async def register(self, group: str, types: list[str]) -> None:
        """Make agent ``group`` a consumer group of ``types`` (``System.agent`` calls it).

        Raises:
            ConfigurationError: a bad group name or no types. StorageError: not stored.
        """
        self._open().register(group, types)
        self._routes.forget(group)
        self._start_partitions()

    async def describe(self) -> dict[str, Any]:
        """For ``agentcast check``: each event type a consumer group subscribes to, and
        its groups (``{"subscribers": {type: [group, ...]}}``)."""
        subscribers: dict[str, list[str]] = {}
        for group, types in self._open().groups.items():
            for event_type in types:
                subscribers.setdefault(event_type, []).append(group)
        return {"subscribers": {t: sorted(g) for t, g in sorted(subscribers.items())}}

    async def forget(self, group: str) -> None:
        """Stop delivering to ``group`` and drop its checkpoints."""
        self._open().forget(group)
        self._watch_moves.moved()
        for key in [k for k in self._tasks if k[0] == group]:
            self._tasks.pop(key).cancel()

    async def rewind(self, groups: str | list[str], resource: str, to: int = 0) -> None:
        """Replay ``resource``'s retained events after ``to`` to ``groups`` (a name or
        a list), in one transaction; a batch out meanwhile is delivered again.

        Raises:
            ConfigurationError, StorageError: as ``DispatchCore.rewind``.
        """
        self._open().rewind([groups] if isinstance(groups, str) else groups, resource, to)
        self._watch_moves.moved()
        self._ring(resource)

    async def wait_caught_up(
        self, upto: dict[str, int] | None = None, groups: list[str] | None = None,
        timeout_s: float = 60.0,
    ) -> list[Lag]:  # fmt: skip
        """Return every partition's lag once each partition of ``groups`` (default: all)
        has its checkpoint at ``upto[resource]`` or past it (default: each resource's
        newest event number when called), woken by the checkpoint moves.

        Raises:
            InvalidArgumentError: malformed arguments. ConfigurationError: no such group.
            TimeoutError: a partition still behind after ``timeout_s``.
        """
        targets, names = check_wait(self._open(), upto, groups, timeout_s)
        await self._watch_moves.until_caught_up(self._open(), targets, names, timeout_s)
        return self._open().lags()

    async def nudge(self, resource: str, seq: int) -> bool:
        """``resource`` committed events up to ``seq``: wake its partitions now (the
        resource's call after commits that emitted). Only a hint: partitions read the
        resource's file, so a forged or stale ``seq`` wakes them for nothing. Returns
        whether any consumer group is registered (none: the resource stops nudging for
        a while, the poll serves a group registered meanwhile).

        Raises:
            InvalidArgumentError: ``resource`` is not a resource name or ``seq`` not an
                int >= 0.
        """
        check_nudge(resource, seq)
        if resource not in self._listed[1]:  # a new resource: list the files now
            self._listed = (float("-inf"), [])
            self._start_partitions()
        self._ring(resource)
        return bool(self._open().groups)

    async def lags(self) -> list[Lag]:
        """Every partition's checkpoint and the newest event number."""
        return self._open().lags()

    async def status(self) -> list[dict[str, Any]]:
        """Per partition: checkpoint, newest event, lag, events handled by this
        incarnation, and the last delivery error (for ``agentcast status``)."""
        try:
            dead = self._open().dead.counts()
        except StorageError:  # the lags are still worth showing
            dead = {}
        return [
            self._row(lag, dead.get((lag.group, lag.resource), 0)) for lag in self._open().lags()
        ]

    def _row(self, lag: Lag, dead: int) -> dict[str, Any]:
        key = (lag.group, lag.resource)
        return {
            "subscriber": lag.group, "resource": lag.resource, "checkpoint": lag.checkpoint,
            "last_seq": lag.last_seq, "lag": lag.lag, "handled": self._handled.get(key, 0),
            "error": self._errors.get(key), "dead_letters": dead,
        }  # fmt: skip

    async def dead_letters(self, group: str) -> list[DeadLetter]:
        """``group``'s dead letters (docs/events.md, "Dead letters")."""
        return self._open().dead.of(group)

    async def redeliver(self, group: str, event_id: str) -> bool:
        """Deliver dead letter ``event_id`` to ``group`` once more, now, outside its
        partition's order; delete it if handled, else count the attempt. Returns whether
        it was handled.

        Raises:
            InvalidArgumentError: non-string arguments. UnknownDeadLetterError: no such
                letter. ConfigurationError: no live replica of the group.
        """
        dead = self._open().dead
        letter = dead.get(group, event_id)
        replica = await self._routes.pick(group, letter.record.resource)
        sent = replica.deliver.remote(on_the_wire(letter))
        report = await asyncio.wait_for(future_of(sent), self._timeout_s)
        return dead.settle(letter, DeliveryReport.from_wire(report), self._clock.now())

    async def trim_now(self) -> dict[str, int]:
        """Ask every resource to delete the events retention lets go; count per resource."""
        return await self._trim()

    # -- background ---------------------------------------------------------------------

    async def _supervise(self) -> None:
        while True:
            try:
                self._start_partitions()
                now = self._clock.now()
                if self._trimmed_at is None or now - self._trimmed_at >= self._policy.trim_every:
                    self._trimmed_at = now
                    await self._trim()
                self._tally.lag(self._open().lags, self._resources)
            except Exception as error:  # the store may be down: try again next round
                _log.warning("events dispatcher: %s", error)
            await asyncio.sleep(_SUPERVISE_S)

    def _start_partitions(self) -> None:
        core = self._open()
        for group in core.groups:
            for resource in self._resources():
                task = self._tasks.get((group, resource))
                if task is None or task.done():
                    coro = self._drive(group, resource)
                    self._tasks[(group, resource)] = asyncio.get_running_loop().create_task(coro)

    async def _watch(self) -> None:
        interval = self._policy.poll_interval.total_seconds()
        while True:
            with contextlib.suppress(Exception):
                core = self._open()
                for resource in {r for _, r in self._tasks}:
                    newest = core.last_seq(resource)
                    if newest != self._newest.get(resource):
                        self._newest[resource] = newest
                        self._ring(resource)
            await asyncio.sleep(interval)

    async def _flush(self) -> None:
        while True:
            await self._moved.wait()
            self._moved.clear()
            try:
                self._open().flush()
            except Exception as error:  # kept in memory: flushed on a later round
                _log.warning("events dispatcher: %s", error)
                self._moved.set()
            await asyncio.sleep(_FLUSH_S)

    def _resources(self) -> list[str]:
        """The resource files, listed at most every ``_LIST_S`` (a glob of the folder
        took 8% of the dispatcher's loop when done on every supervising round)."""
        now = asyncio.get_running_loop().time()
        if now - self._listed[0] >= _LIST_S:
            self._listed = (now, self._open().resources())
        return self._listed[1]

    def _checkpoint_moved(self) -> None:
        self._moved.set()
        self._watch_moves.moved()

    def _ring(self, resource: str) -> None:
        """Wake ``resource``'s idle partitions, and forget its newest event number: a
        ring follows every commit (its nudge, or the watcher's poll that saw it), so
        until the next ring the number read is still the newest."""
        self._read_newest.pop(resource, None)
        bell = self._bells.pop(resource, None)
        if bell is not None:
            bell.set()

    def _newest_read(self, resource: str) -> int:
        """``resource``'s newest event number, read once between two rings (one read per
        ring, not one per batch of every partition: 6 % of the dispatcher's CPU at 32
        subscribers). A 0 is not kept: it may be a failed read, and no ring would
        follow when the resource's number stands."""
        newest = self._read_newest.get(resource)
        if newest is None:
            newest = self._open().last_seq(resource)
            if newest:
                self._read_newest[resource] = newest
        return newest

    async def _drive(self, group: str, resource: str) -> None:
        core, failures = self._open(), 0
        ahead: Pending | None = None  # the next batch, read while the last one was out
        while group in core.groups:
            if ahead is not None and core.is_next(group, resource, ahead):
                pending = ahead
            else:
                bell = self._bells.setdefault(resource, asyncio.Event())  # before reading
                try:
                    pending = core.pending(group, resource, newest=self._newest_read(resource))
                except Exception as error:
                    self._errors[(group, resource)] = f"reading events: {error}"
                    await asyncio.sleep(self._policy.max_backoff.total_seconds())
                    continue
                if not pending.events:
                    if core.acked(group, resource, pending, pending.upto):
                        self._checkpoint_moved()
                    try:
                        await asyncio.wait_for(bell.wait(), _IDLE_WAKE_S)
                    except TimeoutError:  # no ring: a nudge may be lost, read the file
                        self._read_newest.pop(resource, None)
                    continue
            failed, ahead = await self._deliver(group, resource, pending)
            failures = failures + 1 if failed else 0
            if failed:
                await asyncio.sleep(self._policy.backoff(failures).total_seconds())

    async def _deliver(
        self, group: str, resource: str, pending: Pending
    ) -> tuple[bool, Pending | None]:
        """One delivery; returns whether it failed (then it is retried after a backoff)
        and, if a full batch went out, the batch after it, read while it was out."""
        key, ahead = (group, resource), None
        try:
            replica = await self._routes.pick(group, resource)
            sent = replica.deliver.remote(pending.wire)
            ahead = self._read_ahead(group, resource, pending)
            answer = await self._routes.answer(group, sent, lambda: self._slow(key))
            report = DeliveryReport.from_wire(answer)  # a malformed one: a broken replica
        except Exception as error:
            self._routes.forget(group)  # look the replicas up again
            self._errors[key] = f"unreachable: {type(error).__name__}: {str(error)[:500]}"
            self._tally.failed(group, resource, "unreachable")
            return True, None
        if self._open().acked(group, resource, pending, report.done_upto):
            self._checkpoint_moved()
        self._handled[key] = self._handled.get(key, 0) + report.handled
        self._tally.delivered(group, resource, pending.events, report.done_upto)
        if report.error is not None:
            self._errors[key] = f"{report.reason}: {report.error}"
            self._tally.failed(group, resource, report.reason)
            return not self._buried(group, resource, pending, report), None
        self._errors.pop(key, None)
        return False, ahead

    def _read_ahead(self, group: str, resource: str, pending: Pending) -> Pending | None:
        """The batch after ``pending`` if it is a full one (a backlog: the next read
        then costs the partition no wait once the report is in); None when caught up
        (a read then would find nothing new) or if the read failed (retried in turn)."""
        if len(pending.events) < self._policy.max_in_flight:
            return None
        try:
            newest = self._newest_read(resource)
            return self._open().pending(group, resource, after=pending.upto, newest=newest)
        except Exception:
            return None

    def _buried(self, group: str, resource: str, pending: Pending, report: DeliveryReport) -> bool:
        """Whether the event the handler failed at reached ``max_delivery_attempts`` and
        was moved to the dead letters (the partition then goes on at once)."""
        now = self._clock.now()
        try:
            letter = after_failure(self._open(), group, resource, pending, report, now)
        except StorageError as error:  # not counted: tried again after the backoff
            _log.warning("events dispatcher: %s", error)
            return False
        if letter is not None:
            self._watch_moves.moved()  # stored with the letter: nothing to flush
            self._errors.pop((group, resource), None)
            self._tally.buried(group, resource)
            return True
        return False

    def _slow(self, key: tuple[str, str]) -> None:
        """A delivery call of partition ``key`` outlasted ``delivery_timeout``: shown,
        counted, and waited for (``ReplicaRoutes``)."""
        self._errors[key] = f"slow: a batch out for more than {self._timeout_s:g} s"
        self._tally.failed(*key, "slow")

    async def _trim(self) -> dict[str, int]:
        return await trim_retained(self._open(), self._policy, self._clock, self._namespace)
