"""Each within-transaction validator's answer, stored by the resource that asked, for
``agentcast trace``.

A veto or a fail-closed failure is also a rejection in the resource's log; an allowing
verdict is nowhere else. ``verdict_log`` writes one row per answer (the write's trace and
task, the event type, the agent, the outcome and how long the question took) to the store
``<root>/validations/<resource>.sqlite`` (a schema on PostgreSQL): observability, not
state, so its commits do not wait for the disk (a crash may lose the last rows, never a
write). Rows older than ``KEEP`` are pruned when the store opens and every
``_PRUNE_EVERY`` rows.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from runtime import Clock, Connection, Location

from .._observations import ObservationLog

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


def verdicts_folder(root: Location) -> Location:
    """Where the resources' verdict stores are."""
    return root / "validations"


def verdict_log(root: Location, resource: str, clock: Clock) -> ObservationLog:
    """The verdicts one resource asked for: one store, written by its actor."""
    path = verdicts_folder(root) / f"{resource}.sqlite"
    return ObservationLog(path, "verdicts", _SCHEMA, COLUMNS, clock=clock, keep=KEEP,
                          prune_every=_PRUNE_EVERY)  # fmt: skip


def verdicts_of(conn: Connection, trace: str) -> list[dict[str, Any]]:
    """The verdicts of one trace, oldest first (``conn`` a read-only connection with
    ``sqlite3.Row`` rows, as ``agentcast trace`` opens them)."""
    rows = conn.execute("SELECT * FROM verdicts WHERE trace_id = ? ORDER BY at", (trace,))
    return [dict(row) for row in rows]
