"""The push nudge: after a commit that emitted events, the resource tells the dispatcher
"resource R committed up to seq N", fire and forget, so the dispatcher's partitions wake
at once instead of at the next poll.

A nudge is only a hint. The dispatcher still reads the resource's file for the events
and their newest number, so a lost nudge (the dispatcher restarting, not yet started,
the call dropped) delays events until the next poll and never loses one, and a forged
nudge wakes partitions for nothing. The resource never waits for the dispatcher: it
sends nothing while none runs, and looks for it again at most every ``_LOOKUP_EVERY_S``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import ray

from runtime import InvalidArgumentError, Location, StorageError, check_name, lookup

from .emit import emitted_so_far
from .store import EventLog

_log = logging.getLogger(__name__)
_LOOKUP_EVERY_S = 1.0
_REFRESH_S = 30.0  # a dispatcher killed for good and started anew is found again
DISPATCHER = "events"
"""The dispatcher actor's name."""


def check_nudge(resource: Any, seq: Any) -> None:
    """Refuse a malformed nudge (a forged call straight to the dispatcher).

    Raises:
        InvalidArgumentError: ``resource`` is not a resource name, or ``seq`` is not an
            int >= 0.
    """
    try:
        check_name("resource", resource)
    except Exception as error:
        raise InvalidArgumentError(f"a nudge names a resource, not {resource!r}") from error
    if type(seq) is not int or seq < 0:
        raise InvalidArgumentError(f"a nudge carries an event number >= 0, not {seq!r}")


class Nudger:
    """The resource's side: after each commit, nudge the dispatcher if the resource's
    newest event number moved. Never raises: delivery falls back to the poll."""

    def __init__(self, resource: str, root: Location, namespace: str) -> None:
        self._resource, self._namespace = resource, namespace
        self._root = root
        self._log: EventLog | None = None
        self._sent = 0
        self._tally = 0  # ``emitted_so_far()`` when last looked at
        self._waiting: set[asyncio.Future[None]] = set()
        self._dispatcher: Any = None
        self._looked_at = float("-inf")

    def committed(self, durable: Callable[[], Awaitable[None]] | None = None) -> None:
        """Called after each applied batch (the resource actor's event loop). If events
        were emitted since the last call, nudge once ``durable()`` returned (the batch's
        fsync: no subscriber is woken for a commit that is not on disk yet), at once
        without it. A batch that emitted nothing costs one comparison."""
        tally = emitted_so_far()
        if tally == self._tally:
            return
        self._tally = tally
        if durable is None:
            self._send()
            return
        waiting = asyncio.ensure_future(self._send_when(durable))
        self._waiting.add(waiting)  # a task nobody holds may be collected before it runs
        waiting.add_done_callback(self._waiting.discard)

    async def _send_when(self, durable: Callable[[], Awaitable[None]]) -> None:
        try:
            await durable()
        except StorageError:
            return  # the fsync failed: nobody is told of the commit
        self._send()

    def _send(self) -> None:
        try:
            if self._log is None:
                self._log = EventLog(self._root, self._resource)
            seq = self._log.last_seq()
        except StorageError:
            return
        if seq <= self._sent:
            return
        dispatcher = self._find()
        if dispatcher is not None:
            self._sent = seq
            dispatcher.nudge.remote(self._resource, seq)

    def _find(self) -> Any:
        since = time.monotonic() - self._looked_at
        if since >= _REFRESH_S or (self._dispatcher is None and since >= _LOOKUP_EVERY_S):
            self._looked_at, self._dispatcher = time.monotonic(), None
            try:
                namespace = self._namespace or ray.get_runtime_context().namespace
                self._dispatcher = lookup(DISPATCHER, namespace)
            except Exception as error:  # none runs (yet): the poll covers it
                _log.debug("no events dispatcher to nudge: %s", error)
        return self._dispatcher

    def close(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None
