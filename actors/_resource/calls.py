"""What crosses between a resource handle and its resource actor.

Writes and their results cross as one msgpack blob each way rather than as Python objects:
Ray pickles objects argument by argument, which costs more per call than the applier
spends on a write. Only a refused write's error travels pickled, inside the blob.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from ray import cloudpickle

from runtime import InvalidArgumentError, WriteFailedError, decode, encode

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class WriteCall:
    """One write, stamped by the runtime's handle.

    ``args`` is the msgpack encoding of ``[positional, keyword]`` arguments. ``writer``
    and ``writer_epoch`` are what the call claims; the resource takes the writer's
    identity from ``token`` alone. ``malformed`` says why a call's wire form was not
    what a handle sends (its other fields are then printable stand-ins, for the audit).
    """

    op: str
    args: bytes
    writer: str
    writer_epoch: int
    idem_key: str
    trace_id: str
    expected_version: int | None = None
    token: str = ""
    malformed: str | None = None


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
    """A read's value and the version it was read at."""

    value: T
    version: int


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


def pack_calls(calls: list[WriteCall]) -> bytes:
    """The wire form of a batch of writes."""
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
    ("token", (str,)),
)  # fmt: skip


def _checked_call(fields: Any) -> WriteCall:
    if not isinstance(fields, list) or len(fields) != len(_WIRE_TYPES):
        return _malformed([], f"a write must be {len(_WIRE_TYPES)} fields")
    for value, (name, types) in zip(fields, _WIRE_TYPES, strict=True):
        if not isinstance(value, types) or isinstance(value, bool):
            return _malformed(fields, f"{name} of type {type(value).__name__}")
    if not fields[4]:
        return _malformed(fields, "an empty idempotency key")
    return WriteCall(*fields)


def _malformed(fields: list[Any], why: str) -> WriteCall:
    def text(index: int) -> str:
        value = fields[index] if index < len(fields) else None
        return value if isinstance(value, str) else repr(value)[:200]

    epoch = fields[3] if len(fields) > 3 and type(fields[3]) is int else 0
    token = fields[7] if len(fields) > 7 and isinstance(fields[7], str) else ""
    return WriteCall(text(0), b"", text(2), epoch, text(4), text(5), None, token, malformed=why)


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
