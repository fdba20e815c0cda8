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
each top-level key of its state (the mark of the write that last set it, or that deleted
it), saved with each snapshot. A read that names the keys it reads (``@read(keys=...)``)
reports the weakest mark of those keys; any other read the weakest of the whole state;
neither overstates what was read. A snapshot saved before marks were (an old log) gives
its keys ``UNKNOWN`` on recovery until they are rewritten.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from policies import Provenance, ProvenanceTrust, weakest
from runtime import Connection, ProvenanceError, decode, encode

from .declare import Operation, Resource

if TYPE_CHECKING:
    from .recovery import Recovered

UNKNOWN = Provenance.UNVERIFIED_AGENT
"""The mark of a stored value whose origin the resource no longer knows."""

MAX_GONE = 10_000
"""Deleted keys whose mark is kept; older ones fold into the mark of every absent key."""


def migrate(conn: Connection) -> None:
    """Add the ``provenance`` column to a log, and the ``marks`` column to its snapshot
    table, made before they existed (idempotent): old records read as ``UNKNOWN``, the
    keys of an old snapshot too."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(log)")}
    if "provenance" not in columns:
        conn.execute(f"ALTER TABLE log ADD COLUMN provenance TEXT NOT NULL DEFAULT '{UNKNOWN}'")
    if "marks" not in {row[1] for row in conn.execute("PRAGMA table_info(snapshot)")}:
        conn.execute("ALTER TABLE snapshot ADD COLUMN marks BLOB")


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
    """The mark of each top-level key of a resource's state (the mark of the write that
    last set it), how many keys hold each mark (so the weakest is found in a constant
    number of steps), the marks of recently deleted keys, and the mark of any other
    absent key (SYSTEM until something is forgotten: then the weakest forgotten)."""

    def __init__(
        self, marks: dict[Any, Provenance], *, gone: dict[Any, Provenance] | None = None,
        absent: Provenance = Provenance.SYSTEM,
    ) -> None:  # fmt: skip
        self._marks = marks
        self._counts = Counter(marks.values())
        self._gone = gone or {}
        self._absent = absent

    @classmethod
    def recovered(
        cls, state: dict[Any, Any], recovered: Recovered, tail: Iterable[tuple[list[Any], str]]
    ) -> StateMarks:
        """Marks after recovery, from the state before the tail is replayed: the initial
        state is the system's; a snapshot's keys take the marks saved with it (all
        ``UNKNOWN`` in a snapshot saved before marks were, or for a key it lacks); the
        tail's ``(changes, mark)`` set the keys they wrote."""
        if recovered.snapshot_marks is not None:
            marks = cls.loaded(state, decode(recovered.snapshot_marks))
        else:
            fallback = UNKNOWN if recovered.snapshot_state else Provenance.SYSTEM
            marks = cls({key: fallback for key in state}, absent=fallback)
        for changes, mark in tail:
            marks.note(changes, Provenance(mark))
        return marks

    @classmethod
    def loaded(cls, state: dict[Any, Any], saved: dict[str, Any]) -> StateMarks:
        """The marks ``saved`` returned, for the keys of ``state``."""
        keys = {key: Provenance(m) for m, listed in saved["keys"].items() for key in listed}
        gone = {key: Provenance(m) for m, listed in saved["gone"].items() for key in listed}
        marks = {key: keys.get(key, UNKNOWN) for key in state}
        return cls(marks, gone=gone, absent=Provenance(saved["absent"]))

    def saved(self) -> bytes:
        """The marks in the form a snapshot keeps them (keys grouped by mark)."""
        keys: dict[str, list[Any]] = {}
        for key, mark in self._marks.items():
            keys.setdefault(mark.value, []).append(key)
        gone: dict[str, list[Any]] = {}
        for key, mark in self._gone.items():
            gone.setdefault(mark.value, []).append(key)
        return encode({"keys": keys, "gone": gone, "absent": self._absent.value})

    def note(self, changes: list[list[Any]], mark: Provenance) -> None:
        """Keys a committed write changed (``[key, had, before, has, after]``) take its
        mark; a deleted key keeps it among the gone (the oldest forgotten past
        ``MAX_GONE``, its mark folded into that of every absent key)."""
        for key, _, _, has_after, _ in changes:
            old = self._marks.pop(key, None)
            if old is not None:
                self._counts[old] -= 1
            self._gone.pop(key, None)
            if has_after:
                self._marks[key] = mark
                self._counts[mark] += 1
            else:
                self._gone[key] = mark
        while len(self._gone) > MAX_GONE:
            forgotten = self._gone.pop(next(iter(self._gone)))
            self._absent = weakest(self._absent, forgotten)

    def weakest(self) -> Provenance:
        """The weakest mark of the state (SYSTEM when it is empty)."""
        for mark in _BY_RANK:
            if self._counts[mark] > 0:
                return mark
        return Provenance.SYSTEM

    def of(self, key: Any) -> Provenance:
        """The mark of one top-level key, present or absent."""
        found = self._marks.get(key)
        if found is None:
            found = self._gone.get(key, self._absent)
        return found

    def of_read(self, op: Operation, args: list[Any], kwargs: dict[str, Any]) -> Provenance:
        """The mark of what a read returns: the weakest of the keys it names
        (``@read(keys=...)``), else of the whole state (never stronger than what it read)."""
        keys = keys_read(op, args, kwargs)
        if keys is None:
            return self.weakest()
        return weakest(self.of(key) for key in keys)


def keys_read(op: Operation, args: list[Any], kwargs: dict[str, Any]) -> list[Any] | None:
    """The top-level state keys a read names: the value of its ``keys`` argument (one
    key, or a list or tuple of keys) or what its ``keys`` callable returns; None for a
    read that names none, or arguments that do not give them (the read answers for the
    whole state then)."""
    named = op.entity
    if named is None:
        return None
    try:
        if callable(named):
            value = named(*args, **kwargs)
        elif named in kwargs:
            value = kwargs[named]
        else:
            bound = op.signature.bind(None, None, *args, **kwargs)
            bound.apply_defaults()
            value = bound.arguments[named]
    except Exception:
        return None
    listed = list(value) if isinstance(value, (list, tuple)) else [value]
    return listed if all(type(key) in (str, int) for key in listed) else None


_BY_RANK = sorted(Provenance, key=lambda m: m.rank)
