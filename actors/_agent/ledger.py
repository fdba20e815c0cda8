"""The outcomes of the attempts a replica ran, by span id: a supervisor that restarted while
an attempt ran asks for its outcome here, to record it (as late) in the subtask's history."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from concurrent.futures import Future
from typing import Any

from runtime import ConfigurationError

# Outcomes kept after their attempt ended: enough to cover a supervisor restart.
_KEEP = 1024


class AttemptLedger:
    """Running attempts (a future each) and the last ``_KEEP`` outcomes.

    Handlers and control calls run on different event loops (one per concurrency group),
    so the futures are thread-safe ones."""

    def __init__(self) -> None:
        self._running: dict[str, Future[None]] = {}
        self._ended: OrderedDict[str, tuple[Any, BaseException | None]] = OrderedDict()

    def begin(self, span_id: str) -> None:
        """The attempt ``span_id`` started."""
        self._running[span_id] = Future()

    def end(self, span_id: str, output: Any = None, error: BaseException | None = None) -> None:
        """The attempt ``span_id`` ended with ``output`` or ``error``."""
        self._ended[span_id] = (output, error)
        while len(self._ended) > _KEEP:
            self._ended.popitem(last=False)
        waiting = self._running.pop(span_id, None)
        if waiting is not None and not waiting.done():
            waiting.set_result(None)

    async def outcome(self, span_id: str) -> Any:
        """The output of attempt ``span_id``, once it ended.

        Raises:
            ConfigurationError: this replica does not know the attempt.
            BaseException: the error the attempt raised.
        """
        waiting = self._running.get(span_id)
        if waiting is not None:
            await asyncio.shield(asyncio.wrap_future(waiting))
        if span_id not in self._ended:
            raise ConfigurationError(f"no attempt {span_id!r} on this replica")
        output, error = self._ended[span_id]
        if error is not None:
            raise error
        return output
