"""What the resource core keeps while it applies one batch: the batch's records and
rejections, the idempotency keys it knows, and the internal refusal of one call."""

from __future__ import annotations

from dataclasses import dataclass, field

from policies import Provenance

from .._events.emit import EventRow
from .calls import SQLITE_INT, WriteCall, describe_error
from .store import LogRecord, Rejection


@dataclass(frozen=True, slots=True)
class Seen:
    """A committed idempotency key: its version, stored result, and the write it is bound
    to. Not its writer: a key derived from a task belongs to the task, and a task rerouted
    to another (authorized) agent must get its earlier attempt's result for the same write."""

    version: int
    result: bytes
    op: str
    args_digest: bytes


class Refused(Exception):
    """Internal: a call refused before it touched the state."""

    def __init__(self, error: BaseException, reason: str) -> None:
        self.error = error
        self.reason = reason


@dataclass(slots=True)
class Batch:
    """What one group commit collects: records, rejections, known keys, the records'
    events, one timestamp."""

    at: str
    records: list[LogRecord] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    keys: dict[str, Seen] = field(default_factory=dict)
    events: list[EventRow] = field(default_factory=list)  # of the records, in order


def rejection_of(call: WriteCall, refused: Refused, at: str) -> Rejection:
    """The audit record of a refused call."""
    return Rejection(
        at=at,
        op=call.op,
        writer=call.writer,  # what the call claimed
        writer_epoch=min(max(call.writer_epoch, SQLITE_INT[0]), SQLITE_INT[1]),
        idem_key=call.idem_key,
        trace_id=call.trace_id,
        reason=refused.reason,
        detail=describe_error(refused.error),
    )


def log_record(
    call: WriteCall, identity: tuple[str, int, int], version: int, result: bytes, diff: bytes,
    at: str, mark: Provenance,
) -> LogRecord:  # fmt: skip
    """The log record of ``call`` applied after ``version`` by ``(writer, epoch,
    incarnation)``, carrying the provenance ``mark`` the resource believed."""
    writer, epoch, incarnation = identity
    return LogRecord(
        version=version + 1, op=call.op, args=call.args, result=result, writer=writer,
        writer_epoch=epoch, incarnation=incarnation, idem_key=call.idem_key,
        trace_id=call.trace_id, at=at, diff=diff, provenance=mark.value,
    )  # fmt: skip
