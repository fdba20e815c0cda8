"""The logic of a resource actor as a plain class: apply a batch, commit it, read.

The Ray actor (``_resource_host``) only queues calls and hands batches to this class, so
every rule here is tested without Ray.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from policies import ResourcePolicy, WriteAuthority
from runtime import (
    Clock,
    ConflictError,
    FencedError,
    InvalidArgumentError,
    PayloadTooLargeError,
    StorageError,
    SystemClock,
    UnauthorizedWriterError,
    UnknownOperationError,
    decode,
    encode,
)

from .calls import ReadResult, WriteCall, WriteResult, describe_error, error_payload
from .declare import Operation, Resource, operations
from .state_view import StateView, apply_changes, replay
from .store import LogRecord, Rejection, ResourceLog


class _Refused(Exception):
    """Internal: a call refused before it touched the state."""

    def __init__(self, error: BaseException, reason: str) -> None:
        self.error = error
        self.reason = reason


@dataclass(slots=True)
class _Batch:
    """What one group commit collects: records, rejections, known keys, one timestamp."""

    at: str
    records: list[LogRecord] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    keys: dict[str, tuple[int, bytes]] = field(default_factory=dict)


class ResourceCore:
    """One incarnation of a resource: recovered state, the applier, the log.

    Opening bumps the incarnation in storage, so any older incarnation still running is
    fenced: its next commit is refused.
    """

    def __init__(
        self,
        resource: Resource,
        name: str,
        root: Path,
        *,
        policy: ResourcePolicy | None = None,
        authority: WriteAuthority | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.name = name
        self.policy = policy or ResourcePolicy()
        self.authority = authority or WriteAuthority()
        self._resource = resource
        self._ops = operations(type(resource))
        self._clock = clock or SystemClock()
        self._log = ResourceLog(root, name, self.policy.durability)
        self._keys: OrderedDict[str, tuple[int, bytes]] = OrderedDict()
        self._fenced: FencedError | None = None
        recovered = self._log.open_incarnation()
        self.incarnation = recovered.incarnation
        self._writer_fences = dict(recovered.writer_fences)
        self.state: dict[Any, Any] = (
            decode(recovered.snapshot_state)
            if recovered.snapshot_state is not None
            else dict(resource.initial_state())
        )
        replayed = replay(self.state, recovered.tail)
        self.version = replayed[-1] if replayed else recovered.snapshot_version
        self._snapshot_version = recovered.snapshot_version

    @property
    def log(self) -> ResourceLog:
        return self._log

    def close(self) -> None:
        self._log.close()

    def kinds(self) -> dict[str, str]:
        """Operation name -> "write" or "read"."""
        return {name: op.kind for name, op in self._ops.items()}

    # -- writes ---------------------------------------------------------------

    def apply_batch(self, calls: list[WriteCall]) -> list[WriteResult[Any]]:
        """Apply ``calls`` in order and commit them in one transaction.

        Returns one result per call. If the commit fails, every applied change is undone
        and every call of the batch gets the storage (or fencing) error: nothing of the
        batch was acknowledged.
        """
        if self._fenced is not None:
            return [WriteResult(self.version, error=self._fenced) for _ in calls]
        start_version = self.version
        batch = _Batch(self._clock.now().isoformat())
        results: list[WriteResult[Any]] = []
        try:
            batch.keys = self._committed([call.idem_key for call in calls])
            for call in calls:
                try:
                    results.append(self._apply_one(call, batch))
                except _Refused as refused:
                    batch.rejections.append(self._rejection(call, refused, batch.at))
                    results.append(WriteResult(self.version, error=refused.error))
            if batch.records or batch.rejections:
                self._log.commit(self.incarnation, batch.records, batch.rejections)
        except Exception as error:
            # Nothing of the batch is acknowledged: memory goes back to the committed state.
            self._rollback(batch.records, start_version)
            if isinstance(error, FencedError):
                self._fenced = error
            elif not isinstance(error, StorageError):
                error = StorageError(f"{self.name}: batch failed: {describe_error(error)}")
            return [WriteResult(start_version, error=error) for _ in calls]
        self._remember_keys(batch.keys)
        self._maybe_snapshot()
        return results

    def _apply_one(self, call: WriteCall, batch: _Batch) -> WriteResult[Any]:
        seen = batch.keys.get(call.idem_key)
        if seen is not None:
            return WriteResult(seen[0], decode(seen[1]), duplicate=True)
        op = self._admit(call)
        view = StateView(self.state)
        try:
            args, kwargs = decode(call.args)
            value = op.call(self._resource, view, args, kwargs)
            result, diff = encode(value), encode(view.changes())
        except BaseException as error:
            view.undo()
            if isinstance(error, (KeyboardInterrupt, SystemExit)):
                raise
            reason = "invalid" if isinstance(error, InvalidArgumentError) else "raised"
            raise _Refused(error_payload(error, self.name, call.op), reason) from error
        try:
            record = self._record(call, result, diff, self.version + 1, batch.at)
        except BaseException:
            view.undo()  # not yet among the batch's records, so the rollback cannot see it
            raise
        self.version = record.version
        batch.records.append(record)
        batch.keys[call.idem_key] = (record.version, result)
        return WriteResult(record.version, value)

    def _admit(self, call: WriteCall) -> Operation:
        """The operation to run, or ``_Refused`` with the typed reason."""
        if not self.authority.admits(call.writer):
            raise _Refused(UnauthorizedWriterError(self.name, call.writer), "unauthorized")
        fence = self._writer_fences.get(call.writer, 0)
        if call.writer_epoch < fence:
            reason = f"writer {call.writer!r} epoch {call.writer_epoch} is below {fence}"
            raise _Refused(FencedError(self.name, reason), "fenced_writer")
        if len(call.args) > self.policy.max_payload_bytes:
            too_large = PayloadTooLargeError(len(call.args), self.policy.max_payload_bytes)
            raise _Refused(too_large, "too_large")
        op = self._ops.get(call.op)
        if op is None or op.kind != "write":
            raise _Refused(UnknownOperationError(self.name, call.op), "unknown_operation")
        if call.expected_version is not None and call.expected_version != self.version:
            conflict = ConflictError(self.name, call.expected_version, self.version)
            raise _Refused(conflict, "conflict")
        return op

    def _committed(self, keys: list[str]) -> dict[str, tuple[int, bytes]]:
        """Version and stored result of each key already committed: one look-up per batch."""
        found = {key: self._keys[key] for key in keys if key in self._keys}
        missing = [key for key in keys if key not in found]
        if missing:
            found.update(self._log.committed(missing))
        return found

    def _remember_keys(self, batch_keys: dict[str, tuple[int, bytes]]) -> None:
        self._keys.update(batch_keys)
        while len(self._keys) > self.policy.idempotency_cache:
            self._keys.popitem(last=False)

    def _rollback(self, records: list[LogRecord], start_version: int) -> None:
        for record in reversed(records):
            apply_changes(self.state, decode(record.diff), forward=False)
        self.version = start_version

    def _maybe_snapshot(self) -> None:
        if self.version - self._snapshot_version < self.policy.snapshot_every:
            return
        try:
            self._log.save_snapshot(self.version, encode(self.state))
        except StorageError:
            return  # a snapshot only shortens recovery; the log alone is the truth
        self._snapshot_version = self.version

    def _record(
        self, call: WriteCall, result: bytes, diff: bytes, version: int, at: str
    ) -> LogRecord:
        return LogRecord(
            version=version,
            op=call.op,
            args=call.args,
            result=result,
            writer=call.writer,
            writer_epoch=call.writer_epoch,
            incarnation=self.incarnation,
            idem_key=call.idem_key,
            trace_id=call.trace_id,
            at=at,
            diff=diff,
        )

    def _rejection(self, call: WriteCall, refused: _Refused, at: str) -> Rejection:
        return Rejection(
            at=at,
            op=call.op,
            writer=call.writer,
            writer_epoch=call.writer_epoch,
            idem_key=call.idem_key,
            trace_id=call.trace_id,
            reason=refused.reason,
            detail=describe_error(refused.error),
        )

    # -- fencing writers ------------------------------------------------------------

    def fence_writer(self, writer: str, min_epoch: int) -> None:
        """Refuse, from now on, every write of ``writer`` with an epoch below ``min_epoch``.

        Raises:
            FencedError: this incarnation is stale.
            StorageError: the fence could not be stored.
        """
        if self._fenced is not None:
            raise self._fenced
        try:
            self._log.commit(self.incarnation, [], [], fences={writer: min_epoch})
        except FencedError as error:
            self._fenced = error
            raise
        self._writer_fences[writer] = max(self._writer_fences.get(writer, 0), min_epoch)

    # -- reads ------------------------------------------------------------------

    def read(self, op_name: str, args: list[Any], kwargs: dict[str, Any]) -> ReadResult[Any]:
        """Run a ``@read`` method on a read-only view of the committed state.

        Raises:
            UnknownOperationError: no ``@read`` method of that name.
            InvalidArgumentError: the arguments do not fit.
        """
        op = self._ops.get(op_name)
        if op is None or op.kind != "read":
            raise UnknownOperationError(self.name, op_name)
        value = op.call(self._resource, MappingProxyType(self.state), args, kwargs)
        return ReadResult(value, self.version)
