"""One applier task per state actor: queued items applied in batches, never interleaved.

An async Ray actor runs many calls at once; its state must still change one batch at a
time. Callers ``await applier.submit(item)``; one task takes the queued items, calls the
synchronous ``apply`` on them without yielding (so nothing reads or writes the state in
between) and resolves each caller with its outcome. Items that arrive while a batch is
applied and committed form the next batch: group commit falls out of the design.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, Generic, TypeVar

T = TypeVar("T")

Outcome = tuple[bool, Any]
S = TypeVar("S")


def apply_each(ops: Sequence[Callable[[S], Any]], target: S) -> list[Outcome]:
    """Run each op on ``target`` in order: ``(True, value)``, or ``(False, error)`` for an
    op that raised; one op's failure is its own outcome and the batch goes on."""
    outcomes: list[Outcome] = []
    for op in ops:
        try:
            outcomes.append((True, op(target)))
        except Exception as error:
            outcomes.append((False, error))
    return outcomes


"""``(True, value)`` or ``(False, exception)`` for one item."""


class SerialApplier(Generic[T]):
    """Applies submitted items in batches, in arrival order, one batch at a time.

    Args:
        apply: applies a batch and returns one outcome per item. If it raises, every item
            of the batch gets that exception.
        fits: whether ``item`` may join the batch ``taken`` so far (the first item always
            does). Default: every queued item joins.
    """

    def __init__(
        self,
        apply: Callable[[list[T]], Sequence[Outcome]],
        *,
        fits: Callable[[list[T], T], bool] | None = None,
    ) -> None:
        self._apply = apply
        self._fits = fits or (lambda taken, item: True)
        self._queue: deque[tuple[T, asyncio.Future[Any]]] = deque()
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._hold = asyncio.Lock()  # taken around each batch, and by ``held``

    def queued(self) -> list[T]:
        """The items waiting for the next batch."""
        return [item for item, _ in self._queue]

    async def submit(self, item: T) -> Any:
        """Queue ``item``; return its outcome's value once its batch is applied.

        Raises:
            Exception: the item's failed outcome.
        """
        if self._task is None or self._task.done():
            self._wake = asyncio.Event()
            self._task = asyncio.create_task(self._apply_forever())
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        assert self._wake is not None
        self._wake.set()
        return await future

    async def _apply_forever(self) -> None:
        assert self._wake is not None
        while True:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
            async with self._hold:  # no wait unless someone holds the applier
                self._apply_next()
            await asyncio.sleep(0)  # let arrived calls queue up for the next batch

    @contextlib.asynccontextmanager
    async def held(self) -> AsyncIterator[Callable[[T], Any]]:
        """Hold the applier: while the block runs (and may await), no queued batch is
        applied; the block applies items itself, alone, with the function it is given
        (which returns the item's value or raises its failed outcome). Used where a
        write must wait on something outside the actor before it may apply (a
        within-transaction validator) while nothing else writes."""
        async with self._hold:
            yield self._apply_alone

    def _apply_alone(self, item: T) -> Any:
        ((ok, value),) = self._apply([item])
        if not ok:
            raise value
        return value

    def _apply_next(self) -> None:
        batch = [self._queue.popleft()]
        while self._queue and self._fits([item for item, _ in batch], self._queue[0][0]):
            batch.append(self._queue.popleft())
        try:
            outcomes: Sequence[Outcome] = self._apply([item for item, _ in batch])
        except Exception as error:
            outcomes = [(False, error)] * len(batch)
        for (_, future), (ok, value) in zip(batch, outcomes, strict=True):
            if future.done():
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)
