"""What crosses between a resource handle and its resource actor.

Writes and their results cross as one msgpack blob each way rather than as Python objects:
Ray pickles objects argument by argument, which costs more per call than the applier
spends on a write. Only a refused write's error travels pickled, inside the blob.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from ray import cloudpickle

from policies import Provenance
from runtime import (
    InvalidArgumentError,
    WriteFailedError,
    checked_briefing,
    decode,
    encode,
    span,
)

from .briefing import Heads, briefed_now
from .fencing import checked_leases

T = TypeVar("T")

SQLITE_INT = (-(2**63), 2**63 - 1)
"""The integers a SQLite column holds."""


@dataclass(frozen=True, slots=True)
class WriteCall:
    """One write, stamped by the runtime's handle.

    ``args`` is the msgpack encoding of ``[positional, keyword]`` arguments. ``writer``
    and ``writer_epoch`` are what the call claims; the resource takes the writer's
    identity from ``token`` alone. ``leases`` are the (key, fencing token) pairs of the
    leases held where the write was made (``actors._resource.fencing``). ``constraints``
    is the encoded constraint set of the task that made it (``constraints.py``).
    ``provenance`` is the mark the writer claims (``actors._resource.provenance``).
    ``briefed`` holds the decision-log versions of the task that made it, stamped where
    the call is made (``briefing.py``); ``latest`` is what the resource host learned from
    the decision log before the write was applied, never sent (``freshness.py``).
    ``parent_span`` is the span id of the caller's write span (``""`` when it does not
    trace), stamped when the batch is packed: within-transaction validators run as its
    children (``validation.py``). ``malformed``
    says why a call's wire form was not what a handle sends (its other fields are then
    printable stand-ins, for the audit).
    """

    op: str
    args: bytes
    writer: str
    writer_epoch: int
    idem_key: str
    trace_id: str
    expected_version: int | None = None
    token: str = ""
    leases: tuple[tuple[str, int], ...] = ()
    constraints: bytes = b""
    malformed: str | None = None
    provenance: Provenance = Provenance.UNVERIFIED_AGENT
    briefed: tuple[tuple[str, int], ...] = field(default_factory=briefed_now)
    latest: Heads | None = None
    parent_span: str = ""


@dataclass(frozen=True, slots=True)
class WriteResult(Generic[T]):
    """The outcome of one write.

    Attributes:
        version: the version the write committed as; for a refused write, the
            resource's version when it was refused.
        value: what the write method returned (the stored result for a duplicate).
        error: the typed error of a refused write, else None.
        duplicate: the idempotency key had already committed; nothing was applied.
    """

    version: int
    value: T | None = None
    error: BaseException | None = None
    duplicate: bool = False

    def unwrap(self) -> T:
        """The value, or raise the write's error."""
        if self.error is not None:
            raise self.error
        return self.value  # type: ignore[return-value]


@dataclass(frozen=True, slots=True)
class ReadResult(Generic[T]):
    """A read's value, the version it was read at, and the weakest provenance of the
    state it was read from (``actors._resource.provenance``)."""

    value: T
    version: int
    provenance: Provenance = Provenance.SYSTEM


def describe_error(error: BaseException) -> str:
    """``Type: message`` for logs and audit records."""
    return f"{type(error).__name__}: {error}"


def error_payload(error: BaseException, resource: str, op: str) -> BaseException:
    """The error to send back: itself if it survives pickling, else ``WriteFailedError``."""
    try:
        cloudpickle.loads(cloudpickle.dumps(error))  # type: ignore[no-untyped-call]
    except Exception:
        return WriteFailedError(resource, op, type(error).__name__, str(error))
    return error


def pack_calls(calls: list[WriteCall], parent_span: str = "") -> bytes:
    """The wire form of a batch of writes, made under the span ``parent_span``."""
    return encode(
        [
            (
                c.op,
                c.args,
                c.writer,
                c.writer_epoch,
                c.idem_key,
                c.trace_id,
                c.expected_version,
                c.token,
                [list(pair) for pair in c.leases],
                c.constraints,
                c.provenance.value,
                [list(pair) for pair in c.briefed],
                parent_span or c.parent_span,
            )
            for c in calls
        ]
    )


def unpack_calls(blob: bytes) -> list[WriteCall]:
    """Writes from their wire form; each malformed one marked, for the core to refuse.

    Raises:
        InvalidArgumentError: ``blob`` is not a list of writes at all.
    """
    fields = decode(blob)
    if not isinstance(fields, list):
        raise InvalidArgumentError("a write batch must be a list of writes")
    return [_checked_call(f) for f in fields]


# The type of each wire field of a ``WriteCall``, in order (``bool`` is no epoch).
_WIRE_TYPES: tuple[tuple[str, tuple[type, ...]], ...] = (
    ("op", (str,)), ("args", (bytes,)), ("writer", (str,)), ("writer_epoch", (int,)),
    ("idem_key", (str,)), ("trace_id", (str,)), ("expected_version", (int, type(None))),
    ("token", (str,)), ("leases", (list,)), ("constraints", (bytes,)), ("provenance", (str,)),
    ("briefed", (list,)), ("parent_span", (str,)),
)  # fmt: skip
_UNBRIEFED = len(_WIRE_TYPES) - 2  # a call without its briefing: briefed on nothing
_UNTRACED = len(_WIRE_TYPES) - 1  # a call without its parent span: a root of its trace
_SPAN_ID = re.compile(r"^(?:[0-9a-f]{16})?$")
_MARKS = frozenset(Provenance)


def _checked_call(fields: Any) -> WriteCall:
    if not isinstance(fields, list) or len(fields) not in (_UNBRIEFED, _UNTRACED, len(_WIRE_TYPES)):
        return _malformed([], f"a write must be {len(_WIRE_TYPES)} fields")
    for value, (name, types) in zip(fields, _WIRE_TYPES, strict=False):
        if not isinstance(value, types) or isinstance(value, bool):
            return _malformed(fields, f"{name} of type {type(value).__name__}")
    if not fields[4]:
        return _malformed(fields, "an empty idempotency key")
    leases = checked_leases(fields[8])
    if isinstance(leases, str):
        return _malformed(fields, leases)
    if fields[10] not in _MARKS:
        return _malformed(fields, f"provenance {fields[10][:40]!r} is not a Provenance")
    try:
        briefed = checked_briefing(fields[11] if len(fields) > _UNBRIEFED else ())
    except InvalidArgumentError as error:
        return _malformed(fields, str(error))
    parent = fields[12] if len(fields) > _UNTRACED else ""
    if not _SPAN_ID.match(parent):
        return _malformed(fields, f"parent_span {parent[:40]!r} is not a span id")
    op, args, writer, epoch, key, trace, expected, token = fields[:8]
    mark = Provenance(fields[10])
    return WriteCall(
        op, args, writer, epoch, key, trace, expected, token, leases, fields[9], None, mark,
        briefed, parent_span=parent,
    )  # fmt: skip


def _malformed(fields: list[Any], why: str) -> WriteCall:
    def text(index: int) -> str:
        value = fields[index] if index < len(fields) else None
        return value if isinstance(value, str) else repr(value)[:200]

    epoch = fields[3] if len(fields) > 3 and type(fields[3]) is int else 0
    token = fields[7] if len(fields) > 7 and isinstance(fields[7], str) else ""
    return WriteCall(
        text(0), b"", text(2), epoch, text(4), text(5), None, token, malformed=why, briefed=()
    )


def pack_results(results: list[WriteResult[Any]]) -> bytes:
    """The wire form of write results; values are plain data, errors travel pickled."""
    return encode([[r.version, r.value, r.duplicate, _pickled(r.error)] for r in results])


def _pickled(error: BaseException | None) -> bytes | None:
    return None if error is None else cloudpickle.dumps(error)  # type: ignore[no-untyped-call]


def unpack_results(blob: bytes) -> list[WriteResult[Any]]:
    """Write results from their wire form."""
    return [
        WriteResult(version, value, None if error is None else cloudpickle.loads(error), duplicate)
        for version, value, duplicate, error in decode(blob)
    ]


def listed_args(args: Any) -> list[Any]:
    """A write's or read's positional arguments as a list.

    Raises:
        InvalidArgumentError: not a sequence (a str or bytes is one argument, not many).
    """
    if isinstance(args, (str, bytes)) or not isinstance(args, Sequence):
        raise InvalidArgumentError(f"args must be a sequence, not {type(args).__name__}")
    return list(args)


def keyword_args(kwargs: Any) -> dict[str, Any]:
    """A write's or read's keyword arguments as a dict.

    Raises:
        InvalidArgumentError: not a mapping with str keys.
    """
    if not isinstance(kwargs, Mapping) or not all(isinstance(k, str) for k in kwargs):
        raise InvalidArgumentError("kwargs must be a mapping with str keys")
    return dict(kwargs)


def decode_arguments(args: Any) -> tuple[list[Any], dict[str, Any]]:
    """``[positional, keyword]`` from their encoding.

    Raises:
        InvalidArgumentError: not the encoding of a list and a dict with str keys.
    """
    if not isinstance(args, bytes):
        raise InvalidArgumentError(f"arguments must be bytes, not {type(args).__name__}")
    decoded = decode(args)
    if not (
        isinstance(decoded, list)
        and len(decoded) == 2
        and isinstance(decoded[0], list)
        and isinstance(decoded[1], dict)
    ):
        raise InvalidArgumentError("arguments must encode [positional list, keyword dict]")
    return decoded[0], decoded[1]


def check_fence(writer: Any, min_epoch: Any) -> None:
    """Refuse a fence that could not be stored as one.

    Raises:
        InvalidArgumentError: ``writer`` is not a non-empty str, or ``min_epoch`` is not
            an int (not a bool) in 0..2**63-1.
    """
    if not isinstance(writer, str) or not writer:
        raise InvalidArgumentError(f"a fence's writer must be a non-empty str, not {writer!r}")
    if type(min_epoch) is not int or not 0 <= min_epoch <= SQLITE_INT[1]:
        raise InvalidArgumentError(f"a fence's min_epoch must be an int >= 0, not {min_epoch!r}")


class WriteSpan:
    """The span of one call's writes (``agentcast.write <resource>``): the resource,
    writer, operations and first key; ``note`` adds what they did."""

    def __init__(self, resource: str, calls: list[WriteCall]) -> None:
        first = calls[0] if calls else None
        self._span = span(
            f"agentcast.write {resource}", kind="client",
            attributes={
                "agentcast.resource": resource,
                "agentcast.writer": "" if first is None else first.writer,
                "agentcast.write.count": len(calls),
                # a malformed call's op may be anything: the span must not fail on it
                "agentcast.write.operations": ",".join(sorted({str(c.op)[:80] for c in calls})),
                "agentcast.write.idempotency_key": "" if first is None else first.idem_key,
            },
        )  # fmt: skip

    def __enter__(self) -> WriteSpan:
        self._span.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._span.__exit__(*exc)

    def pack(self, calls: list[WriteCall]) -> bytes:
        """``calls``' wire form, stamped with this span as their parent when it is in
        their trace (a driver's write outside any span of its trace opens a root of a
        trace of its own: work under the call's trace cannot hang under it)."""
        same = bool(calls) and self._span.trace_id == calls[0].trace_id
        return pack_calls(calls, self._span.span_id if same else "")

    def note(self, results: list[WriteResult[Any]]) -> list[WriteResult[Any]]:
        """Add the last version, duplicates and refusals to the span; return ``results``."""
        if results:
            self._span.set_attribute("agentcast.write.version", results[-1].version)
        self._span.set_attribute("agentcast.write.duplicates", sum(r.duplicate for r in results))
        refused = sorted({type(r.error).__name__ for r in results if r.error is not None})
        if refused:
            self._span.set_attribute("agentcast.write.refused", ",".join(refused))
        return results


_TASK_KEY = re.compile(r"^t-[0-9a-f]{20}:\d+$")
_RANDOM_KEY = re.compile(r"^[^:]+:[0-9a-f]{32}$")


def key_kind(idem_key: str) -> str:
    """How a write's idempotency key was made: ``task`` (derived from the task and the
    call's index: a retried task repeats it), ``random`` (a write made outside a task: a
    caller that retries it after an error sends a new key, and it may apply twice), or
    ``given`` (chosen by the caller)."""
    if _TASK_KEY.match(idem_key):
        return "task"
    return "random" if _RANDOM_KEY.match(idem_key) else "given"
