"""Typed handles to a resource actor: the runtime stamps identity, trace and keys.

User code never passes its identity: a handle is made by the runtime for one writer (an
agent, or ``"system"`` for the driver) and stamps every write with it. Arguments are
encoded on the caller's side, so data that is not plain, or too large, never reaches the
applier. A call that meets a dead or restarting actor is sent again with the same
idempotency key, which makes the retry safe: the resource applies a key at most once.

``ResourceCalls`` holds the logic once; ``ResourceHandle`` (blocking, for drivers) and
``AsyncResourceHandle`` (awaiting, for agents) only run its plans (``actors._reconnect``).
Both learn the resource's operations on first use, take the same arguments and raise
the same errors.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

from runtime import (
    Clock,
    InvalidArgumentError,
    ResourceUnavailableError,
    SystemClock,
    UnknownOperationError,
    encode,
)

from .._agent.derived import derived as derived_mark
from .._agent.derived import note
from .._locks.held import held_tokens
from .._reconnect import Plan, Reconnect, reconnecting, run_async, run_blocking
from .calls import (
    ReadResult,
    WriteCall,
    WriteResult,
    WriteSpan,
    keyword_args,
    listed_args,
    unpack_results,
)
from .constraints import carried


@dataclass(frozen=True, slots=True, kw_only=True)
class Write:
    """One write of a ``write_many`` batch.

    Attributes:
        op: the ``@write`` method's name.
        args: positional arguments (plain data or pydantic models). Default none.
        kwargs: keyword arguments. Default none.
        key: idempotency key; default None derives one from the task and call index.
        expected_version: refuse with ``ConflictError`` unless the resource is at this
            version. Default None (no check).
    """

    op: str
    args: Sequence[Any] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    key: str | None = None
    expected_version: int | None = None


class KeySource(Protocol):
    """Where a handle gets the trace id and the next idempotency key of a write."""

    def next_key(self) -> tuple[str, str]: ...


@dataclass(frozen=True, slots=True)
class WriterIdentity:
    """Who writes: the agent's name (or "system") and epoch, which writes only claim, and
    the writer token the system issued to this incarnation, which the resource checks."""

    writer: str
    epoch: int
    token: str = ""


@dataclass(frozen=True, slots=True)
class _Described:
    """What a handle learns from the resource on first use."""

    kinds: dict[str, str]
    max_payload: int


class ResourceCalls:
    """The logic of a resource handle, for both faces: each call is a plan.

    Writes are always sent, even to an unknown operation, so that the resource refuses
    and audits the attempt; reads and ``handle.op(...)`` calls are checked here first.
    """

    def __init__(
        self, actor: Any, name: str, identity: WriterIdentity, keys: KeySource,
        reconnect: Reconnect, clock: Clock,
    ) -> None:  # fmt: skip
        self.actor = actor
        self.name = name
        self.identity = identity
        self.keys = keys
        self.reconnect = reconnect
        self.clock = clock
        self._described: _Described | None = None

    def _call(self, send: Callable[[], Any]) -> Plan[Any]:
        """Every call to the actor: re-sent while it restarts, its own errors as themselves,
        given up at the ``Reconnect`` deadline also when the actor never answers."""
        limit = self.reconnect.give_up_after.total_seconds()
        deadline = self.clock.monotonic() + limit
        try:
            return (
                yield from reconnecting(
                    send, reconnect=self.reconnect, clock=self.clock, target=self.name,
                    timeout=lambda: max(0.0, deadline - self.clock.monotonic()),
                )
            )  # fmt: skip
        except TimeoutError as error:
            raise ResourceUnavailableError(self.name, f"no answer within {limit} s") from error

    def describe(self) -> Plan[_Described]:
        """The operations and the payload limit, asked on first use only (the calls
        below test ``_described`` first, sparing a plan per call)."""
        if self._described is None:
            answer = yield from self._call(self.actor.describe.remote)
            self._described = _Described(answer["kinds"], answer["max_payload_bytes"])
        return self._described

    def operations(self) -> Plan[dict[str, str]]:
        described = self._described or (yield from self.describe())
        return dict(described.kinds)

    def write(
        self, write: Write | str, args: Sequence[Any], kwargs: Mapping[str, Any]
    ) -> Plan[WriteResult[Any]]:
        item = write if isinstance(write, Write) else Write(op=write, args=args, kwargs=kwargs)
        described = self._described or (yield from self.describe())
        (result,) = yield from self._submit(described, [item])
        return result

    def write_many(self, writes: Iterable[Write]) -> Plan[list[WriteResult[Any]]]:
        described = self._described or (yield from self.describe())
        return (yield from self._submit(described, writes))

    def read(
        self, op: str, args: Sequence[Any], kwargs: Mapping[str, Any]
    ) -> Plan[ReadResult[Any]]:
        described = self._described or (yield from self.describe())
        return (yield from self._read(described, op, args, kwargs))

    def call_op(self, op: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Plan[Any]:
        """``handle.op(...)``: a write's value (its error raised) or a read's value."""
        described = self._described or (yield from self.describe())
        kind = described.kinds.get(op)
        if kind == "write":
            write = Write(op=op, args=args, kwargs=kwargs)
            (result,) = yield from self._submit(described, [write])
            return result.unwrap()
        if kind == "read":
            return (yield from self._read(described, op, args, kwargs)).value
        raise UnknownOperationError(self.name, op)

    def status(self) -> Plan[dict[str, Any]]:
        status: dict[str, Any] = yield from self._call(self.actor.status.remote)
        return status

    def fence_writer(self, writer: str, min_epoch: int) -> Plan[None]:
        yield from self._call(partial(self.actor.fence_writer.remote, writer, min_epoch))

    def _submit(
        self, described: _Described, writes: Iterable[Write]
    ) -> Plan[list[WriteResult[Any]]]:
        calls = [self._stamp(w, described.max_payload) for w in writes]
        with WriteSpan(self.name, calls) as traced:  # the whole write, retries included
            sent = yield from self._call(partial(self.actor.submit.remote, traced.pack(calls)))
            return traced.note(unpack_results(sent))

    def _read(
        self, described: _Described, op: str, args: Sequence[Any], kwargs: Mapping[str, Any]
    ) -> Plan[ReadResult[Any]]:
        if not isinstance(op, str) or described.kinds.get(op) != "read":
            raise UnknownOperationError(self.name, op if isinstance(op, str) else repr(op))
        data = encode([listed_args(args), keyword_args(kwargs)], limit=described.max_payload)
        result: ReadResult[Any] = yield from self._call(partial(self.actor.read.remote, op, data))
        note(result.provenance, f"resource:{self.name}")  # what the task makes derives from it
        return result

    def _stamp(self, write: Write, max_payload: int) -> WriteCall:
        if not isinstance(write, Write):
            raise InvalidArgumentError(f"write_many takes Write items, not {type(write).__name__}")
        args = encode([listed_args(write.args), keyword_args(write.kwargs)], limit=max_payload)
        trace_id, derived = self.keys.next_key()
        return WriteCall(
            op=write.op, args=args, writer=self.identity.writer,
            writer_epoch=self.identity.epoch, idem_key=write.key or derived, trace_id=trace_id,
            expected_version=write.expected_version, token=self.identity.token,
            leases=held_tokens(),  # the leases held where the write is made: fenced
            constraints=carried(),  # the constraints of the task it is made under: checked
            provenance=derived_mark(),  # the resource caps it at what this writer can vouch for
        )  # fmt: skip


class ResourceHandle:
    """A blocking handle for drivers. ``handle.op(*args)`` calls ``@write``/``@read`` ops.

    Args:
        actor: the resource actor.
        name: the resource's name.
        identity: the writer the handle stamps on every write.
        keys: where the trace id and idempotency key of each write come from.
        reconnect: how long to re-send a call while the actor restarts. Default
            ``Reconnect()``.
        clock: the time of reconnect deadlines and pauses. Default ``SystemClock()``.
    """

    def __init__(
        self,
        actor: Any,
        name: str,
        identity: WriterIdentity,
        keys: KeySource,
        reconnect: Reconnect | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._calls = ResourceCalls(
            actor, name, identity, keys, reconnect or Reconnect(), clock or SystemClock()
        )

    @property
    def name(self) -> str:
        return self._calls.name

    def operations(self) -> dict[str, str]:
        """The resource's operations: name -> ``"write"`` or ``"read"``.

        Raises:
            ResourceUnavailableError: the actor stayed unreachable.
        """
        return run_blocking(self._calls.operations(), self._calls.clock)

    def write(self, write: Write | str, /, *args: Any, **kwargs: Any) -> WriteResult[Any]:
        """Apply one write; ``write`` is a ``Write`` or an op name with its arguments.

        Raises:
            InvalidArgumentError: arguments that are not plain data or pydantic models.
            PayloadTooLargeError: arguments over the resource's payload limit.
            ResourceUnavailableError: the actor stayed unreachable; the write may or may
                not have been applied (send it again with the same key to learn which).
        """
        return run_blocking(self._calls.write(write, args, kwargs), self._calls.clock)

    def write_many(self, writes: Iterable[Write], /) -> list[WriteResult[Any]]:
        """Apply many writes in one call and one group commit; each has its own key,
        version and result (they are not a transaction).

        Raises:
            InvalidArgumentError: a write's arguments are not plain data.
            PayloadTooLargeError: a write's arguments are over the payload limit.
            ResourceUnavailableError: the actor stayed unreachable (see ``write``).
        """
        return run_blocking(self._calls.write_many(writes), self._calls.clock)

    def read(self, op: str, /, *args: Any, **kwargs: Any) -> ReadResult[Any]:
        """Run a ``@read`` op: its value and the version it saw.

        Raises:
            UnknownOperationError: the resource has no ``@read`` method ``op``.
            InvalidArgumentError: the arguments are not plain data, or do not fit ``op``.
            PayloadTooLargeError: the arguments are over the payload limit.
            ResourceUnavailableError: the actor stayed unreachable.
        """
        return run_blocking(self._calls.read(op, args, kwargs), self._calls.clock)

    def status(self) -> dict[str, Any]:
        """The resource's version, incarnation and queue depth.

        Raises:
            ResourceUnavailableError: the actor stayed unreachable.
        """
        return run_blocking(self._calls.status(), self._calls.clock)

    def fence_writer(self, writer: str, min_epoch: int) -> None:
        """Refuse every later write of ``writer`` with an epoch below ``min_epoch``.

        Raises:
            FencedError: this incarnation of the resource is stale.
            StorageError: the fence could not be stored.
            ResourceUnavailableError: the actor stayed unreachable.
        """
        run_blocking(self._calls.fence_writer(writer, min_epoch), self._calls.clock)

    def __getattr__(self, op: str) -> Callable[..., Any]:
        """``handle.op(*args, **kwargs)``: a write's value (its error raised) or a read's
        value; ``UnknownOperationError`` when called if there is no such operation."""
        if op.startswith("_"):  # also what copy and pickle look up on a bare instance
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {op!r}")
        calls = self._calls
        return lambda *args, **kwargs: run_blocking(calls.call_op(op, args, kwargs), calls.clock)

    def __deepcopy__(self, memo: dict[int, Any]) -> ResourceHandle:
        """A handle refers to one remote resource: a deep copy refers to the same one,
        as the same writer."""
        return copy.copy(self)


class AsyncResourceHandle:
    """The same handle for code running in an event loop, such as agent handlers:
    ``await handle.op(*args)``. Arguments, errors and behaviour are ``ResourceHandle``'s.
    """

    def __init__(
        self,
        actor: Any,
        name: str,
        identity: WriterIdentity,
        keys: KeySource,
        reconnect: Reconnect | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._calls = ResourceCalls(
            actor, name, identity, keys, reconnect or Reconnect(), clock or SystemClock()
        )

    @property
    def name(self) -> str:
        return self._calls.name

    async def operations(self) -> dict[str, str]:
        """See ``ResourceHandle.operations``.

        Raises:
            ResourceUnavailableError: the actor stayed unreachable.
        """
        return await run_async(self._calls.operations(), self._calls.clock)

    async def write(self, write: Write | str, /, *args: Any, **kwargs: Any) -> WriteResult[Any]:
        """See ``ResourceHandle.write``.

        Raises:
            InvalidArgumentError: arguments that are not plain data or pydantic models.
            PayloadTooLargeError: arguments over the resource's payload limit.
            ResourceUnavailableError: the actor stayed unreachable (see there).
        """
        return await run_async(self._calls.write(write, args, kwargs), self._calls.clock)

    async def write_many(self, writes: Iterable[Write], /) -> list[WriteResult[Any]]:
        """See ``ResourceHandle.write_many``.

        Raises:
            InvalidArgumentError: a write's arguments are not plain data.
            PayloadTooLargeError: a write's arguments are over the payload limit.
            ResourceUnavailableError: the actor stayed unreachable.
        """
        return await run_async(self._calls.write_many(writes), self._calls.clock)

    async def read(self, op: str, /, *args: Any, **kwargs: Any) -> ReadResult[Any]:
        """See ``ResourceHandle.read``.

        Raises:
            UnknownOperationError: the resource has no ``@read`` method ``op``.
            InvalidArgumentError: the arguments are not plain data, or do not fit ``op``.
            PayloadTooLargeError: the arguments are over the payload limit.
            ResourceUnavailableError: the actor stayed unreachable.
        """
        return await run_async(self._calls.read(op, args, kwargs), self._calls.clock)

    async def status(self) -> dict[str, Any]:
        """See ``ResourceHandle.status``.

        Raises:
            ResourceUnavailableError: the actor stayed unreachable.
        """
        return await run_async(self._calls.status(), self._calls.clock)

    async def fence_writer(self, writer: str, min_epoch: int) -> None:
        """See ``ResourceHandle.fence_writer``.

        Raises:
            FencedError: this incarnation of the resource is stale.
            StorageError: the fence could not be stored.
            ResourceUnavailableError: the actor stayed unreachable.
        """
        await run_async(self._calls.fence_writer(writer, min_epoch), self._calls.clock)

    def __getattr__(self, op: str) -> Callable[..., Coroutine[Any, Any, Any]]:
        """See ``ResourceHandle.__getattr__``; the call is awaited."""
        if op.startswith("_"):  # also what copy and pickle look up on a bare instance
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {op!r}")
        calls = self._calls
        return lambda *args, **kwargs: run_async(calls.call_op(op, args, kwargs), calls.clock)

    def __deepcopy__(self, memo: dict[int, Any]) -> AsyncResourceHandle:
        """See ``ResourceHandle.__deepcopy__``."""
        return copy.copy(self)
