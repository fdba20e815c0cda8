"""The caller's end of one ``run_many`` call: the outcomes of a batch, by subtask id.

Every handle of a batch takes its own outcome from the batch's ``OutcomeStream``, which
reads the streamed lists of ``(subtask_id, outcome)`` as they come and keeps each one
until its handle takes it. A driver's handles read the stream from whichever thread waits
(one at a time, under a lock); an agent's handles share one reader task of its event loop
(so a handle whose ``result`` times out never cancels a read half done). A stream is read
by one face only: a driver's or an agent's.

If the supervisor dies, the stream breaks: ``take`` returns None and the handle joins its
subtask again by id, as a handle of a single submit does (``SubtaskCalls.result``). An
error the supervisor raised for the whole call (a malformed batch) is raised to every
handle of the batch.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import ray
from ray.exceptions import RayTaskError

from runtime import AgentcastError, Clock

from .._reconnect import UNAVAILABLE
from .types import Outcome

_BROKEN = object()


class OutcomeStream:
    """The outcomes of one ``run_many`` call (a Ray ``ObjectRefGenerator``).

    Attributes:
        items: how many streamed items (each a list of outcomes) were read so far.
    """

    def __init__(self, generator: Any, clock: Clock) -> None:
        self._generator = generator
        self._clock = clock
        self._arrived: dict[str, Outcome | Exception] = {}
        self._failure: Exception | None = None
        self._over = False
        self._lock = threading.Lock()
        self._changed: asyncio.Condition | None = None
        self._reader: asyncio.Task[None] | None = None
        self.items = 0

    def take_blocking(self, subtask_id: str, timeout: float | None) -> Outcome | None:
        """The subtask's outcome, reading the stream in this thread while it has not come.

        Returns:
            None if the stream broke first (the supervisor died): join it again by id.

        Raises:
            TimeoutError: ``timeout`` seconds passed first.
            AgentcastError: the supervisor refused the whole batch, or this subtask's
                submit (e.g. ``StorageError``).
        """
        ends = None if timeout is None else self._clock.monotonic() + timeout
        while True:
            found = self._found(subtask_id)
            if found is not None:
                return None if found is _BROKEN else found
            left = None if ends is None else max(0.0, ends - self._clock.monotonic())
            if not self._lock.acquire(timeout=-1 if left is None else left):
                raise TimeoutError(f"subtask {subtask_id}: no outcome after {timeout}s")
            try:
                if self._found(subtask_id) is None and not self._read_one(left):
                    raise TimeoutError(f"subtask {subtask_id}: no outcome after {timeout}s")
            finally:
                self._lock.release()

    async def take(self, subtask_id: str, timeout: float | None) -> Outcome | None:
        """See ``take_blocking``, awaited; the stream is read by one task of this loop.

        Raises:
            TimeoutError: ``timeout`` seconds passed first.
            AgentcastError: as for ``take_blocking``.
        """
        if self._changed is None:
            self._changed = asyncio.Condition()
            self._reader = asyncio.get_running_loop().create_task(self._read_all())
        changed = self._changed
        async with changed:
            await asyncio.wait_for(
                changed.wait_for(lambda: self._found(subtask_id) is not None), timeout
            )
        found = self._found(subtask_id)
        return None if found is _BROKEN else found

    def _found(self, subtask_id: str) -> Any:
        """The outcome if it came, ``_BROKEN`` if it never will, else None; raises an
        error meant for this subtask or for the whole batch."""
        got = self._arrived.get(subtask_id)
        if isinstance(got, Exception):
            raise got
        if got is not None:
            return got
        if self._failure is not None:
            raise self._failure
        return _BROKEN if self._over else None

    def _read_one(self, timeout: float | None) -> bool:
        """Read the next item, waiting at most ``timeout``; False if none came in time."""
        done = self._generator.completed()
        ready, _ = ray.wait([self._generator, done], num_returns=1, timeout=timeout)
        if not ready:
            return False
        try:
            self._keep(ray.get(next(self._generator)))
        except StopIteration:
            self._over = True
        except Exception as error:  # the supervisor died, or refused the batch
            self._fail(error)
        return True

    async def _read_all(self) -> None:
        assert self._changed is not None
        try:
            async for ref in self._generator:
                ended = await ref
                async with self._changed:
                    self._keep(ended)
                    self._changed.notify_all()
        except Exception as error:  # the supervisor died, or refused the batch
            self._fail(error)
        self._over = True
        async with self._changed:
            self._changed.notify_all()

    def _keep(self, ended: list[tuple[str, Outcome | Exception]]) -> None:
        self.items += 1
        for subtask_id, outcome in ended:
            self._arrived[subtask_id] = outcome

    def _fail(self, error: Exception) -> None:
        self._over = True
        if isinstance(error, UNAVAILABLE):
            return  # broken: every handle joins its subtask again by id
        cause = getattr(error, "cause", None) if isinstance(error, RayTaskError) else None
        self._failure = cause if isinstance(cause, AgentcastError) else error
