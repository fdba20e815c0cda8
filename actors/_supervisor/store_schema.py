"""The supervisor store's tables, indexes, counting triggers and pruning passes."""

from __future__ import annotations

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS subtasks(
        id TEXT PRIMARY KEY, trace_id TEXT NOT NULL, parent TEXT, target TEXT NOT NULL,
        state TEXT NOT NULL, reason TEXT, detail TEXT, spec BLOB NOT NULL, output BLOB,
        attempts TEXT NOT NULL, created REAL NOT NULL, finished REAL)""",
    "CREATE INDEX IF NOT EXISTS subtasks_open ON subtasks(state) WHERE finished IS NULL",
    """CREATE TABLE IF NOT EXISTS handoffs(
        subtask_id TEXT PRIMARY KEY, status TEXT NOT NULL, output_ref TEXT,
        stage TEXT, next_stage TEXT, trace_id TEXT NOT NULL, at REAL NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS escalations(
        subtask_id TEXT PRIMARY KEY, handler TEXT NOT NULL, reason TEXT NOT NULL,
        detail TEXT NOT NULL, state TEXT NOT NULL, at REAL NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS events(
        seq INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, kind TEXT NOT NULL,
        subject TEXT NOT NULL, detail TEXT NOT NULL)""",
)

# Every query the command line and the supervisor make is served by an index (pinned by
# tests/test_retention_supervisor.py with EXPLAIN QUERY PLAN), and so is every pruning pass.
INDEXES = (
    "CREATE INDEX IF NOT EXISTS subtasks_finished ON subtasks(finished) WHERE finished IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS subtasks_trace ON subtasks(trace_id, created)",
    "CREATE INDEX IF NOT EXISTS handoffs_trace ON handoffs(trace_id, at)",
    "CREATE INDEX IF NOT EXISTS handoffs_at ON handoffs(at)",
    "CREATE INDEX IF NOT EXISTS escalations_state ON escalations(state, at)",
    "CREATE INDEX IF NOT EXISTS escalations_closed ON escalations(closed) WHERE closed IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS events_kind ON events(kind, seq)",
    "CREATE INDEX IF NOT EXISTS events_at ON events(at)",
    "CREATE INDEX IF NOT EXISTS events_subject ON events(subject, seq)",
)

# Subtasks by state, kept by triggers: ``status`` reads a few rows, never every subtask.
COUNTS = (
    "CREATE TABLE IF NOT EXISTS subtask_counts(state TEXT PRIMARY KEY, n INTEGER NOT NULL)",
    """CREATE TRIGGER IF NOT EXISTS subtasks_counted_in AFTER INSERT ON subtasks BEGIN
        INSERT INTO subtask_counts(state, n) VALUES(new.state, 1)
            ON CONFLICT(state) DO UPDATE SET n = n + 1;
    END""",
    """CREATE TRIGGER IF NOT EXISTS subtasks_counted_moved AFTER UPDATE OF state ON subtasks
    WHEN old.state != new.state BEGIN
        UPDATE subtask_counts SET n = n - 1 WHERE state = old.state;
        INSERT INTO subtask_counts(state, n) VALUES(new.state, 1)
            ON CONFLICT(state) DO UPDATE SET n = n + 1;
    END""",
    """CREATE TRIGGER IF NOT EXISTS subtasks_counted_out AFTER DELETE ON subtasks BEGIN
        UPDATE subtask_counts SET n = n - 1 WHERE state = old.state;
    END""",
)

# One pruning pass per table: (table, what to delete, the key it is deleted by).
PRUNE = (
    ("subtasks", "SELECT id FROM subtasks WHERE finished < ? ORDER BY finished LIMIT ?", "id"),
    ("handoffs", "SELECT subtask_id FROM handoffs WHERE at < ? ORDER BY at LIMIT ?", "subtask_id"),
    ("events", "SELECT seq FROM events WHERE at < ? ORDER BY at LIMIT ?", "seq"),
    (
        "escalations",
        "SELECT subtask_id FROM escalations WHERE closed < ? ORDER BY closed LIMIT ?",
        "subtask_id",
    ),
)
