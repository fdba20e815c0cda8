"""What the task being handled was derived from, and so the provenance of what it makes.

A handler starts at its input envelope's mark; each thing it reads lowers it (``note``):
a resource read to the weakest mark of that resource's state, a model call to
UNVERIFIED_AGENT. Its writes, the subtasks it delegates and its output carry the result
(``derived``). Outside a handler (the driver) the mark is SYSTEM.
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from typing import Any

from policies import Provenance, weakest
from runtime import Envelope

from .._budget import admission

MAX_SOURCES = 32
"""Most source ids kept per task: the audit names the first ones, the mark counts them all."""


@dataclass(slots=True)
class Derivation:
    """The running mark of one task and the ids of what lowered or fed it."""

    mark: Provenance
    sources: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Produced:
    """A handler's output as it goes back to the supervisor, with the mark its run derived
    (the supervisor believes the mark only up to what the agent can vouch for)."""

    output: Any
    provenance: Provenance
    sources: tuple[str, ...] = ()


_current: ContextVar[Derivation | None] = ContextVar("agentcast_derivation", default=None)


def begin(envelope: Envelope) -> Token[Derivation | None]:
    """Start tracking a handler run under ``envelope`` (reset with ``end``)."""
    return _current.set(Derivation(envelope.provenance, [f"task:{envelope.task_id}"]))


def end(token: Token[Derivation | None]) -> None:
    """Stop tracking the run ``begin`` started."""
    _current.reset(token)


def note(mark: Provenance, source: str) -> None:
    """The running task read something marked ``mark`` from ``source``."""
    current = _current.get()
    if current is None:
        return
    if mark is not current.mark:  # the same mark again (every model reply) lowers nothing
        current.mark = weakest(current.mark, mark)
    if len(current.sources) < MAX_SOURCES and source not in current.sources:
        current.sources.append(source)


def vouch(checked_against: tuple[str, ...]) -> bool:
    """Raise the running task's mark to VERIFIED (a verifier checked it); False outside
    a task. Only ``Agent.vouch`` calls it, for agents declared ``verifier``."""
    current = _current.get()
    if current is None:
        return False
    current.mark = Provenance.VERIFIED
    # A leased call under an admission token skips a note that changed nothing; after a
    # raise it would change the mark again: every task's next call notes afresh.
    admission.revoke_all()
    for source in checked_against:
        if len(current.sources) < MAX_SOURCES and source not in current.sources:
            current.sources.append(source)
    return True


def derived() -> Provenance:
    """The mark of what the running task makes now (SYSTEM outside a task)."""
    current = _current.get()
    return Provenance.SYSTEM if current is None else current.mark


def sources() -> tuple[str, ...]:
    """The ids of what the running task has read so far."""
    current = _current.get()
    return () if current is None else tuple(current.sources)
