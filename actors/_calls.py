"""What crosses between a resource handle and its resource actor."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from ray import cloudpickle

from runtime import WriteFailedError

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class WriteCall:
    """One write, stamped by the runtime's handle.

    ``args`` is the msgpack encoding of ``[positional, keyword]`` arguments.
    """

    op: str
    args: bytes
    writer: str
    writer_epoch: int
    idem_key: str
    trace_id: str
    expected_version: int | None = None


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
