"""Rows kept a while for ``agentcast trace``: observability, not state.

Each such store has one writer (the process that makes the rows), is opened on first use,
and prunes rows older than its window when it opens and every ``prune_every`` rows. Its
commits do not wait for the disk (``Durability.PROCESS``): a crash may lose the last rows,
never a write of a resource. Used by the model calls of each agent replica
(``_agent.model_calls``) and the validators' verdicts of each resource
(``_resource.verdicts``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from policies import Durability
from runtime import Clock, Connection, Location, connect, transaction


class ObservationLog:
    """One store of rows of ``table`` (its ``schema``, with a REAL column ``at``), kept
    ``keep`` long."""

    def __init__(
        self,
        path: Location,
        table: str,
        schema: str,
        columns: Sequence[str],
        *,
        clock: Clock,
        keep: timedelta,
        prune_every: int = 1000,
    ) -> None:
        self._path, self._table, self._schema = path, table, schema
        marks = ", ".join("?" * len(columns))
        self._insert = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"
        self._clock, self._keep, self._prune_every = clock, keep, prune_every
        self._conn: Connection | None = None
        self._written = 0

    def add(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """Store ``rows`` (the columns, in order) in one commit.

        Raises:
            StorageError: nothing was stored.
        """
        conn = self._open()
        with transaction(conn, f"storing {self._table} in {self._path}"):
            conn.executemany(self._insert, rows)
        self._written += len(rows)
        if self._written >= self._prune_every:
            self._written = 0
            self._prune(conn)

    def _open(self) -> Connection:
        if self._conn is None:
            conn = connect(self._path, Durability.PROCESS)
            conn.executescript(self._schema)
            self._conn = conn
            self._prune(conn)
        return self._conn

    def _prune(self, conn: Connection) -> None:
        before = self._clock.now().timestamp() - self._keep.total_seconds()
        with transaction(conn, f"pruning {self._path}"):
            conn.execute(f"DELETE FROM {self._table} WHERE at < ?", (before,))
