"""One pooled agent's mailbox: its calls run at most ``capacity`` at a time, in arrival
order, whatever its host-mates do.

A host runs every agent's calls on one event loop, and Ray's ``max_concurrency`` bounds
the host as a whole, not each agent. So each agent gets a mailbox: a call takes a slot
(waiting in line, first come first served, while all ``capacity`` slots are taken), runs,
and frees it. An agent whose handlers never return holds only its own slots; its
host-mates keep theirs. Closing the mailbox (kill switch, restart of a wedged agent)
cancels what runs and what waits, and refuses later calls.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


class MailboxClosedError(Exception):
    """Internal: the mailbox was closed while the call waited or ran, or before it came."""


class Mailbox:
    """The calls of one agent: ``capacity`` at a time, the others waiting in order.

    Args:
        capacity: calls run at once (the agent's ``max_concurrency``), at least 1.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = max(1, capacity)
        self._taken = 0  # slots of running calls, and of waiters handed one not yet awake
        self._waiting: deque[asyncio.Future[None]] = deque()
        self._running: set[asyncio.Task[object]] = set()
        self.closed = False

    @property
    def running(self) -> int:
        """Calls running now."""
        return len(self._running)

    @property
    def waiting(self) -> int:
        """Calls waiting for a slot."""
        return len(self._waiting)

    async def run(self, work: Callable[[], Awaitable[T]]) -> T:
        """Run ``work()`` once a slot is free (in arrival order), in the calling task.

        Raises:
            MailboxClosedError: the mailbox is closed, or was closed while the call
                waited for its slot.
            asyncio.CancelledError: the call was cancelled (by its caller, or by ``close``
                while it ran).
        """
        await self._slot()
        task = asyncio.current_task()
        assert task is not None
        self._running.add(task)
        try:
            return await work()
        finally:
            self._running.discard(task)
            self._free()

    async def _slot(self) -> None:
        if self.closed:
            raise MailboxClosedError("the agent's mailbox is closed")
        if self._taken < self.capacity and not self._waiting:
            self._taken += 1
            return
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(turn)
        try:
            await turn
        except asyncio.CancelledError:
            if turn in self._waiting:
                self._waiting.remove(turn)
            elif turn.done() and not turn.cancelled() and turn.exception() is None:
                self._free()  # handed a slot just as it was cancelled: pass it on
            raise

    def _free(self) -> None:
        """A slot is free: hand it to the first waiter, else count it free."""
        while self._waiting:
            turn = self._waiting.popleft()
            if not turn.done():
                turn.set_result(None)  # the slot passes on: ``_taken`` stays
                return
        self._taken -= 1

    def close(self) -> int:
        """Cancel every running call, fail every waiting one, refuse later ones; returns
        how many calls it stopped."""
        self.closed = True
        stopped = len(self._running) + len(self._waiting)
        for turn in self._waiting:
            if not turn.done():
                turn.set_exception(MailboxClosedError("the agent's mailbox was closed"))
        self._waiting.clear()
        for task in list(self._running):
            task.cancel()
        return stopped
