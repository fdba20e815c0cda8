"""Work the supervisor runs beside its calls: awaiting attempts, committing, publishing."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

_log = logging.getLogger(__name__)


def shutting_down() -> bool:
    """Whether the running task itself is being cancelled (the event loop is closing), as
    opposed to what it awaits."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


class Background:
    """Runs coroutines as tasks of the running loop and keeps a reference to each until it
    ends (the loop keeps only weak ones); a task that fails is logged, not lost."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        """Run ``work`` in the background."""
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            _log.error("supervisor task failed", exc_info=task.exception())
