"""Provenance at the resource: what a write's mark is believed as, its requirement, and
the marks of the stored values that reads report.

The trust rule (``policies.ProvenanceTrust``): a write claims a mark (the handle stamps
the mark its task derived), and the resource records the claim capped at what its writer
can vouch for: the driver (``"system"``) anything, a writer the resource class declares in
``vouchers`` up to its mark, any other agent UNVERIFIED_AGENT. So a VERIFIED claim sent
straight to the actor by an agent that cannot vouch for it is recorded as unverified, and
a ``@write(requires=...)`` above that is refused with ``ProvenanceError`` (logged as a
rejection with reason ``provenance`` and the call's trace).

Every log record carries the believed mark (the ``provenance`` column, added to older logs
by ``migrate``: their records read as unverified). The resource also keeps the mark of
each top-level key of its state (the mark of the write that last set it); a read reports
the weakest mark of the whole state, which never overstates what was read. Keys a
snapshot covers lose their marks on recovery and read as unverified until rewritten.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from policies import Provenance, ProvenanceTrust
from runtime import Connection, ProvenanceError

from .declare import Operation, Resource

UNKNOWN = Provenance.UNVERIFIED_AGENT
"""The mark of a stored value whose origin the resource no longer knows."""


def migrate(conn: Connection) -> None:
    """Add the ``provenance`` column to a log made before it existed (idempotent)."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(log)")}
    if "provenance" not in columns:
        conn.execute(f"ALTER TABLE log ADD COLUMN provenance TEXT NOT NULL DEFAULT '{UNKNOWN}'")


def trust_of(resource: Resource) -> ProvenanceTrust:
    """The trust rule of a resource class (its declared ``vouchers``)."""
    return ProvenanceTrust(vouchers=dict(type(resource).vouchers))


def refusal(resource: str, op: Operation, believed: Provenance) -> ProvenanceError | None:
    """The error refusing a write whose believed mark is weaker than its operation
    requires (the core logs it with reason ``provenance``), else None."""
    if op.requires is None or believed.at_least(op.requires):
        return None
    return ProvenanceError(f"{resource}:{op.name}", op.requires.value, believed.value)


class StateMarks:
    """The mark of each top-level key of a resource's state, and how many keys hold each
    mark, so the weakest is found in a constant number of steps."""

    def __init__(self, marks: dict[Any, Provenance]) -> None:
        self._marks = marks
        self._counts = Counter(marks.values())

    @classmethod
    def recovered(
        cls, state: dict[Any, Any], snapshot: bool, tail: Iterable[tuple[list[Any], str]]
    ) -> StateMarks:
        """Marks after recovery: the initial state is the system's; keys a snapshot
        covers are ``UNKNOWN``; the tail's ``(changes, mark)`` set the keys they wrote.
        Call it with the state before the tail is replayed."""
        marks = cls({key: UNKNOWN if snapshot else Provenance.SYSTEM for key in state})
        for changes, mark in tail:
            marks.note(changes, Provenance(mark))
        return marks

    def note(self, changes: list[list[Any]], mark: Provenance) -> None:
        """Keys a committed write changed (``[key, had, before, has, after]``) take its mark."""
        for key, _, _, has_after, _ in changes:
            old = self._marks.pop(key, None)
            if old is not None:
                self._counts[old] -= 1
            if has_after:
                self._marks[key] = mark
                self._counts[mark] += 1

    def weakest(self) -> Provenance:
        """The weakest mark of the state (SYSTEM when it is empty)."""
        for mark in sorted(Provenance, key=lambda m: m.rank):
            if self._counts[mark] > 0:
                return mark
        return Provenance.SYSTEM
