"""The budget's durable log: one SQLite file, ``<root>/budget.sqlite``, of events in order.

The log is the truth: the budget actor's books are the last snapshot with the events after
it replayed. A batch of events is one transaction, committed before any caller of the batch
hears back. A snapshot is one row, written before the events it covers may be deleted
(only those older than the log's retention are), so a crash between the two loses nothing.
Each opening of the file counts as an incarnation.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from policies import Durability
from runtime import DatabaseErrors, Location, StorageError, connect, transaction, truncate_wal

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    kind TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS snapshot (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    seq INTEGER NOT NULL,
    data TEXT NOT NULL
);
-- agentcast trace: the grants and charges of one run, and the settles of a grant.
CREATE INDEX IF NOT EXISTS events_run ON events (json_extract(data, '$.ctx.run'));
CREATE INDEX IF NOT EXISTS events_grant ON events (json_extract(data, '$.id'));
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class BudgetEvent:
    """One event of the budget's durable log.

    Attributes:
        seq: its position, from 1, without gaps (events older than the log's retention
            that a snapshot covers are deleted from the front).
        at: wall-clock time it was applied, in seconds since the epoch.
        kind: ``declare`` (a cap: ``kind``, ``key``, ``dim``, ``cap``), ``grant`` (``id``,
            ``ctx``, ``amounts``, ``ledgers``, ``expires_at``, ``holder``), ``settle``
            (``id``, ``used``), ``expire`` (``id``, ``why``: ``expired`` or ``killed``; the
            grant is charged in full) or ``charge`` (``ctx``, ``amounts``, ``ledgers``; a
            retry, or with ``late`` the correction of a grant charged in full) for the
            books; ``breaker``, ``incident`` or ``cleared`` for the breakers and the error
            registry.
        data: its fields, as listed.
    """

    seq: int
    at: float
    kind: str
    data: dict[str, Any]


class BudgetStore:
    """Appends and reads the events of ``<root>/budget.sqlite``.

    Raises:
        StorageError: the file cannot be opened.
    """

    def __init__(self, root: Location, durability: Durability = Durability.FULL) -> None:
        self.path = root / "budget.sqlite"
        try:
            self._conn = connect(self.path, durability)
            self._conn.executescript(_SCHEMA)
            self._conn.execute(
                "INSERT INTO meta (key, value) VALUES ('incarnation', 1) "
                "ON CONFLICT (key) DO UPDATE SET value = value + 1"
            )
            row = self._conn.execute("SELECT value FROM meta WHERE key = 'incarnation'")
            self.incarnation: int = row.fetchone()[0]
        except DatabaseErrors as error:
            raise StorageError(f"budget: cannot open {self.path}: {error}") from error
        self.snapshot_seq = 0

    def events(self, after: int = 0, limit: int | None = None) -> Iterator[BudgetEvent]:
        """The events after position ``after`` (at most ``limit``), oldest first."""
        rows = self._conn.execute(
            "SELECT seq, at, kind, data FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
            (after, -1 if limit is None else limit),
        )
        for seq, at, kind, data in rows:
            yield BudgetEvent(seq, at, kind, json.loads(data))

    def load_snapshot(self) -> dict[str, Any] | None:
        """The last snapshot's data (its position is then ``snapshot_seq``), or None."""
        row = self._conn.execute("SELECT seq, data FROM snapshot").fetchone()
        if row is None:
            return None
        self.snapshot_seq = int(row[0])
        found: dict[str, Any] = json.loads(row[1])
        return found

    def save_snapshot(self, data: dict[str, Any], *, keep_after: float) -> None:
        """Store ``data`` as the state after the last event, then delete the events it
        covers that were logged before ``keep_after``.

        Raises:
            StorageError: the snapshot could not be written.
        """
        try:
            seq = self._conn.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0]
            text = json.dumps(data, separators=(",", ":"))
            self._conn.execute(
                "INSERT OR REPLACE INTO snapshot (one, seq, data) VALUES (1, ?, ?)", (seq, text)
            )
            # The last event stays: positions go on from it (a rowid restarts when empty).
            self._conn.execute("DELETE FROM events WHERE seq < ? AND at < ?", (seq, keep_after))
        except DatabaseErrors as error:
            raise StorageError(f"budget: snapshot failed: {error}") from error
        self.snapshot_seq = seq

    def append(self, events: list[tuple[float, str, dict[str, Any]]]) -> None:
        """Commit ``(at, kind, data)`` events in one transaction.

        Raises:
            StorageError: the transaction failed; none of the events is stored.
        """
        if not events:
            return
        rows = [(at, kind, json.dumps(data, separators=(",", ":"))) for at, kind, data in events]
        with transaction(self._conn, "budget: commit failed") as conn:
            conn.executemany("INSERT INTO events (at, kind, data) VALUES (?, ?, ?)", rows)

    def truncate_wal(self) -> None:
        """Cut the WAL file back once its pages are in the database (``truncate_wal``)."""
        truncate_wal(self._conn)

    def close(self) -> None:
        self._conn.close()
