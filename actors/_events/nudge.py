"""The push nudge: after a commit that emitted events, the resource tells the dispatcher
"resource R committed up to seq N", so the dispatcher's partitions wake at once instead
of at the next poll.

A nudge is only a hint. The dispatcher still reads the resource's file for the events
and their newest number, so a lost nudge (the dispatcher restarting, not yet started,
the call dropped) delays events until the next poll and never loses one, and a forged
nudge wakes partitions for nothing. The resource never waits for the dispatcher: it
sends nothing while none runs, and looks for it again at most every ``_LOOKUP_EVERY_S``.

A nudge costs the resource a Ray call (about 1.4 ms of CPU, a batch of 50 writes takes
about 9), so the resource keeps at most one in flight: commits made meanwhile only raise
the newest number, sent in one call when the call in flight returns. The dispatcher's
answer says whether any consumer group could be woken; if none could, the resource sends
nothing for ``_QUIET_S`` (a group registered meanwhile is served by the poll).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import ray

from runtime import InvalidArgumentError, Location, StorageError, check_name, lookup

from .emit import emitted_so_far
from .store import EventLog

_log = logging.getLogger(__name__)
_LOOKUP_EVERY_S = 1.0
_REFRESH_S = 30.0  # a dispatcher killed for good and started anew is found again
_ANSWER_S = 5.0  # a nudge not answered by then counts as lost
_QUIET_S = 1.0  # no group could be woken: send nothing for this long
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
    newest event number moved, at most one call in flight. Never raises: delivery falls
    back to the poll. Runs on the resource actor's event loop."""

    def __init__(self, resource: str, root: Location, namespace: str) -> None:
        self._resource, self._namespace = resource, namespace
        self._root = root
        self._log: EventLog | None = None
        self._unsent = False  # a durable commit emitted since the last call was sent
        self._sent = 0  # the newest number a call carried
        self._tally = emitted_so_far(resource)  # when last looked at
        self._waiting: set[asyncio.Future[None]] = set()
        self._in_flight = False
        self._quiet_until = float("-inf")  # the dispatcher said no group could be woken
        self._dispatcher: Any = None
        self._looked_at = float("-inf")

    def committed(self, durable: Callable[[], Awaitable[None]] | None = None) -> None:
        """Called after each applied batch. If the resource emitted events since the last
        call, nudge once ``durable()`` returned (the batch's fsync: no subscriber is woken
        for a commit that is not on disk yet), at once without it. A batch that emitted
        nothing costs a look-up and a comparison."""
        tally = emitted_so_far(self._resource)
        if tally == self._tally:
            return
        self._tally = tally
        if durable is None:
            self._send()
            return
        self._keep(self._send_when(durable))

    def _keep(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._waiting.add(task)  # a task nobody holds may be collected before it runs
        task.add_done_callback(self._waiting.discard)

    async def _send_when(self, durable: Callable[[], Awaitable[None]]) -> None:
        try:
            await durable()
        except StorageError:
            return  # the fsync failed: nobody is told of the commit
        self._send()

    def _send(self) -> None:
        self._unsent = True
        self._pump()

    def _last_seq(self) -> int:
        """The resource's newest event number (7 us: a WAL read of its own file)."""
        if self._log is None:
            self._log = EventLog(self._root, self._resource)
        return self._log.last_seq()

    def _pump(self) -> None:
        """Send the newest number unless a call is in flight, nothing was committed
        since the last one, or the dispatcher said nobody could be woken. The number is
        read only here, when a call goes: a burst of commits behind a call in flight
        costs one read, not one per commit."""
        if self._in_flight or not self._unsent or time.monotonic() < self._quiet_until:
            return
        dispatcher = self._find()
        if dispatcher is None:
            return
        try:
            newest = self._last_seq()
        except StorageError:
            return  # tried again at the next commit; the poll covers it meanwhile
        self._unsent = False
        if newest <= self._sent:
            return
        self._sent, self._in_flight = newest, True
        self._keep(self._answer(dispatcher.nudge.remote(self._resource, newest)))

    async def _answer(self, call: Awaitable[Any]) -> None:
        """Wait for the call in flight (bounded: a call never answered must not silence
        the resource), then send what was committed meanwhile."""
        try:
            wakes = await asyncio.wait_for(call, _ANSWER_S)
        except Exception as error:  # lost: look the dispatcher up again; the poll covers
            _log.debug("nudge to the events dispatcher lost: %s", error)
            self._dispatcher, self._looked_at = None, time.monotonic()
        else:
            if wakes is False:
                self._quiet_until = time.monotonic() + _QUIET_S
        finally:
            self._in_flight = False
        self._pump()

    def _find(self) -> Any:
        """The dispatcher's handle, looked up at most every ``_LOOKUP_EVERY_S``; None
        outside Ray (a resource run as a plain object): asking Ray for the namespace
        there would start a Ray instance of its own."""
        if not ray.is_initialized():
            return None
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
