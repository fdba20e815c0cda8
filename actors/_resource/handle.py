"""Typed handles to a resource actor: the runtime stamps identity, trace and keys.

User code never passes its identity: a handle is made by the runtime for one writer (an
agent, or ``"system"`` for the driver) and stamps every write with it. Arguments are
encoded on the caller's side, so data that is not plain, or too large, never reaches the
applier. A call that meets a dead or restarting actor is sent again with the same
idempotency key, which makes the retry safe: the resource applies a key at most once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol

import ray
from ray.exceptions import ActorUnavailableError, RayActorError

from runtime import ResourceUnavailableError, UnknownOperationError, encode

from .calls import ReadResult, WriteCall, WriteResult, pack_calls, unpack_results

_UNAVAILABLE = (RayActorError, ActorUnavailableError)


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
    """Who writes: the agent's name (or "system") and its epoch."""

    writer: str
    epoch: int


class _Stamper:
    """Builds the wire form of calls for one resource and one writer."""

    def __init__(
        self, name: str, identity: WriterIdentity, keys: KeySource, max_payload: int
    ) -> None:
        self.name = name
        self.identity = identity
        self.keys = keys
        self.max_payload = max_payload

    def write_call(self, write: Write) -> WriteCall:
        args = encode([list(write.args), dict(write.kwargs)], limit=self.max_payload)
        trace_id, derived = self.keys.next_key()
        return WriteCall(
            op=write.op,
            args=args,
            writer=self.identity.writer,
            writer_epoch=self.identity.epoch,
            idem_key=write.key or derived,
            trace_id=trace_id,
            expected_version=write.expected_version,
        )

    def read_args(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> bytes:
        return encode([list(args), dict(kwargs)], limit=self.max_payload)


@dataclass(frozen=True, slots=True, kw_only=True)
class Reconnect:
    """How long a handle keeps re-sending a call to a dead or restarting actor.

    Attributes:
        give_up_after: then ``ResourceUnavailableError``. Default 60 s.
        pause: wait between tries. Default 50 ms.
    """

    give_up_after: timedelta = timedelta(seconds=60)
    pause: timedelta = timedelta(milliseconds=50)


class ResourceHandle:
    """A blocking handle for drivers. ``handle.op(*args)`` calls ``@write``/``@read`` ops."""

    def __init__(
        self, actor: Any, stamper: _Stamper, kinds: dict[str, str], reconnect: Reconnect
    ) -> None:
        self._actor = actor
        self._stamper = stamper
        self._kinds = kinds
        self._reconnect = reconnect

    @property
    def name(self) -> str:
        return self._stamper.name

    def write(self, write: Write | str, *args: Any, **kwargs: Any) -> WriteResult[Any]:
        """Apply one write; ``write`` is a ``Write`` or an op name with its arguments."""
        item = write if isinstance(write, Write) else Write(op=write, args=args, kwargs=kwargs)
        return self.write_many([item])[0]

    def write_many(self, writes: Iterable[Write]) -> list[WriteResult[Any]]:
        """Apply many writes in one call and one group commit; each has its own key,
        version and result (they are not a transaction)."""
        calls = [self._stamper.write_call(w) for w in writes]
        blob = pack_calls(calls)
        return unpack_results(self._call(lambda: self._actor.submit.remote(blob)))

    def read(self, op: str, *args: Any, **kwargs: Any) -> ReadResult[Any]:
        """Run a ``@read`` op: its value and the version it saw."""
        data = self._stamper.read_args(args, kwargs)
        return self._call(lambda: self._actor.read.remote(op, data))  # type: ignore[no-any-return]

    def status(self) -> dict[str, Any]:
        """The resource's version, incarnation and queue depth."""
        return self._call(lambda: self._actor.status.remote())  # type: ignore[no-any-return]

    def fence_writer(self, writer: str, min_epoch: int) -> None:
        """Refuse every later write of ``writer`` with an epoch below ``min_epoch``."""
        self._call(lambda: self._actor.fence_writer.remote(writer, min_epoch))

    def _call(self, send: Callable[[], Any]) -> Any:
        deadline = time.monotonic() + self._reconnect.give_up_after.total_seconds()
        while True:
            try:
                return ray.get(send())
            except _UNAVAILABLE as error:
                if time.monotonic() >= deadline:
                    raise ResourceUnavailableError(self.name, str(error)) from error
                time.sleep(self._reconnect.pause.total_seconds())

    def __getattr__(self, op: str) -> Callable[..., Any]:
        kind = self._kinds.get(op)
        if kind == "write":
            return lambda *a, **kw: self.write(op, *a, **kw).unwrap()
        if kind == "read":
            return lambda *a, **kw: self.read(op, *a, **kw).value
        raise AttributeError(f"resource {self.name!r} has no @write or @read method {op!r}")


class AsyncResourceHandle:
    """The same handle for code running in an event loop, such as agent handlers.

    It learns the resource's operations on first use, so making one costs no call.
    """

    def __init__(
        self, actor: Any, name: str, identity: WriterIdentity, keys: KeySource, reconnect: Reconnect
    ) -> None:
        self._actor = actor
        self._name = name
        self._identity = identity
        self._keys = keys
        self._reconnect = reconnect
        self._stamper: _Stamper | None = None
        self._kinds: dict[str, str] = {}

    @property
    def name(self) -> str:
        return self._name

    async def write(self, write: Write | str, *args: Any, **kwargs: Any) -> WriteResult[Any]:
        """Apply one write; ``write`` is a ``Write`` or an op name with its arguments."""
        item = write if isinstance(write, Write) else Write(op=write, args=args, kwargs=kwargs)
        return (await self.write_many([item]))[0]

    async def write_many(self, writes: Iterable[Write]) -> list[WriteResult[Any]]:
        """Apply many writes in one call and one group commit."""
        stamper = await self._ready()
        calls = [stamper.write_call(w) for w in writes]
        blob = pack_calls(calls)
        return unpack_results(await self._call(lambda: self._actor.submit.remote(blob)))

    async def read(self, op: str, *args: Any, **kwargs: Any) -> ReadResult[Any]:
        """Run a ``@read`` op: its value and the version it saw."""
        data = (await self._ready()).read_args(args, kwargs)
        return await self._call(lambda: self._actor.read.remote(op, data))  # type: ignore[no-any-return]

    async def _ready(self) -> _Stamper:
        if self._stamper is None:
            described = await self._call(lambda: self._actor.describe.remote())
            self._kinds = described["kinds"]
            self._stamper = _Stamper(
                self._name, self._identity, self._keys, described["max_payload_bytes"]
            )
        return self._stamper

    async def _call(self, send: Callable[[], Awaitable[Any]]) -> Any:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._reconnect.give_up_after.total_seconds()
        while True:
            try:
                return await send()
            except _UNAVAILABLE as error:
                if loop.time() >= deadline:
                    raise ResourceUnavailableError(self.name, str(error)) from error
                await asyncio.sleep(self._reconnect.pause.total_seconds())

    def __getattr__(self, op: str) -> Callable[..., Awaitable[Any]]:
        if op.startswith("_"):
            raise AttributeError(op)

        async def call(*a: Any, **kw: Any) -> Any:
            await self._ready()
            kind = self._kinds.get(op)
            if kind == "write":
                return (await self.write(op, *a, **kw)).unwrap()
            if kind == "read":
                return (await self.read(op, *a, **kw)).value
            raise UnknownOperationError(self.name, op)

        return call
