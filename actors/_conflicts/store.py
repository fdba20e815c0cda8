"""The durable record of a resource's conflicts, in the resource's own SQLite file.

Written only by the resource actor, on its event loop between batches (never inside
one), so the single writer stays single. A conflict is opened when its write is first
refused and settled once; a write re-sent with the same key finds it (joins it while it
climbs, or gets its settled outcome).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from policies import Durability, ResourceRetention
from runtime import DatabaseErrors, Location, StorageError, connect, encode, transaction

from .ladder import Conflict, Settlement
from .messages import ConflictRecord

_SCHEMA = """
CREATE TABLE IF NOT EXISTS conflicts(
    conflict_id TEXT PRIMARY KEY,
    op TEXT NOT NULL,
    challenger TEXT NOT NULL,
    incumbent TEXT NOT NULL,
    expected INTEGER,
    current INTEGER NOT NULL,
    trace_id TEXT NOT NULL,
    opened TEXT NOT NULL,
    settled TEXT,
    level INTEGER,
    winner TEXT,
    outcome TEXT,
    detail TEXT NOT NULL DEFAULT '',
    version INTEGER,
    value BLOB
);
CREATE INDEX IF NOT EXISTS conflicts_level ON conflicts(level, outcome);
CREATE INDEX IF NOT EXISTS conflicts_opened ON conflicts(opened);
"""
_COLUMNS = (
    "conflict_id, op, challenger, incumbent, expected, current, trace_id, opened, settled, "
    "level, winner, outcome, detail, version"
)


class ConflictStore:
    """The ``conflicts`` table of one resource.

    Args:
        path: the resource's SQLite file.
        durability: as the resource's log.
        retention: settled conflicts are kept ``audit`` long.
    """

    def __init__(
        self,
        path: Location,
        durability: Durability = Durability.FULL,
        retention: ResourceRetention | None = None,
    ) -> None:
        self._path = path
        self._retention = retention or ResourceRetention()
        self._conn = connect(path, durability)
        self._conn.executescript(_SCHEMA)

    def close(self) -> None:
        self._conn.close()

    def open(self, conflict: Conflict, at: datetime) -> None:
        """Record a conflict as climbing (nothing if it is recorded already).

        Raises:
            StorageError: it could not be stored.
        """
        c = conflict
        with transaction(self._conn, f"opening a conflict in {self._path}") as conn:
            conn.execute(
                "INSERT OR IGNORE INTO conflicts(conflict_id, op, challenger, incumbent, "
                "expected, current, trace_id, opened) VALUES(?,?,?,?,?,?,?,?)",
                (c.conflict_id, c.op, c.challenger, c.incumbent, c.expected, c.current,
                 c.trace_id, at.isoformat()),
            )  # fmt: skip

    def settle(self, conflict_id: str, settled: Settlement, at: datetime) -> None:
        """Record how a conflict ended, and drop settled ones past retention.

        Raises:
            StorageError: it could not be stored.
        """
        result = settled.result
        applied = result is not None and result.error is None
        with transaction(self._conn, f"settling a conflict in {self._path}") as conn:
            conn.execute(
                "UPDATE conflicts SET settled=?, level=?, winner=?, outcome=?, detail=?, "
                "version=?, value=? WHERE conflict_id=?",
                (at.isoformat(), int(settled.level),
                 None if settled.winner is None else settled.winner.value, settled.outcome,
                 settled.detail, result.version if applied and result else None,
                 encode(result.value) if applied and result else None, conflict_id),
            )  # fmt: skip
            conn.execute(
                "DELETE FROM conflicts WHERE conflict_id IN (SELECT conflict_id FROM "
                "conflicts WHERE opened < ? AND settled IS NOT NULL ORDER BY opened LIMIT ?)",
                ((at - self._retention.audit).isoformat(), self._retention.compact_batch),
            )

    def get(self, conflict_id: str) -> tuple[ConflictRecord, bytes | None] | None:
        """A recorded conflict and its applied write's encoded value, or None.

        Raises:
            StorageError: the table could not be read.
        """
        rows = self._read(
            f"SELECT {_COLUMNS}, value FROM conflicts WHERE conflict_id = ?", (conflict_id,)
        )
        return (ConflictRecord(*rows[0][:-1]), rows[0][-1]) if rows else None

    def records(self, limit: int = 100) -> list[ConflictRecord]:
        """The newest conflicts, newest first.

        Raises:
            StorageError: the table could not be read.
        """
        sql = f"SELECT {_COLUMNS} FROM conflicts ORDER BY opened DESC LIMIT ?"
        return [ConflictRecord(*row) for row in self._read(sql, (limit,))]

    def counts(self) -> list[tuple[int | None, str | None, int]]:
        """``(level, outcome, count)`` rows, level None for open conflicts (one pass over
        the covering index); ``ConflictSummary.of`` sums them.

        Raises:
            StorageError: the table could not be read.
        """
        sql = "SELECT level, outcome, COUNT(*) FROM conflicts GROUP BY level, outcome"
        return [(row[0], row[1], row[2]) for row in self._read(sql, ())]

    def _read(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        try:
            return list(self._conn.execute(sql, params).fetchall())
        except DatabaseErrors as error:
            raise StorageError(f"reading conflicts of {self._path} failed: {error}") from error
