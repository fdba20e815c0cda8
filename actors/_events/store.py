"""The events table in a resource's store (its SQLite file or PostgreSQL schema): written
in the resource's commit, read by the dispatcher, trimmed by the resource under the
retention rule (docs/events.md)."""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from runtime import (
    Connection,
    DatabaseErrors,
    InvalidArgumentError,
    Location,
    MalformedEventError,
    StorageError,
    check_name,
    connect,
    connect_read_only,
    transaction,
)

from .emit import EventRow as EventRow

M = TypeVar("M", bound=BaseModel)

# AUTOINCREMENT: a sequence number is never reused, even once retention deleted every
# row; it is assigned inside the commit, so a rolled-back commit leaves no gap. No other
# index: every query reads a range of ``seq`` (types are filtered in that range, which
# starts at a checkpoint that moves past unmatched events), and each index would be paid
# by every write that emits. ``event_id`` is unique by construction (version, index).
# On PostgreSQL the number is an identity column: a rolled-back commit may leave a gap
# there (order and exactly-once do not depend on it). ``events_trimmed`` keeps the
# highest number retention deleted (one row), so the newest number is read from
# committed rows on both backends and never goes down.
SCHEMA = """
CREATE TABLE IF NOT EXISTS events(
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    type TEXT NOT NULL,
    payload BLOB NOT NULL,
    trace_id TEXT NOT NULL,
    provenance TEXT NOT NULL,
    writer TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_trace ON events(trace_id, seq);
CREATE TABLE IF NOT EXISTS events_trimmed(id INTEGER PRIMARY KEY, upto INTEGER NOT NULL);
"""
_CONTRACT_COLUMNS = {
    "contract": "TEXT NOT NULL DEFAULT ''",
    "contract_version": "INTEGER NOT NULL DEFAULT 0",
}
_BASE = "seq, event_id, version, type, payload, trace_id, provenance, writer, at"
_COLUMNS = f"{_BASE}, contract, contract_version"
_INSERT = (
    "INSERT INTO events(event_id, version, type, payload, trace_id, provenance, writer, at, "
    "contract, contract_version) VALUES"
)
_ROW_MARKS = "(?,?,?,?,?,?,?,?,?,?)"
_ROWS_PER_STATEMENT = 99
"""990 bound values: under SQLite's default limit before 3.32 (999). A statement's text
names its row count, so at most this many texts are prepared and cached."""


def migrate(conn: Connection) -> None:
    """Add the contract columns to an events table made before they existed (every
    table goes through here; idempotent): its old rows read as unversioned (``""``,
    0)."""
    have = {row[1] for row in conn.execute("PRAGMA table_info(events)")}
    for column, declared in _CONTRACT_COLUMNS.items():
        if column not in have:
            conn.execute(f"ALTER TABLE events ADD COLUMN {column} {declared}")


def insert(conn: Connection, rows: Sequence[EventRow]) -> None:
    """Store ``rows``, in order, inside the caller's (the commit's) transaction.

    One multi-row statement per up to ``_ROWS_PER_STATEMENT`` rows, not one execution
    per row: SQLite reads and rewrites the ``AUTOINCREMENT`` counter once per statement
    executed, and those per-row steps were about 3 of the 18 us of CPU an event added to
    a write (``tests/event_write_costs.py``). Both backends number the rows of one
    ``VALUES`` list in its order."""
    for start in range(0, len(rows), _ROWS_PER_STATEMENT):
        chunk = rows[start : start + _ROWS_PER_STATEMENT]
        marks = ",".join((_ROW_MARKS,) * len(chunk))
        conn.execute(f"{_INSERT}{marks}", list(chain.from_iterable(chunk)))


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One committed event.

    Attributes:
        resource: the resource whose write emitted it.
        seq: its place in the resource's events: 1, 2, 3, ... with no gap.
        event_id: ``<resource>:<version>:<index>``, stable across deliveries.
        version: the version of the write that emitted it.
        type: the event's type name (its pydantic class name).
        payload: the event, as JSON.
        trace_id: the trace of the write. provenance: the write's mark.
        writer: who wrote. at: when the write committed (ISO 8601, UTC).
        contract, contract_version: the contract the event's class spoke when it was
            emitted (``@contract(name, version=)``); ``""`` and 0: none (or stored
            before events named their contract).
    """

    resource: str
    seq: int
    event_id: str
    version: int
    type: str
    payload: bytes
    trace_id: str
    provenance: str
    writer: str
    at: str
    contract: str = ""
    contract_version: int = 0

    def model(self, cls: builtins.type[M]) -> M:
        """The event as ``cls``.

        Raises:
            MalformedEventError: the payload does not validate as ``cls``.
        """
        try:
            return cls.model_validate_json(self.payload)
        except ValidationError as error:
            raise MalformedEventError(self.type, f"not a {cls.__name__}: {error}") from error


def events_path(root: Location, resource: str) -> Location:
    """The store holding ``resource``'s log and events."""
    return root / "resources" / f"{check_name('resource', resource)}.sqlite"


class EventLog:
    """A read-only view of one resource's events (the dispatcher's, ``agentcast``'s).

    Opening never creates the store; reads see every committed event and never block
    the resource's writer (WAL readers; PostgreSQL's snapshots).

    Raises:
        StorageError: the resource has no store here (``runtime.connect_read_only``).
    """

    def __init__(self, root: Location, resource: str) -> None:
        self.resource = resource
        self.path = events_path(root, resource)
        self._conn: Connection = connect_read_only(self.path)

    def close(self) -> None:
        self._conn.close()

    def read(
        self, *, after: int = 0, types: Iterable[str] | None = None, limit: int = 1000
    ) -> list[EventRecord]:
        """Up to ``limit`` events with ``seq > after``, in order; only ``types`` if given.

        Raises:
            StorageError: the file could not be read.
        """
        sql, params = f"SELECT {_COLUMNS} FROM events WHERE seq > ?", list[Any]([after])
        if types is not None:
            wanted = sorted(set(types))
            sql += f" AND type IN ({','.join('?' * len(wanted))})"
            params.extend(wanted)
        try:
            rows = self._read(sql + " ORDER BY seq LIMIT ?", [*params, limit])
        except _OldTable:  # not yet migrated by its resource: unversioned events
            old = sql.replace(_COLUMNS, _BASE, 1)
            rows = self._read(old + " ORDER BY seq LIMIT ?", [*params, limit])
        return [EventRecord(self.resource, *row) for row in rows]

    def last_seq(self) -> int:
        """The newest event's sequence number (0 before any: retention never lowers it).

        Raises:
            StorageError: the file could not be read.
        """
        rows = self._read(_LAST_SEQ, [])
        return int(rows[0][0]) if rows and rows[0][0] is not None else 0

    def _read(self, sql: str, params: Sequence[Any]) -> list[Any]:
        try:
            return list(self._conn.execute(sql, params).fetchall())
        except DatabaseErrors as error:
            text = str(error)
            if "no such column: contract" in text or 'column "contract" does not exist' in text:
                raise _OldTable from error
            if "no such table" in text or "does not exist" in text:
                return []  # a resource store from before events existed: no events yet
            raise StorageError(f"reading events of {self.path} failed: {error}") from error


class _OldTable(StorageError):
    """An events table its resource has not migrated yet (``migrate``)."""


def trim(conn: Connection, upto: int, before: str, limit: int) -> int:
    """Delete at most ``limit`` events with ``seq <= upto`` committed before ``before``
    (every consumer group is past them and the window elapsed). Returns how many.

    Raises:
        StorageError: nothing was deleted.
    """
    with transaction(conn, "trimming events failed"):
        newest = conn.execute("SELECT MAX(seq) FROM events").fetchone()[0]
        if newest is not None:  # the newest number outlives its row (``last_seq``)
            conn.execute(_KEEP_NEWEST, (newest,))
        deleted: int = conn.execute(
            "DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE seq <= ? "
            "AND at < ? ORDER BY seq LIMIT ?)",
            (upto, before, limit),
        ).rowcount
        return deleted


_KEEP_NEWEST = (
    "INSERT INTO events_trimmed(id, upto) VALUES(1, ?) "
    "ON CONFLICT(id) DO UPDATE SET upto=max(upto, excluded.upto)"
)
_LAST_SEQ = (
    "SELECT MAX(n) FROM (SELECT MAX(seq) AS n FROM events "
    "UNION ALL SELECT upto AS n FROM events_trimmed) AS newest"
)


def trim_file(path: Location, upto: int, before: str, limit: int) -> int:
    """``trim`` on the resource store at ``path`` (the resource actor's call, asked by the
    dispatcher).

    Raises:
        InvalidArgumentError: ``upto`` or ``limit`` is not an int >= 0, ``before`` not a
            str.
        StorageError: nothing was deleted.
    """
    if not (type(upto) is int and type(limit) is int and upto >= 0 and limit >= 0):
        raise InvalidArgumentError(f"trim needs ints >= 0, not {upto!r}, {limit!r}")
    if not isinstance(before, str):
        raise InvalidArgumentError(f"trim needs an ISO time, not {before!r}")
    conn = connect(path)
    try:
        return trim(conn, upto, before, limit)
    finally:
        conn.close()
