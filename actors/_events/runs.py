"""``EventRun``: what a batch handler (``@subscribe(EventType, batch=True)``) takes: the
consecutive events of one delivered batch that passed its ``where``, in order.

A batch handler's writes must stay exactly once when a redelivery cuts the events into
other batches (after a crash the dispatcher reads again from the checkpoint, so a run
may start or end elsewhere). So a write belongs to an event, never to a run: a ``for``
loop over the run makes each event's task current while the loop is at it (the task a
per-event handler runs as, ``event:<group>:<event id>``, so the same write gets the same
idempotency key however the events were cut), and outside the loop there is no task: a
write, a model call or a delegation there is a ``ConfigurationError``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar, overload

from pydantic import BaseModel

from runtime import ConfigurationError, Envelope

from .._agent.task import TaskContext, current_task

E = TypeVar("E", bound=BaseModel)


def _no_event(handler: str) -> Envelope:
    raise ConfigurationError(
        f"{handler} is a batch handler: its writes, model calls and delegations belong to "
        "an event, inside its loop over the events ('for event in events:'), not to the "
        "batch (whose cut changes when the events are delivered again)"
    )


def outside_events(handler: str) -> TaskContext:
    """The task current in a batch handler outside its loop over the events: none (its
    envelope is a ``ConfigurationError``)."""
    return TaskContext(None, _no_event, handler)


class EventRun(Sequence[E]):
    """The events a batch handler takes, in order: a read-only sequence.

    Iterating it (``for event in events:``) makes each event's task current while the
    loop is at that event, and the task from before the loop current again once it ends (a
    second loop over the run continues the same tasks, so their writes' keys never
    repeat); indexing does not.
    """

    __slots__ = ("_events", "_positions", "_task", "_tasks")

    def __init__(
        self, events: list[E], positions: Sequence[int],
        task: tuple[Callable[..., Envelope], Any, Any],
    ) -> None:  # fmt: skip
        """``events`` are the batch's events at ``positions``; event ``i``'s task makes its
        envelope with ``make(group, batch, i)``, ``task`` being ``(make, group, batch)``."""
        self._events, self._positions = events, positions
        self._task = task
        self._tasks: list[TaskContext] = []  # made as a loop first reaches each event

    def __len__(self) -> int:
        return len(self._events)

    @overload
    def __getitem__(self, index: int) -> E: ...

    @overload
    def __getitem__(self, index: slice) -> list[E]: ...

    def __getitem__(self, index: int | slice) -> E | list[E]:
        return self._events[index]

    def __iter__(self) -> Iterator[E]:
        tasks, (make, group, batch), positions = self._tasks, self._task, self._positions
        before = current_task.get()  # outside the loop, or an outer loop's event
        for k, event in enumerate(self._events):
            if k == len(tasks):
                tasks.append(TaskContext(None, make, group, batch, positions[k]))
            current_task.set(tasks[k])
            yield event
        current_task.set(before)

    def __repr__(self) -> str:
        return f"EventRun({self._events!r})"
