"""The dispatcher's durable state: consumer groups and their checkpoints, one store
(``<storage>/events/dispatch.sqlite``, or that schema in PostgreSQL) written by the one
dispatcher actor.

Retention: a group's row and its checkpoints live while the group is registered, and are
deleted by ``forget`` (docs/operations.md, "Retention"); a checkpoint is one row per
(group, resource), so the table never grows with the number of events.
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
"""


UPSERT = (
    "INSERT INTO checkpoints(grp, resource, seq, at) VALUES(?, ?, ?, ?) "
    "ON CONFLICT(grp, resource) DO UPDATE SET seq=excluded.seq, at=excluded.at"
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

    def move(self, group: str, resource: str, *, expected: int, to: int, now: datetime) -> bool:
        """Set the checkpoint to ``to`` if it is still ``expected`` (a replay may have
        moved it meanwhile: a late acknowledgement must not undo it).

        Returns:
            Whether it moved.

        Raises:
            StorageError: nothing was stored.
        """
        with transaction(self._conn, f"checkpoint of {group} in {self.path} failed") as conn:
            row = conn.execute(
                "SELECT seq FROM checkpoints WHERE grp=? AND resource=?", (group, resource)
            ).fetchone()
            if (int(row[0]) if row else 0) != expected:
                return False
            conn.execute(
                "INSERT INTO checkpoints(grp, resource, seq, at) VALUES(?, ?, ?, ?) "
                "ON CONFLICT(grp, resource) DO UPDATE SET seq=excluded.seq, at=excluded.at",
                (group, resource, to, now.isoformat()),
            )
        return True

    def move_many(self, moves: dict[tuple[str, str], int], now: datetime) -> None:
        """Set each (group, resource) checkpoint of ``moves`` to its number, in one
        transaction (the dispatcher's batched moves; it holds the checkpoints in memory
        and is their only writer).

        Raises:
            StorageError: nothing was stored.
        """
        rows = [(group, resource, seq, now.isoformat()) for (group, resource), seq in moves.items()]
        with transaction(self._conn, f"checkpoints in {self.path} failed") as conn:
            conn.executemany(UPSERT, rows)

    def rewind(self, group: str, resource: str, to: int, now: datetime) -> None:
        """Set the checkpoint to ``to`` unconditionally (a replay).

        Raises:
            StorageError: nothing was stored.
        """
        self.move(group, resource, expected=self.get(group, resource), to=to, now=now)

    def horizon(self, resource: str, groups: list[str]) -> int:
        """The lowest checkpoint of ``groups`` on ``resource``: every group is done with
        the events up to it (0 if a group has none yet)."""
        if not groups:
            return 0
        return min(self.get(group, resource) for group in groups)
