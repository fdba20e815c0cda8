"""Many subtasks in one call to the supervisor, their outcomes streamed back as they end.

One subtask submitted alone costs the caller one actor call (``run``): on two cores that
call costs as much as the supervisor's call into the agent. ``run_many`` takes a batch of
specs in one call, submits each exactly as ``run`` does (a known id is joined, not run
again; the new ones are stored in the same group commit), and yields, each time at least
one of them ends, the list of ``(subtask_id, outcome)`` that ended since the last yield: a
Ray streaming generator, so the caller sees each outcome when it is final and stored, not
when the slowest of the batch is. A subtask whose ``submit`` raised (its storage failed)
yields the error in place of its outcome. If the caller goes away, the subtasks go on: they
are stored and driven by the supervisor, like a subtask whose ``result`` timed out.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from runtime import InvalidArgumentError

from .types import Outcome, SubtaskSpec

MAX_BATCH = 10_000
"""The most subtasks one ``run_many`` call takes (a larger batch is refused whole)."""

Ended = list[tuple[str, Outcome | Exception]]
_RUNNING: set[asyncio.Future[Outcome]] = set()


def check_batch(specs: Any) -> list[SubtaskSpec]:
    """The batch, checked before anything of it is submitted.

    Raises:
        InvalidArgumentError: not a list of ``SubtaskSpec``, empty, or longer than
            ``MAX_BATCH``.
    """
    if not isinstance(specs, list) or not specs:
        raise InvalidArgumentError("run_many takes a non-empty list of subtask specs")
    if len(specs) > MAX_BATCH:
        raise InvalidArgumentError(f"run_many takes at most {MAX_BATCH} specs, got {len(specs)}")
    for spec in specs:
        if not isinstance(spec, SubtaskSpec):
            raise InvalidArgumentError(f"run_many: not a subtask spec: {type(spec).__name__}")
    return specs


async def stream_outcomes(
    run: Callable[[SubtaskSpec], Awaitable[Outcome]], specs: Any
) -> AsyncIterator[Ended]:
    """Run every spec with ``run`` (``SupervisorCore.run``) and yield what ended, in the
    order it ended, as many at once as ended together. Each subtask's end is put on one
    list by its task's callback (waiting on all N tasks at each turn would cost O(N) per
    end: ``asyncio.wait`` took a quarter of the supervisor's time at N = 2,000).

    Raises:
        InvalidArgumentError: the batch is malformed (see ``check_batch``); nothing of it
            was submitted.
    """
    ended: Ended = []
    woken = asyncio.Event()

    def note(subtask_id: str, task: asyncio.Future[Outcome]) -> None:
        _RUNNING.discard(task)
        error = asyncio.CancelledError() if task.cancelled() else task.exception()
        ended.append((subtask_id, task.result() if error is None else _as_error(error)))
        woken.set()

    left = len(check_batch(specs))
    for spec in specs:
        task = asyncio.ensure_future(run(spec))
        _RUNNING.add(task)  # held until it ends, even if the caller left
        task.add_done_callback(functools.partial(note, spec.subtask_id))
    while left:
        await woken.wait()
        woken.clear()
        batch, ended[:] = list(ended), []
        left -= len(batch)
        yield batch


def _as_error(error: BaseException) -> Exception:
    return error if isinstance(error, Exception) else RuntimeError(repr(error))
