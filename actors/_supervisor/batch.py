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
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from runtime import InvalidArgumentError

from .types import Outcome, SubtaskSpec

MAX_BATCH = 10_000
"""The most subtasks one ``run_many`` call takes (a larger batch is refused whole)."""

Ended = list[tuple[str, Outcome | Exception]]
_log = logging.getLogger(__name__)


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
    order it ended, as many at once as ended together.

    Raises:
        InvalidArgumentError: the batch is malformed (see ``check_batch``); nothing of it
            was submitted.
    """
    pending: dict[asyncio.Future[Outcome], str] = {}
    for spec in check_batch(specs):
        task = asyncio.ensure_future(run(spec))
        task.add_done_callback(_retrieved)  # ended after the caller left: nothing to tell
        pending[task] = spec.subtask_id
    while pending:
        done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        ended: Ended = []
        for finished in done:
            subtask_id = pending.pop(finished)
            error = finished.exception()
            ended.append((subtask_id, finished.result() if error is None else _as_error(error)))
        yield ended


def _as_error(error: BaseException) -> Exception:
    return error if isinstance(error, Exception) else RuntimeError(repr(error))


def _retrieved(task: asyncio.Future[Outcome]) -> None:
    if not task.cancelled() and task.exception() is not None:
        _log.debug("a batched subtask's submit failed: %s", task.exception())
