"""The resource actor: an async Ray actor whose one applier task drains a queue.

Many calls may be in flight (the actor is async), but only the applier touches the state.
It takes every queued write (up to ``max_batch``), applies them in arrival order and
commits them in one SQLite transaction, all without yielding to the event loop. Reads run
between batches, so a read never sees a write that is not yet committed, and sees every
write acknowledged before it was sent. Incoming calls pile up while a batch commits and
form the next batch: group commit falls out of the design.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from policies import ResourcePolicy, WriteAuthority
from runtime import StorageError, decode
from runtime._metrics import counter, gauge, histogram

from ._calls import ReadResult, WriteCall, WriteResult, pack_results, unpack_calls
from ._resource import Resource
from ._resource_core import ResourceCore


@dataclass(slots=True)
class _Pending:
    calls: list[WriteCall] | None  # None: a writer fence, applied alone
    fence: tuple[str, int] | None
    future: asyncio.Future[Any]


class ResourceHost:
    """Hosts one ``Resource`` as the single writer of its state."""

    def __init__(
        self,
        resource_cls: type[Resource],
        name: str,
        root: str,
        policy: ResourcePolicy,
        authority: WriteAuthority,
    ) -> None:
        # Nothing here may raise on a transient error: an exception in __init__ kills the
        # actor for good. Recovery happens on the first call and is retried on the next.
        self._cls = resource_cls
        self._name = name
        self._root = Path(root)
        self._policy = policy
        self._authority = authority
        self._core: ResourceCore | None = None
        self._queue: deque[_Pending] = deque()
        self._wake: asyncio.Event | None = None
        self._applier: asyncio.Task[None] | None = None
        self._tags = {"resource": name}

    def _open(self) -> ResourceCore:
        if self._core is None:
            try:
                self._core = ResourceCore(
                    self._cls(), self._name, self._root,
                    policy=self._policy, authority=self._authority,
                )  # fmt: skip
            except Exception as error:
                raise StorageError(f"{self._name}: recovery failed: {error}") from error
            gauge("resource_incarnation", "Incarnation of the resource actor", ("resource",)).set(
                self._core.incarnation, tags=self._tags
            )
        return self._core

    async def describe(self) -> dict[str, Any]:
        """What a handle needs: operation kinds and the payload limit."""
        return {
            "kinds": self._open().kinds(),
            "max_payload_bytes": self._policy.max_payload_bytes,
        }

    async def submit(self, blob: bytes) -> bytes:
        """Queue writes (``pack_calls``) for the applier; return their results
        (``pack_results``) once their batch is committed."""
        calls = unpack_calls(blob)
        results = await self._enqueue(_Pending(calls, None, self._loop_future()))
        return pack_results(results)

    async def fence_writer(self, writer: str, min_epoch: int) -> None:
        """From the moment this returns, no write of ``writer`` below ``min_epoch`` commits."""
        await self._enqueue(_Pending(None, (writer, min_epoch), self._loop_future()))

    async def read(self, op: str, args: bytes) -> ReadResult[Any]:
        """Run a ``@read`` method on the committed state."""
        positional, keyword = decode(args)
        return self._open().read(op, positional, keyword)

    async def status(self) -> dict[str, Any]:
        """Version, incarnation and queue depth, for ``agentcast status`` and tests."""
        core = self._open()
        return {
            "name": self._name,
            "version": core.version,
            "incarnation": core.incarnation,
            "queued": sum(len(p.calls or ()) for p in self._queue),
        }

    def _loop_future(self) -> asyncio.Future[Any]:
        return asyncio.get_running_loop().create_future()

    async def _enqueue(self, pending: _Pending) -> Any:
        self._open()
        if self._applier is None or self._applier.done():
            self._wake = asyncio.Event()
            self._applier = asyncio.create_task(self._apply_forever())
        self._queue.append(pending)
        assert self._wake is not None
        self._wake.set()
        return await pending.future

    async def _apply_forever(self) -> None:
        assert self._wake is not None
        while True:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
            self._apply_next()
            await asyncio.sleep(0)  # let arrived calls enqueue before the next batch

    def _apply_next(self) -> None:
        core = self._open()
        head = self._queue[0]
        if head.fence is not None:
            self._queue.popleft()
            try:
                core.fence_writer(*head.fence)
                head.future.set_result(None)
            except Exception as error:
                head.future.set_exception(error)
            return
        batch = self._take_batch()
        calls = [call for pending in batch for call in pending.calls or ()]
        started = time.perf_counter()
        try:
            results = core.apply_batch(calls)
        except Exception as error:  # a bug, not a refusal: recover from the log
            self._core = None
            core.close()
            for pending in batch:
                pending.future.set_exception(StorageError(f"{self._name}: {error}"))
            return
        self._record_metrics(results, (time.perf_counter() - started) * 1000)
        offset = 0
        for pending in batch:
            n = len(pending.calls or ())
            if not pending.future.done():
                pending.future.set_result(results[offset : offset + n])
            offset += n

    def _take_batch(self) -> list[_Pending]:
        taken: list[_Pending] = []
        size = 0
        while self._queue and self._queue[0].fence is None:
            n = len(self._queue[0].calls or ())
            if taken and size + n > self._policy.max_batch:
                break
            taken.append(self._queue.popleft())
            size += n
        return taken

    def _record_metrics(self, results: list[WriteResult[Any]], commit_ms: float) -> None:
        committed = sum(1 for r in results if r.error is None and not r.duplicate)
        refused: dict[str, int] = {}
        for r in results:
            if r.error is not None:
                kind = type(r.error).__name__
                refused[kind] = refused.get(kind, 0) + 1
        writes = counter("resource_writes_total", "Writes by outcome", ("resource", "outcome"))
        if committed:
            writes.inc(committed, tags={**self._tags, "outcome": "committed"})
        duplicates = sum(1 for r in results if r.duplicate)
        if duplicates:
            writes.inc(duplicates, tags={**self._tags, "outcome": "duplicate"})
        for kind, n in refused.items():
            writes.inc(n, tags={**self._tags, "outcome": kind})
        histogram("resource_batch_ms", "Apply + commit time of one batch", ("resource",)).observe(
            commit_ms, tags=self._tags
        )
        core = self._open()
        gauge("resource_version", "Committed version", ("resource",)).set(
            core.version, tags=self._tags
        )
