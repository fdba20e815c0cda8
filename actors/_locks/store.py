"""The locks actor's durable state: one SQLite file, ``<root>/locks.sqlite``.

What must survive a restart is what was answered: every lease with the keys granted to
it and their fencing tokens, and the last token drawn (tokens come from one counter, so
they grow per key also across restarts, and no per-key row outlives its lease). A batch
of changes is one transaction, committed before any caller of the batch hears back.
Events (grants, releases, expiries, deadlocks, alerts) are kept for
``LockPolicy.events``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from policies import Durability
from runtime import DatabaseErrors, Location, StorageError, connect, transaction, truncate_wal

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS leases(
    lease_id TEXT PRIMARY KEY,
    data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS grants(
    key TEXT NOT NULL,
    lease_id TEXT NOT NULL,
    token INTEGER NOT NULL,
    PRIMARY KEY(lease_id, key)
);
CREATE TABLE IF NOT EXISTS events(
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    lease_id TEXT NOT NULL,
    owner TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_at ON events(at);
"""


@dataclass(frozen=True, slots=True)
class LockEvent:
    """One event of the locks log.

    Attributes:
        seq: its position, from 1.
        at: when, in seconds since the epoch.
        kind: ``granted``, ``released``, ``expired``, ``timeout``, ``deadlock``,
            ``lock_wait_exceeded``, ``killed`` or ``order_refused``.
        key: the key concerned (the first of the lease's keys for a lease-wide event).
        lease_id: the lease. owner: who holds or waits (``agent:replica:task``).
        detail: what happened, e.g. the tokens granted or the cycle broken.
    """

    seq: int
    at: float
    kind: str
    key: str
    lease_id: str
    owner: str
    detail: str


@dataclass(slots=True)
class Changes:
    """What one batch changed, committed in one transaction."""

    leases: dict[str, dict[str, Any]] = field(default_factory=dict)
    ended: set[str] = field(default_factory=set)
    grants: list[tuple[str, str, int]] = field(default_factory=list)
    events: list[tuple[float, str, str, str, str, str]] = field(default_factory=list)
    token: int | None = None

    def __bool__(self) -> bool:
        return bool(self.leases or self.ended or self.grants or self.events) or (
            self.token is not None
        )


@dataclass(frozen=True, slots=True)
class Stored:
    """What a new incarnation starts from."""

    incarnation: int
    token: int
    leases: list[dict[str, Any]]
    grants: list[tuple[str, str, int]]


class LocksStore:
    """Reads and writes ``<root>/locks.sqlite``. One owner at a time."""

    def __init__(self, root: Location, durability: Durability = Durability.FULL) -> None:
        self.path = root / "locks.sqlite"
        try:
            self._conn = connect(self.path, durability)
            self._conn.executescript(_SCHEMA)
        except DatabaseErrors as error:
            raise StorageError(f"locks: cannot open {self.path}: {error}") from error

    def open_incarnation(self) -> Stored:
        """Count one more incarnation and load the leases, grants and token counter.

        Raises:
            StorageError: the store failed.
        """
        with transaction(self._conn, f"opening {self.path} failed") as conn:
            conn.execute(
                "INSERT INTO meta(key, value) VALUES('incarnation', 1) "
                "ON CONFLICT(key) DO UPDATE SET value = value + 1"
            )
        meta = dict(self._conn.execute("SELECT key, value FROM meta").fetchall())
        leases = [json.loads(row[0]) for row in self._conn.execute("SELECT data FROM leases")]
        grants = self._conn.execute("SELECT key, lease_id, token FROM grants").fetchall()
        return Stored(meta["incarnation"], meta.get("token", 0), leases, grants)

    def commit(self, changes: Changes) -> None:
        """Store one batch's changes.

        Raises:
            StorageError: nothing of the batch was stored.
        """
        if not changes:
            return
        with transaction(self._conn, f"commit to {self.path} failed") as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO leases(lease_id, data) VALUES(?, ?)",
                [(lid, json.dumps(data)) for lid, data in changes.leases.items()],
            )
            conn.executemany(
                "INSERT OR REPLACE INTO grants(key, lease_id, token) VALUES(?, ?, ?)",
                changes.grants,
            )
            for lease_id in changes.ended:
                conn.execute("DELETE FROM leases WHERE lease_id = ?", (lease_id,))
                conn.execute("DELETE FROM grants WHERE lease_id = ?", (lease_id,))
            conn.executemany(
                "INSERT INTO events(at, kind, key, lease_id, owner, detail) "
                "VALUES(?, ?, ?, ?, ?, ?)",
                changes.events,
            )
            if changes.token is not None:
                conn.execute(
                    "INSERT INTO meta(key, value) VALUES('token', ?) "
                    "ON CONFLICT(key) DO UPDATE SET value = max(value, excluded.value)",
                    (changes.token,),
                )

    def events(self, after: int = 0, limit: int = 1000) -> list[LockEvent]:
        """Events after position ``after``, at most ``limit``, oldest first."""
        rows = self._conn.execute(
            "SELECT seq, at, kind, key, lease_id, owner, detail FROM events WHERE seq > ? "
            "ORDER BY seq LIMIT ?",
            (after, limit),
        )
        return [LockEvent(*row) for row in rows]

    def prune(self, before: float, limit: int = 5000) -> bool:
        """Delete up to ``limit`` events logged before ``before``; whether more are due.

        Raises:
            StorageError: nothing was deleted.
        """
        with transaction(self._conn, f"pruning {self.path} failed") as conn:
            deleted = conn.execute(
                "DELETE FROM events WHERE seq IN "
                "(SELECT seq FROM events WHERE at < ? ORDER BY at LIMIT ?)",
                (before, limit),
            ).rowcount
        if deleted < limit:
            truncate_wal(self._conn)
        return bool(deleted == limit)

    def close(self) -> None:
        self._conn.close()
