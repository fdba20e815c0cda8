"""The resource actor: an async Ray actor whose one applier task drains a queue.

Many calls may be in flight (the actor is async), but only the applier touches the state.
It takes every queued write (up to ``max_batch``), applies them in arrival order and
commits them in one SQLite transaction, all without yielding to the event loop. Reads run
between batches, so a read never sees a write that is not yet committed, and sees every
write acknowledged before it was sent. Incoming calls pile up while a batch commits and
form the next batch: group commit falls out of the design. With ``Durability.FULL`` on
SQLite the fsync runs on a thread of its own (``runtime.GroupSync``) while the loop applies
the next batch; no reply (write, read or fence) leaves before the commits it may show
are on disk (``_durable``).

Every call is checked before it reaches the applier, so a malformed call fails alone
with an ``InvalidArgumentError``. Writes are authenticated by their writer token against
the system's agent registry. An incarnation that learns a newer one has opened its log
answers ``FencedError`` and then exits, so a zombie never serves stale state.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Any

import ray

from policies import ResourcePolicy, WriteAuthority
from runtime import (
    FencedError,
    GroupSync,
    InvalidArgumentError,
    SerialApplier,
    StorageError,
    SystemClock,
    fix_mmap_threshold,
    gauge,
    storage_root,
)

from .._agent.registry import AgentRegistry
from .._conflicts.desk import ConflictDesk
from .._conflicts.levels import SupervisedLevels
from .._conflicts.messages import ConflictRecord
from .._conflicts.store import ConflictStore
from .._events.emit import type_name
from .._events.nudge import Nudger
from .._events.store import trim_file
from .calls import (
    ReadResult,
    WriteCall,
    WriteResult,
    check_fence,
    decode_arguments,
    key_kind,
    pack_results,
    unpack_calls,
)
from .core import ResourceCore
from .declare import Resource
from .features import FeatureCache
from .freshness import FreshContext
from .ownership import OwnershipChange, OwnershipRecord, unpack_change
from .tally import WriteTally
from .validation import Gate


@dataclass(frozen=True, slots=True)
class _Pending:
    """Writes of one call, or a writer fence or an ownership change (each applied alone)."""

    calls: list[WriteCall]
    fence: tuple[str, int] | None = None
    change: OwnershipChange | None = None


class ResourceHost:
    """Hosts one ``Resource`` as the single writer of its state."""

    def __init__(
        self,
        resource_cls: type[Resource],
        name: str,
        root: str,
        policy: ResourcePolicy,
        authority: WriteAuthority,
        namespace: str = "",
    ) -> None:
        # Nothing here may raise on a transient error: an exception in __init__ kills the
        # actor for good. Recovery happens on the first call and is retried on the next.
        fix_mmap_threshold()  # a burst of calls must not leave an arena of fiber stacks
        self._cls = resource_cls
        self._name = name
        self._root = storage_root(root)
        self._policy = policy
        self._authority = authority
        self._namespace = namespace  # where the supervisor runs the ladder's levels 2-4
        self._core: ResourceCore | None = None
        self._conflicts: ConflictDesk | None = None
        self._registry: AgentRegistry | None = None
        self._exiting = False
        self._group: GroupSync | None = None  # FULL: each commit's fsync, off the loop
        self._applier: SerialApplier[_Pending] = SerialApplier(self._apply, fits=self._fits)
        self._tags = {"resource": name}
        self._tally = WriteTally(name)  # metrics counted in memory, recorded each second
        self._fresh = FreshContext(resource_cls, root, namespace)  # docs/context.md
        self._features = FeatureCache(resource_cls, name)  # @derived reads, computed once
        self._gate = Gate(name, self._root, resource_cls.emits, namespace=namespace)
        self._nudger = Nudger(name, self._root, namespace)

    def _open(self) -> ResourceCore:
        if self._core is None:
            try:
                self._registry = self._registry or AgentRegistry(self._root)
                self._core = ResourceCore(
                    self._cls(), self._name, self._root,
                    policy=self._policy, authority=self._authority, tokens=self._registry,
                )  # fmt: skip
                sync = self._core.log.defer_sync()  # each new connection: its commits
                self._group = self._group or GroupSync(sync, self._name)
            except Exception as error:
                raise StorageError(f"{self._name}: recovery failed: {error}") from error
            gauge("resource_incarnation", "Incarnation of the resource actor", ("resource",)).set(
                self._core.incarnation, tags=self._tags
            )
        return self._core

    def _desk(self) -> ConflictDesk:
        if self._conflicts is None:
            path, policy = self._open().log.path, self._policy
            namespace = self._namespace or ray.get_runtime_context().namespace
            self._conflicts = ConflictDesk(
                self._name, policy.conflicts,
                ConflictStore(path, policy.durability, policy.retention),
                SupervisedLevels(self._name, policy.conflicts, namespace),
                self._apply_one, self._writer_of, self._incumbent, SystemClock(),
            )  # fmt: skip
        return self._conflicts

    async def _apply_one(self, call: WriteCall) -> WriteResult[Any]:
        (result,) = await self._gate.submit([call], self._applier, self._open, _Pending)
        return result

    def _writer_of(self, call: WriteCall) -> str:
        holder = None if self._registry is None else self._registry.holder(call.token)
        return call.writer if holder is None else holder.writer

    def _incumbent(self) -> str:
        core = self._open()
        return next((r.writer for r in core.log.records(after=core.version - 1)), "")

    async def conflicts(self, limit: int = 100) -> list[ConflictRecord]:
        """The newest conflicts of this resource, newest first."""
        if type(limit) is not int or limit < 1:
            raise InvalidArgumentError(f"limit must be an int >= 1, not {limit!r}")
        return self._desk().store.records(limit)

    async def conflict_counts(self) -> list[tuple[int | None, str | None, int]]:
        """How this resource's conflicts settled: ``(level, outcome, count)`` rows."""
        return self._desk().store.counts()

    async def describe(self) -> dict[str, Any]:
        """What a handle needs: operation kinds and the payload limit."""
        return {
            "kinds": self._open().kinds(),
            "max_payload_bytes": self._policy.max_payload_bytes,
        }

    async def submit(self, blob: bytes) -> bytes:
        """Queue writes (``pack_calls``) for the applier; return their results
        (``pack_results``) once their batch is committed.

        Raises:
            InvalidArgumentError: ``blob`` is not a batch of writes (a malformed write in
                a batch gets its own error result instead).
        """
        self._open()
        calls = await self._fresh.stamp(unpack_calls(blob))
        try:
            results = await self._gate.submit(calls, self._applier, self._open, _Pending)
            if self._policy.conflicts.climbs:  # the ladder runs here, not in the applier
                results = await self._desk().settle(calls, results)
            reply = pack_results(results)  # while the commit's fsync runs
            await self._durable()
            return reply
        finally:
            self._exit_if_fenced()

    async def reload_visibility(self) -> None:
        """Apply the visibility rules ``Visibility.enforce`` stored (docs/visibility.md).

        Raises:
            StorageError: the stored rules cannot be read.
        """
        self._gate.reload()

    async def fence_writer(self, writer: str, min_epoch: int) -> None:
        """From the moment this returns, no write of ``writer`` below ``min_epoch`` commits.

        Raises:
            InvalidArgumentError: not a writer name and an epoch >= 0; nothing was stored.
            FencedError: this incarnation is stale.
            StorageError: the fence could not be stored.
        """
        check_fence(writer, min_epoch)
        self._open()
        try:
            await self._applier.submit(_Pending([], fence=(writer, min_epoch)))
            await self._durable()
        finally:
            self._exit_if_fenced()

    async def change_owner(self, blob: bytes) -> OwnershipRecord:
        """Own, transfer or release an entity (``pack_change``), applied in arrival order
        with the writes; the writer is the holder of the change's token.

        Raises:
            InvalidArgumentError: ``blob`` is not a change.
            NotOwnerError, UnauthorizedWriterError, IdempotencyKeyReusedError: refused
                and logged (``ResourceCore.change_owner``).
            FencedError: this incarnation or the writer's epoch is stale.
            StorageError: the change could not be stored.
        """
        change = unpack_change(blob)
        self._open()
        try:
            record: OwnershipRecord = await self._applier.submit(_Pending([], change=change))
            return record
        finally:
            self._exit_if_fenced()

    async def owner(self, entity: str) -> str | None:
        """The entity's owner, or None (``InvalidArgumentError`` if not a str)."""
        return self._open().owners.owner(_entity(entity))

    async def ownership_history(self, entity: str, limit: int = 1000) -> list[OwnershipRecord]:
        """The entity's ownership changes still kept, oldest first (at most ``limit``)."""
        if type(limit) is not int or limit < 1:
            raise InvalidArgumentError(f"limit must be an int >= 1, not {limit!r}")
        return self._open().owners.history(_entity(entity), limit)

    async def read(self, op: str, args: bytes) -> ReadResult[Any]:
        """Run a ``@read`` method on the committed state.

        Raises:
            UnknownOperationError: no ``@read`` method ``op``.
            InvalidArgumentError: ``args`` do not encode arguments that fit ``op``.
            FencedError: a newer incarnation has taken over; this one exits.
        """
        positional, keyword = decode_arguments(args)
        try:
            result = self._features.read(self._open(), op, args, positional, keyword)
        except FencedError:
            self._exit_if_fenced()
            raise
        await self._durable()  # it may show a write whose fsync still runs: not before
        return result

    async def _durable(self) -> None:
        """Return once every commit made so far is durable (``runtime.GroupSync``): the
        one place after which a write may be acknowledged, a read answered, or anything
        else told about a commit.

        Raises:
            StorageError: the fsync failed (``GroupSync.settled``).
        """
        if self._group is not None:
            await self._group.settled()

    async def exit_fenced(self) -> None:
        """Leave for good (a newer incarnation serves the resource); Ray does not
        restart an actor that exits on purpose."""
        ray.actor.exit_actor()  # type: ignore[no-untyped-call]

    def _exit_if_fenced(self) -> None:
        """Once fenced, answer the calls in flight and then exit (by a call to itself:
        ``exit_actor`` in this call would fail it instead of answering it)."""
        if self._exiting or self._core is None or not self._core.fenced:
            return
        self._exiting = True
        with contextlib.suppress(Exception):  # not running as a Ray actor (plain-class use)
            ray.get_runtime_context().current_actor.exit_fenced.remote()

    async def status(self) -> dict[str, Any]:
        """Version, incarnation, declared writers (None: anyone), refused attempts by
        reason and queue depth, for ``agentcast status`` and tests."""
        core = self._open()
        await self._durable()  # the version it shows is on disk
        writers = self._authority.writers
        return {
            "name": self._name,
            "version": core.version,
            "incarnation": core.incarnation,
            "writers": None if writers is None else sorted(writers),
            "rejections": core.log.rejection_counts(),
            "queued": sum(len(p.calls) for p in self._applier.queued()),
            "derived": self._features.counts(),
        }

    async def trim_events(self, upto: int, before: str, limit: int) -> int:
        """Delete at most ``limit`` events up to ``upto`` committed before ``before``:
        the dispatcher's call, under ``EventsPolicy.retention`` (docs/events.md).

        Raises:
            InvalidArgumentError: malformed arguments. StorageError: nothing was deleted.
        """
        return trim_file(self._open().log.path, upto, before, limit)

    def __repr__(self) -> str:
        # The dashboard's Actors page shows this: the user's class and the resource. Ray
        # also calls it on an actor whose __init__ failed: nothing here may be missing.
        cls = getattr(self, "_cls", None)
        return f"{getattr(cls, '__name__', 'Resource')}(resource {getattr(self, '_name', '?')!r})"

    async def audit(self, recent: int = 1000) -> dict[str, Any]:
        """For ``agentcast check``: the declared writers (None: anyone), the event types it
        declares it emits, and who wrote the last ``recent`` writes and how they were keyed
        (``key_kind``).

        Raises:
            InvalidArgumentError: ``recent`` is not an int from 1 to 100,000.
        """
        if type(recent) is not int or not 1 <= recent <= 100_000:
            raise InvalidArgumentError(f"audit takes 1 to 100,000 recent writes, not {recent!r}")
        core = self._open()
        await self._durable()
        keys: dict[str, int] = {}
        written_by: dict[str, int] = {}
        for record in core.log.records(after=max(0, core.version - recent)):
            kind = key_kind(record.idem_key)
            keys[kind] = keys.get(kind, 0) + 1
            written_by[record.writer] = written_by.get(record.writer, 0) + 1
        writers = self._authority.writers
        return {
            "writers": None if writers is None else sorted(writers),
            "keys": keys, "written_by": written_by, "version": core.version,
            "emits": sorted(type_name(t) for t in self._cls.emits),
        }  # fmt: skip

    def _fits(self, taken: list[_Pending], item: _Pending) -> bool:
        if any(p.fence is not None or p.change is not None for p in (taken[0], item)):
            return False
        return sum(len(p.calls) for p in taken) + len(item.calls) <= self._policy.max_batch

    def _apply(self, batch: list[_Pending]) -> list[tuple[bool, Any]]:
        core = self._open()
        assert self._group is not None  # made by ``_open``
        if batch[0].fence is not None:
            core.fence_writer(*batch[0].fence)
            self._group.committed()
            return [(True, None)]
        if batch[0].change is not None:
            return [(True, core.change_owner(batch[0].change))]
        calls = [call for pending in batch for call in pending.calls]
        started = time.perf_counter()
        try:
            results = core.apply_batch(calls)
        except Exception as error:  # a bug, not a refusal: recover from the log
            self._core = None
            core.close()
            raise StorageError(f"{self._name}: {error}") from error
        finally:  # committed (perhaps, if it failed): its fsync starts now
            self._group.committed()
        self._tally.note(results, (time.perf_counter() - started) * 1000, core.version)
        self._nudger.committed(self._durable)  # wake the events dispatcher (docs/events.md)
        outcomes, offset = [], 0
        for pending in batch:
            outcomes.append((True, results[offset : offset + len(pending.calls)]))
            offset += len(pending.calls)
        return outcomes


def _entity(entity: Any) -> str:
    if not isinstance(entity, str) or not entity:
        raise InvalidArgumentError(f"an entity is a non-empty str, not {entity!r}")
    return entity
