"""The decision-log versions a task was briefed with, stamped on every write it makes.

The agent host enters ``briefing`` with the task's ``Envelope.briefed``; a driver enters it
itself (``Decisions.briefed``); an event's task starts briefed on nothing (``unbriefed``).
Each write made inside carries the pairs on the wire (like its constraints), and a
resource checks a ``fresh_context`` write against the decision log's newest version of
its topic (``freshness.py``). Reading a decision inside a task briefs the task on it
(``learned``): the agent now knows that version.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from runtime import MAX_BRIEFED_TOPICS, checked_briefing


@dataclass(frozen=True, slots=True)
class Heads:
    """The decision log's latest versions of some topics, as read at the log's version
    ``at`` (``freshness.py`` catches up from there when the write is applied)."""

    at: int
    topics: tuple[tuple[str, int], ...]


_BRIEFED: ContextVar[dict[str, int] | None] = ContextVar("agentcast_briefed", default=None)


def briefed_now() -> tuple[tuple[str, int], ...]:
    """The sorted ``(topic, version)`` pairs of the briefing in force (none outside one)."""
    current = _BRIEFED.get()
    return () if not current else tuple(sorted(current.items()))


@contextmanager
def briefing(
    briefed: Mapping[str, int] | tuple[tuple[str, int], ...] | list[tuple[str, int]],
) -> Iterator[None]:
    """Stamp ``briefed`` (topic -> version) on every write made inside the block.

    Raises:
        InvalidArgumentError: not at most ``MAX_BRIEFED_TOPICS`` (topic, version) pairs
            (a forged or malformed envelope).
    """
    token = _BRIEFED.set(dict(checked_briefing(briefed)))
    try:
        yield
    finally:
        _BRIEFED.reset(token)


def unbriefed() -> None:
    """A new task briefed on nothing starts here: an event's, since an event carries no
    briefing (what its handler reads briefs it). Only inside ``briefing``, which sets the
    briefing from before back when it ends."""
    _BRIEFED.set({})


def learned(topic: str, version: int) -> None:
    """The running task has read ``version`` of ``topic``: it is briefed on it from now on
    (never lowered). Nothing happens outside a briefing, or past ``MAX_BRIEFED_TOPICS``
    (the task's writes are then judged on what it was briefed with: refused if stale)."""
    current = _BRIEFED.get()
    if current is None or (topic not in current and len(current) >= MAX_BRIEFED_TOPICS):
        return
    current[topic] = max(current.get(topic, 0), version)
