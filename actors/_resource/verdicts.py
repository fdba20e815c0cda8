"""Each within-transaction validator's answer, stored by the resource that asked, for
``agentcast trace``.

A veto or a fail-closed failure is also a rejection in the resource's log; an allowing
verdict is nowhere else. ``VerdictLog`` writes one row per answer (the write's trace and
task, the event type, the agent, the outcome and how long the question took) to the store
``<root>/validations/<resource>.sqlite`` (a schema on PostgreSQL): observability, not
state, so its commits do not wait for the disk (a crash may lose the last rows, never a
write). Rows older than ``KEEP`` are pruned when the store opens and every
``_PRUNE_EVERY`` rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from policies import Durability
from runtime import Clock, Connection, Location, connect, transaction

KEEP = timedelta(days=7)
"""How long a verdict's row is kept (docs/operations.md, "Retention")."""
_PRUNE_EVERY = 1000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS verdicts (
    seq INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    trace_id TEXT NOT NULL,
    idem_key TEXT NOT NULL,
    resource TEXT NOT NULL,
    op TEXT NOT NULL,
    event_type TEXT NOT NULL,
    agent TEXT NOT NULL,
    outcome TEXT NOT NULL,
    detail TEXT NOT NULL,
    duration_ms REAL NOT NULL
);
-- agentcast trace: one trace's verdicts in time order; pruning: the oldest first.
CREATE INDEX IF NOT EXISTS verdicts_trace ON verdicts (trace_id, at);
CREATE INDEX IF NOT EXISTS verdicts_at ON verdicts (at);
"""
COLUMNS = (
    "at", "trace_id", "idem_key", "resource", "op", "event_type", "agent", "outcome",
    "detail", "duration_ms",
)  # fmt: skip
_INSERT = f"INSERT INTO verdicts ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"


def verdicts_folder(root: Location) -> Location:
    """Where the resources' verdict stores are."""
    return root / "validations"


class VerdictLog:
    """The verdicts one resource asked for: one store, written by its actor."""

    def __init__(self, root: Location, resource: str, clock: Clock) -> None:
        self._path = verdicts_folder(root) / f"{resource}.sqlite"
        self._clock = clock
        self._conn: Connection | None = None
        self._written = 0

    def _open(self) -> Connection:
        if self._conn is None:
            conn = connect(self._path, Durability.PROCESS)
            conn.executescript(_SCHEMA)
            self._conn = conn
            self._prune(conn)
        return self._conn

    def _prune(self, conn: Connection) -> None:
        before = self._clock.now().timestamp() - KEEP.total_seconds()
        with transaction(conn, f"pruning {self._path}"):
            conn.execute("DELETE FROM verdicts WHERE at < ?", (before,))

    def add(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """Store verdicts (``COLUMNS``, in order), in one commit.

        Raises:
            StorageError: nothing was stored.
        """
        conn = self._open()
        with transaction(conn, f"storing verdicts in {self._path}"):
            conn.executemany(_INSERT, rows)
        self._written += len(rows)
        if self._written >= _PRUNE_EVERY:
            self._written = 0
            self._prune(conn)


def verdicts_of(conn: Connection, trace: str) -> list[dict[str, Any]]:
    """The verdicts of one trace, oldest first (``conn`` a read-only connection with
    ``sqlite3.Row`` rows, as ``agentcast trace`` opens them)."""
    rows = conn.execute("SELECT * FROM verdicts WHERE trace_id = ? ORDER BY at", (trace,))
    return [dict(row) for row in rows]
