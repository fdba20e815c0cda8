"""The dispatcher's durable state: consumer groups and their checkpoints, one store
(``<storage>/events/dispatch.sqlite``, or that schema in PostgreSQL) written by the one
dispatcher actor.

Next to each checkpoint, the handler failures in a row at the partition's head event
(the first after the checkpoint): one row per failing partition, written once per failure
(never on a success), so that ``EventsPolicy.max_delivery_attempts`` bounds the attempts
across dispatcher restarts (docs/events.md, "Dead letters"). A store made before the table
existed gets it when it is opened.

Retention: a group's row and its checkpoints live while the group is registered, and are
deleted by ``forget`` (docs/operations.md, "Retention"); a checkpoint is one row per
(group, resource), so the table never grows with the number of events. A failure count is
deleted with the checkpoint move that passes its event, with the dead letter that buries
it, by a replay (``rewind``) and by ``forget``.
"""

from __future__ import annotations

import json
from datetime import datetime

from runtime import Location, connect, transaction

_SCHEMA = """
CREATE TABLE IF NOT EXISTS groups(grp TEXT PRIMARY KEY, types TEXT NOT NULL, at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS checkpoints(
    grp TEXT NOT NULL,
    resource TEXT NOT NULL,
    seq INTEGER NOT NULL,
    at TEXT NOT NULL,
    PRIMARY KEY(grp, resource)
);
CREATE INDEX IF NOT EXISTS checkpoints_resource ON checkpoints(resource, seq);
CREATE TABLE IF NOT EXISTS delivery_failures(
    grp TEXT NOT NULL,
    resource TEXT NOT NULL,
    seq INTEGER NOT NULL,
    failures INTEGER NOT NULL,
    at TEXT NOT NULL,
    PRIMARY KEY(grp, resource)
);
"""


UPSERT = (
    "INSERT INTO checkpoints(grp, resource, seq, at) VALUES(?, ?, ?, ?) "
    "ON CONFLICT(grp, resource) DO UPDATE SET seq=excluded.seq, at=excluded.at"
)
CLEAR_FAILURES = "DELETE FROM delivery_failures WHERE grp=? AND resource=?"
_PASSED = "DELETE FROM delivery_failures WHERE grp=? AND resource=? AND seq<=?"
_COUNT = (
    "INSERT INTO delivery_failures(grp, resource, seq, failures, at) VALUES(?, ?, ?, ?, ?) "
    "ON CONFLICT(grp, resource) DO UPDATE SET seq=excluded.seq, failures=excluded.failures, "
    "at=excluded.at"
)


class CheckpointStore:
    """Consumer groups (name -> event type names) and checkpoints (the last sequence
    number a group is done with, per resource). Not thread-safe: one owner."""

    def __init__(self, root: Location) -> None:
        self.path = root / "events" / "dispatch.sqlite"
        self.conn = self._conn = connect(self.path)  # shared with the dead letters
        self._conn.executescript(_SCHEMA)

    def close(self) -> None:
        self._conn.close()

    def groups(self) -> dict[str, tuple[str, ...]]:
        """Every registered group and the event types it takes."""
        rows = self._conn.execute("SELECT grp, types FROM groups ORDER BY grp").fetchall()
        return {group: tuple(json.loads(types)) for group, types in rows}

    def register(self, group: str, types: tuple[str, ...], now: datetime) -> None:
        """Register ``group`` (or change its types); its checkpoints are kept.

        Raises:
            StorageError: nothing was stored.
        """
        with transaction(self._conn, f"registering {group} in {self.path} failed") as conn:
            conn.execute(
                "INSERT INTO groups(grp, types, at) VALUES(?, ?, ?) ON CONFLICT(grp) "
                "DO UPDATE SET types=excluded.types",
                (group, json.dumps(list(types)), now.isoformat()),
            )

    def forget(self, group: str) -> None:
        """Delete ``group`` and its checkpoints.

        Raises:
            StorageError: nothing was deleted.
        """
        with transaction(self._conn, f"forgetting {group} in {self.path} failed") as conn:
            conn.execute("DELETE FROM checkpoints WHERE grp=?", (group,))
            conn.execute("DELETE FROM delivery_failures WHERE grp=?", (group,))
            conn.execute("DELETE FROM groups WHERE grp=?", (group,))

    def get(self, group: str, resource: str) -> int:
        """The group's checkpoint on ``resource``; 0 (from the start) before any."""
        row = self._conn.execute(
            "SELECT seq FROM checkpoints WHERE grp=? AND resource=?", (group, resource)
        ).fetchone()
        return int(row[0]) if row else 0

    def all(self) -> dict[tuple[str, str], int]:
        """Every checkpoint, by (group, resource)."""
        rows = self._conn.execute("SELECT grp, resource, seq FROM checkpoints").fetchall()
        return {(group, resource): int(seq) for group, resource, seq in rows}

    def move_many(
        self, moves: dict[tuple[str, str], int], now: datetime,
        passed: tuple[tuple[str, str], ...] = (),
    ) -> None:  # fmt: skip
        """Set each (group, resource) checkpoint of ``moves`` to its number, and delete
        the failure counts of the partitions in ``passed`` whose event the move passes, in
        one transaction (the dispatcher's batched moves; it holds the checkpoints in
        memory and is their only writer).

        Raises:
            StorageError: nothing was stored.
        """
        rows = [(group, resource, seq, now.isoformat()) for (group, resource), seq in moves.items()]
        with transaction(self._conn, f"checkpoints in {self.path} failed") as conn:
            conn.executemany(UPSERT, rows)
            if passed:
                conn.executemany(_PASSED, [(*key, moves[key]) for key in passed])

    def rewind(self, groups: list[str], resource: str, to: int, now: datetime) -> None:
        """Set each group's checkpoint on ``resource`` to ``to`` unconditionally and
        delete its failure count (a replay: the events are delivered again, the count
        starts again), in one transaction.

        Raises:
            StorageError: nothing was stored.
        """
        with transaction(self._conn, f"rewinding {groups} in {self.path} failed") as conn:
            for group in groups:
                conn.execute(UPSERT, (group, resource, to, now.isoformat()))
                conn.execute(CLEAR_FAILURES, (group, resource))

    def failures(self) -> dict[tuple[str, str], tuple[int, int]]:
        """Every failing partition's head event and its handler failures in a row."""
        rows = self._conn.execute(
            "SELECT grp, resource, seq, failures FROM delivery_failures"
        ).fetchall()
        return {(group, resource): (int(seq), int(n)) for group, resource, seq, n in rows}

    def count_failure(
        self, group: str, resource: str, seq: int, failures: int, now: datetime
    ) -> None:
        """Store that the handler failed ``failures`` times in a row at event ``seq``.

        Raises:
            StorageError: nothing was stored.
        """
        with transaction(self._conn, f"failure count of {group} in {self.path} failed") as conn:
            conn.execute(_COUNT, (group, resource, seq, failures, now.isoformat()))

    def horizon(self, resource: str, groups: list[str]) -> int:
        """The lowest checkpoint of ``groups`` on ``resource``: every group is done with
        the events up to it (0 if a group has none yet)."""
        if not groups:
            return 0
        return min(self.get(group, resource) for group in groups)
