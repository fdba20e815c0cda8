"""The task a handler is running: its envelope and the counter of its calls, in a
context variable (so an agent's resource handles and model calls find them)."""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from runtime import Envelope


class TaskContext:
    """What the runtime knows about the task a handler is running.

    Attributes:
        envelope: the task's envelope; given, or built by ``make(*args)`` on first use
            (an event's handler that never writes nor calls a model never pays for one).
        calls: how many calls the task has made (the next call's index, which its
            idempotency key carries).
    """

    __slots__ = ("_args", "_envelope", "_make", "calls")

    def __init__(
        self, envelope: Envelope | None = None, make: Callable[..., Envelope] | None = None,
        *args: Any,
    ) -> None:  # fmt: skip
        # Positional, no partial: one is made per delivered event (a keyword and a
        # partial cost twice the time of the rest of it).
        if envelope is None and make is None:
            raise TypeError("a TaskContext needs an envelope or a way to make one")
        self._envelope = envelope
        self._make = make
        self._args = args
        self.calls = 0

    @property
    def envelope(self) -> Envelope:
        envelope = self._envelope
        if envelope is None:
            assert self._make is not None
            envelope = self._envelope = self._make(*self._args)
        return envelope

    def next_call(self) -> int:
        """The index of the task's next call (0, 1, ... in the order it makes them)."""
        index, self.calls = self.calls, self.calls + 1
        return index


current_task: ContextVar[TaskContext | None] = ContextVar("agentcast_task", default=None)


def current_run() -> str:
    """The run (trace id) of the task being handled; ``"driver"`` outside a handler."""
    task = current_task.get()
    return "driver" if task is None else task.envelope.trace_id
