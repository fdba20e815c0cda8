"""The logic of a resource actor as a plain class: apply a batch, commit it, read.

The Ray actor (``_resource_host``) only queues calls and hands batches to this class, so
every rule here is tested without Ray.
"""

from __future__ import annotations

import contextlib
from types import MappingProxyType
from typing import Any

from policies import Provenance, ResourcePolicy, WriteAuthority
from runtime import (
    Clock,
    ConflictError,
    FencedError,
    IdempotencyKeyReusedError,
    InvalidArgumentError,
    Location,
    PayloadTooLargeError,
    StorageError,
    SystemClock,
    UnauthorizedWriterError,
    UnknownOperationError,
    decode,
    encode,
)

from .._agent.registry import TokenHolder, Tokens
from .._events.emit import Collected, event_rows
from .batch import Batch, Refused, Seen, log_record, rejection_of
from .calls import (
    ReadResult,
    WriteCall,
    WriteResult,
    check_fence,
    describe_error,
)
from .constraints import ConstraintChecks
from .declare import Operation, Resource, operations
from .fencing import LeaseFences
from .keys import KnownKeys
from .ownership import (
    OWNERSHIP_REFUSALS,
    OwnershipBook,
    OwnershipChange,
    OwnershipRecord,
)
from .ownership import refusal_reason as ownership_refusal
from .provenance import StateMarks, refusal, trust_of
from .staging import Staging, Writer, run_write
from .state_view import apply_changes, replay
from .store import ResourceLog, args_digest
from .upkeep import Upkeep


class ResourceCore:
    """One incarnation of a resource: recovered state, the applier, the log.

    Opening bumps the incarnation in storage, so any older incarnation still running is
    fenced: its next commit and its next read are refused.

    With ``tokens``, a write's identity is the holder of its token, and a call without a
    valid token is refused; without (plain-class use and tests), the call's claimed
    writer and epoch are taken as they are.
    """

    def __init__(
        self,
        resource: Resource,
        name: str,
        root: Location,
        *,
        policy: ResourcePolicy | None = None,
        authority: WriteAuthority | None = None,
        clock: Clock | None = None,
        tokens: Tokens | None = None,
    ) -> None:
        self.name = name
        self.policy = policy or ResourcePolicy()
        self.authority = authority or WriteAuthority()
        self._resource = resource
        self._ops = operations(type(resource))
        self._clock = clock or SystemClock()
        self._tokens = tokens
        self._constraints = ConstraintChecks(name, root)
        self._trust = trust_of(resource)  # whose provenance claims it believes, how far
        self._holders: dict[str, TokenHolder] = {}
        self._log = ResourceLog(root, name, self.policy.durability)
        cache = self.policy.idempotency_cache
        self._keys = KnownKeys(cache, self._log.idem_keys, self._log.committed)  # keys.py
        self._fenced: FencedError | None = None
        self._upkeep = Upkeep(self._log, self.policy, self._clock)  # snapshots, compaction
        self._staging = Staging()  # a gated call run ahead of its commit (staging.py)
        self._recover()
        self.owners = OwnershipBook(
            self._log.path, name, self.authority.admits, self.policy.durability,
            self.policy.retention,
        )  # fmt: skip

    def _recover(self) -> None:
        """(Re)load the committed state from snapshot + log as a new incarnation."""
        recovered = self._log.open_incarnation()
        self._keys.rebuild()  # after the bump: no older incarnation commits a key since
        self.incarnation = recovered.incarnation
        self._writer_fences = dict(recovered.writer_fences)
        self._lease_fences = LeaseFences(self.name, recovered.lease_fences, self._clock)
        initial = recovered.snapshot_state or encode(dict(self._resource.initial_state()))
        self.state: dict[Any, Any] = decode(initial)  # what recovery would rebuild
        replayed = replay(self.state, recovered.tail)
        tail = ((decode(r.diff), r.provenance) for r in recovered.tail)
        self.marks = StateMarks.recovered(self.state, recovered, tail)
        self.version = replayed[-1] if replayed else recovered.snapshot_version
        self._upkeep.recovered(recovered.snapshot_version)
        self.needs_recovery = False

    @property
    def log(self) -> ResourceLog:
        return self._log

    def close(self) -> None:
        self._log.close()
        self.owners.close()

    def kinds(self) -> dict[str, str]:
        """Operation name -> "write" or "read"."""
        return {name: op.kind for name, op in self._ops.items()}

    # -- writes ---------------------------------------------------------------

    def apply_batch(self, calls: list[WriteCall]) -> list[WriteResult[Any]]:
        """Apply ``calls`` in order and commit them in one transaction.

        Returns one result per call; a call refused or raising gets its own error and
        never touches another call. Only a failed commit fails the whole batch: nothing of
        it is acknowledged, and the state is recovered from the log (the commit may have
        reached it) rather than undone in memory.
        """
        if self._fenced is not None:
            return [WriteResult(self.version, error=self._fenced) for _ in calls]
        start_version = self.version
        batch = Batch(self._clock.now().isoformat())
        results: list[WriteResult[Any]] = []
        try:
            if self.needs_recovery:
                self._recover()
            batch.keys = self._committed([c.idem_key for c in calls if c.malformed is None])
            for call in calls:
                try:
                    results.append(self._apply_one(call, batch))
                except Refused as refused:
                    batch.rejections.append(rejection_of(call, refused, batch.at))
                    results.append(WriteResult(self.version, error=refused.error))
            if batch.records or batch.rejections:
                fenced = self._lease_fences.rows()
                self._log.commit(
                    self.incarnation, batch.records, batch.rejections, None, fenced, batch.events
                )
        except Exception as error:
            return self._failed(error, batch, start_version, len(calls))
        self._lease_fences.committed()
        self._keys.remember(batch.keys)
        self._upkeep.after_batch(self.version, self.state, self.marks)
        return results

    def _failed(
        self, error: Exception, batch: Batch, start_version: int, count: int
    ) -> list[WriteResult[Any]]:
        """Nothing of the batch is acknowledged. A fenced incarnation only undoes its own
        memory (it must not open the log again); otherwise the state is recovered from
        the log, now or, if the store is down, before the next batch."""
        self._lease_fences.discard()
        if isinstance(error, FencedError):
            self._fenced = error
            for record in reversed(batch.records):
                apply_changes(self.state, decode(record.diff), forward=False)
            self.version = start_version
        else:
            if not isinstance(error, StorageError):
                error = StorageError(f"{self.name}: batch failed: {describe_error(error)}")
            self.needs_recovery = True
            with contextlib.suppress(Exception):  # retried before the next batch or read
                self._recover()
        return [WriteResult(start_version, error=error) for _ in range(count)]

    def _apply_one(self, call: WriteCall, batch: Batch) -> WriteResult[Any]:
        writer, epoch = self._identify(call)
        digest = args_digest(call.args)
        seen = batch.keys.get(call.idem_key)
        if seen is not None:  # authority is checked first: a key answers only its writer
            if (seen.op, seen.args_digest) != (call.op, digest):
                reused = IdempotencyKeyReusedError(self.name, call.idem_key)
                raise Refused(reused, "key_reused")
            return WriteResult(seen.version, decode(seen.result), duplicate=True)
        mark = self._trust.believed(writer, call.provenance)
        op = self._admit(call, writer, mark)
        run = self._staging.take(call, self.version, self.state)  # run by ``stage``
        if run is None:
            run = run_write(self._resource, self.name, op, call, self.state, Writer(writer, mark))
        try:
            identity = (writer, epoch, self.incarnation)
            record = log_record(call, identity, self.version, run.result, run.diff, batch.at, mark)
        except BaseException:
            run.undo(self.state)  # not yet among the batch's records
            raise
        self.version = record.version
        self.marks.note(run.changes, mark)
        batch.records.append(record)
        batch.events.extend(event_rows(record, run.emitted))
        batch.keys[call.idem_key] = Seen(record.version, run.result, call.op, digest)
        return WriteResult(record.version, run.value)

    def stage(self, call: WriteCall) -> list[Collected]:
        """Run ``call``'s write method ahead of its commit, on the committed state, and
        keep the outcome for the next ``apply_batch`` of ``call`` (``staging.py``): the
        method is not run again. The state is left as committed (reads during a
        validation see it). The events the call would emit; none for a call refused
        before its method runs or answered as a duplicate (nothing is kept: the applier
        refuses or answers it the same way, and logs it).

        Raises:
            StorageError, FencedError: the checks before the method could not be made
                (a store failed): the call must not apply, since the applier, on a
                retry that succeeds, would run it with no validator asked.
        """
        if call.malformed is not None or self._fenced is not None:
            return []
        try:
            if self.needs_recovery:
                self._recover()  # else a write after a failed batch would go unchecked
            writer, _ = self._identify(call)
            if self._committed([call.idem_key]):
                return []
            mark = self._trust.believed(writer, call.provenance)
            op = self._admit(call, writer, mark)
        except Refused:  # the applier refuses it the same way, on the same state
            return []
        except (StorageError, FencedError):
            raise
        except Exception as error:
            why = f"{self.name}: checking a gated write failed: {describe_error(error)}"
            raise StorageError(why) from error
        finally:
            self._lease_fences.discard()  # ``_admit`` noted the call's lease tokens
        try:
            run = run_write(self._resource, self.name, op, call, self.state, Writer(writer, mark))
        except Refused as refused:
            self._staging.keep(call, self.version, refused)
            return []
        run.undo(self.state)
        self._staging.keep(call, self.version, run)
        return run.emitted.events

    def _identify(self, call: WriteCall) -> tuple[str, int]:
        """The writer and epoch the call may write as, or ``Refused``: a malformed call,
        a token never issued, a revoked token, an undeclared writer, a fenced epoch."""
        if call.malformed is not None:
            invalid = InvalidArgumentError(f"{self.name}: malformed write: {call.malformed}")
            raise Refused(invalid, "malformed")
        writer, epoch = call.writer, call.writer_epoch
        if self._tokens is not None:
            holder = self._holder(call.token)
            if holder is None:
                why = f"no valid writer token (the call claims writer {call.writer!r})"
                refused = UnauthorizedWriterError(self.name, call.writer, self._declared(), why)
                raise Refused(refused, "unauthenticated")
            if holder.revoked:
                revoked = FencedError(self.name, f"token of {holder.writer!r} revoked")
                raise Refused(revoked, "revoked")
            writer, epoch = holder.writer, holder.epoch
        if not self.authority.admits(writer):
            refused = UnauthorizedWriterError(self.name, writer, self._declared())
            raise Refused(refused, "unauthorized")
        fence = self._writer_fences.get(writer, 0)
        if epoch < fence:
            reason = f"writer {writer!r} epoch {epoch} is below {fence}"
            raise Refused(FencedError(self.name, reason), "fenced_writer")
        return writer, epoch

    def _holder(self, token: str) -> TokenHolder | None:
        """Cached once found: a kill revokes in the registry and fences the epoch here."""
        holder = self._holders.get(token)
        if holder is None and token and self._tokens is not None:
            holder = self._tokens.holder(token)
            if holder is not None and not holder.revoked:
                self._holders[token] = holder
        return holder

    def _declared(self) -> tuple[str, ...]:
        return tuple(sorted(self.authority.writers or ()))

    def _admit(self, call: WriteCall, writer: str, mark: Provenance) -> Operation:
        """The operation to run, or ``Refused`` with the typed reason."""
        if len(call.args) > self.policy.max_payload_bytes:
            too_large = PayloadTooLargeError(len(call.args), self.policy.max_payload_bytes)
            raise Refused(too_large, "too_large")
        op = self._ops.get(call.op)
        if op is None or op.kind != "write":
            raise Refused(UnknownOperationError(self.name, call.op), "unknown_operation")
        not_owner = self.owners.refusal(op, call.args, writer)
        if not_owner is not None:
            raise Refused(*not_owner)
        if (breaks := self._constraints.refusal(call, op)) is not None:
            raise breaks  # a constraint the task carries (``constraints.py``)
        if call.expected_version is not None and call.expected_version != self.version:
            conflict = ConflictError(self.name, call.expected_version, self.version)
            raise Refused(conflict, "conflict")
        if (stale := self._lease_fences.admit(call.leases)) is not None:
            raise Refused(stale, "stale_lease")  # a newer lease on the key has written
        if (weaker := refusal(self.name, op, mark)) is not None:
            raise Refused(weaker, "provenance")
        return op

    def _committed(self, keys: list[str]) -> dict[str, Seen]:
        """Each key already committed and what it is bound to (``KnownKeys.committed``)."""
        return self._keys.committed(keys)

    # -- fencing writers ------------------------------------------------------------

    def fence_writer(self, writer: str, min_epoch: int) -> None:
        """Refuse, from now on, every write of ``writer`` with an epoch below ``min_epoch``.

        Raises:
            InvalidArgumentError: ``writer`` is not a name or ``min_epoch`` not an int >= 0;
                nothing was stored.
            FencedError: this incarnation is stale.
            StorageError: the fence could not be stored.
        """
        check_fence(writer, min_epoch)
        if self._fenced is not None:
            raise self._fenced
        try:
            self._log.commit(self.incarnation, [], [], fences={writer: min_epoch})
        except FencedError as error:
            self._fenced = error
            raise
        self._writer_fences[writer] = max(self._writer_fences.get(writer, 0), min_epoch)

    def change_owner(self, change: OwnershipChange) -> OwnershipRecord:
        """Own, transfer or release an entity as the writer the change's token names
        (``OwnershipBook.change``); a refused change is logged like a refused write.

        Raises:
            NotOwnerError, UnauthorizedWriterError, InvalidArgumentError,
                IdempotencyKeyReusedError: refused (see ``OwnershipBook.change``).
            FencedError: this incarnation or the writer's epoch is stale.
            StorageError: the change could not be stored.
        """
        if self._fenced is not None:
            raise self._fenced
        call, now = change.as_call(), self._clock.now()
        try:
            writer, _ = self._identify(call)
            return self.owners.change(change, writer, self.incarnation, self.version, now)
        except Refused as refused:
            error, reason = refused.error, refused.reason
        except OWNERSHIP_REFUSALS as refused:
            error, reason = refused, ownership_refusal(refused)
        rejection = rejection_of(call, Refused(error, reason), now.isoformat())
        self._log.commit(self.incarnation, [], [rejection])
        raise error

    # -- reads ------------------------------------------------------------------

    def read(self, op_name: str, args: list[Any], kwargs: dict[str, Any]) -> ReadResult[Any]:
        """Run a ``@read`` method on a read-only view of the committed state.

        Raises:
            UnknownOperationError: no ``@read`` method of that name.
            InvalidArgumentError: the arguments do not fit.
            FencedError: a newer incarnation has opened the log: this state may be stale.
            StorageError: the state could not be recovered or the log not read.
        """
        if self._fenced is None and self._log.incarnation_now() != self.incarnation:
            self._fenced = FencedError(self.name, f"incarnation {self.incarnation} superseded")
        if self._fenced is not None:
            raise self._fenced
        if self.needs_recovery:
            self._recover()
        op = self._ops.get(op_name) if isinstance(op_name, str) else None
        if op is None or op.kind != "read":
            raise UnknownOperationError(
                self.name, op_name if isinstance(op_name, str) else repr(op_name)[:200]
            )
        value = op.call(self._resource, MappingProxyType(self.state), args, kwargs)
        return ReadResult(value, self.version, self.marks.of_read(op, args, kwargs))

    @property
    def fenced(self) -> bool:
        """Whether a newer incarnation has taken over: this one must stop."""
        return self._fenced is not None
