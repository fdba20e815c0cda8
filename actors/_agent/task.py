"""The task a handler is running: its envelope and the counter of its calls, in a
context variable (so an agent's resource handles and model calls find them)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from contextvars import ContextVar

from runtime import Envelope


class TaskContext:
    """What the runtime knows about the task a handler is running.

    Attributes:
        envelope: the task's envelope; given, or built by ``make`` on first use (an
            event's handler that never writes nor calls a model never pays for one).
        calls: the index of the task's next call (its idempotency keys).
    """

    __slots__ = ("_envelope", "_make", "calls")

    def __init__(
        self, envelope: Envelope | None = None, *, make: Callable[[], Envelope] | None = None
    ) -> None:
        if envelope is None and make is None:
            raise TypeError("a TaskContext needs an envelope or a way to make one")
        self._envelope = envelope
        self._make = make
        self.calls: Iterator[int] = itertools.count()

    @property
    def envelope(self) -> Envelope:
        envelope = self._envelope
        if envelope is None:
            assert self._make is not None
            envelope = self._envelope = self._make()
        return envelope


current_task: ContextVar[TaskContext | None] = ContextVar("agentcast_task", default=None)


def current_run() -> str:
    """The run (trace id) of the task being handled; ``"driver"`` outside a handler."""
    task = current_task.get()
    return "driver" if task is None else task.envelope.trace_id
