"""The supervisor's durable tables in ``<root>/supervisor.sqlite``: subtasks, handoffs,
escalations, stages and an audit trail of events.

Writes are staged and committed together: ``await store.commit()`` returns once every
statement staged before it is in a committed transaction (group commit): one group is
written at a time, and whatever is staged meanwhile goes in the next, so the busier the
supervisor, the more subtasks share a transaction.

A subtask's row is written at most once per state change: the attempt about to run
(``stage_running``) is kept per subtask until the group is written, so the number staged
at submit and the replica staged at dispatch share one statement when they share a group
(the number rides in the new row's ``INSERT``), and a subtask finished in the same group
writes none (recovery reads ``running`` of unfinished rows only).

The fsync stays in the commit, on the loop: moving it to a thread (``runtime.GroupSync``)
was measured to cost more CPU per subtask (a thread hand-off per group) than the wait it
saves, on two busy cores (docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Sequence
from time import time
from typing import Any

from policies import Durability, SupervisorRetention
from runtime import (
    AttemptRecord,
    Connection,
    Location,
    connect,
    transaction,
    truncate_wal,
)

from .settings import SettingsStore
from .store_schema import COUNTS, INDEXES, PRUNE, SCHEMA

_INSERT = (
    "INSERT OR IGNORE INTO subtasks(id, trace_id, parent, target, state, spec, attempts, "
    "created, message, running) VALUES(:id, :trace_id, :parent, :target, :state, :spec, '[]', "
    ":created, :message, :running)"
)
_RUNNING = "UPDATE subtasks SET running = ? WHERE id = ?"

Staged = list[tuple[str, Sequence[Any] | dict[str, Any]]]
"""Statements waiting for the next group commit."""
FINAL_STATES = ("done", "failed")


class SubtaskStore:
    """The supervisor's tables, written with group commit from one event loop.

    Args:
        root: the storage root.
        durability: what a committed outcome survives. Default ``Durability.FULL``: an
            fsync per group commit, so a stored outcome survives a power loss;
            ``Durability.PROCESS`` survives any process's death only.
    """

    def __init__(self, root: Location, durability: Durability = Durability.FULL) -> None:
        self.path = root / "supervisor.sqlite"
        self._conn = connect(self.path, durability)
        for statement in SCHEMA:
            self._conn.execute(statement)
        for column in ("running TEXT", "message TEXT", "output_json TEXT", "provenance TEXT"):
            _add_column(self._conn, "subtasks", column)
        if _add_column(self._conn, "escalations", "closed REAL"):  # answered ones: from now
            self._conn.execute("UPDATE escalations SET closed = ? WHERE state != 'open'", (time(),))
        _create_counts(self._conn)
        for statement in INDEXES:
            self._conn.execute(statement)
        self.settings = SettingsStore(self._conn)
        self._staged: Staged = []
        self._new: dict[str, dict[str, Any]] = {}  # rows to insert with the next group
        self._running: dict[str, str] = {}  # the newest attempt staged per subtask
        self._flush: asyncio.Future[None] | None = None  # the next group's waiters

    # -- staging ---------------------------------------------------------------------

    def stage_new(self, row: dict[str, Any]) -> None:
        """A new subtask (``INSERT OR IGNORE``: a re-submitted id keeps its row), written
        before the rest of its group (nothing staged can concern a row not yet there)."""
        self._new[row["id"]] = {"message": None, "running": None, **row}

    def stage_progress(
        self, subtask_id: str, state: str, target: str, attempts: Sequence[AttemptRecord]
    ) -> None:
        """The subtask's state, next target and history, while it is not finished."""
        self._stage(
            "UPDATE subtasks SET state = ?, target = ?, attempts = ? WHERE id = ?",
            (state, target, _history(attempts), subtask_id),
        )

    def stage_running(self, subtask_id: str, attempt: dict[str, Any]) -> None:
        """The attempt about to start (number, replica, span id): a supervisor that
        restarts finds it here, to keep it in the history and follow its result. Only the
        newest one staged for a subtask is written with its group."""
        self._running[subtask_id] = json.dumps(attempt)

    def stage_quarantine(self, subtask_id: str, why: str) -> None:
        """Set aside a subtask whose stored spec no longer loads: never re-driven."""
        self._stage(
            "UPDATE subtasks SET state = 'quarantined', detail = ? WHERE id = ?",
            (why, subtask_id),
        )

    def stage_late(self, subtask_id: str, record: AttemptRecord) -> None:
        """Append a late result to a subtask's history, finished or not."""
        self._stage(
            "UPDATE subtasks SET attempts = json_insert(attempts, '$[#]', json(?)) WHERE id = ?",
            (json.dumps(record.to_dict()), subtask_id),
        )

    def stage_finish(self, row: dict[str, Any], handoff: dict[str, Any]) -> None:
        """The final state, output or reason, history and the handoff record."""
        self._running.pop(row["id"], None)  # read of unfinished rows only: moot now
        self._stage(
            "UPDATE subtasks SET state = :state, reason = :reason, detail = :detail, "
            "output = :output, output_json = :output_json, attempts = :attempts, "
            "finished = :at, provenance = :provenance WHERE id = :id",
            {"output_json": None, "provenance": None, **row, "attempts": _history(row["attempts"])},
        )
        self._stage(
            "INSERT OR REPLACE INTO handoffs(subtask_id, status, output_ref, stage, "
            "next_stage, trace_id, at) VALUES(:subtask_id, :status, :output_ref, :stage, "
            ":next_stage, :trace_id, :at)",
            handoff,
        )

    def stage_escalation(self, row: dict[str, Any]) -> None:
        """An escalation, open until answered."""
        self._stage(
            "INSERT OR REPLACE INTO escalations(subtask_id, handler, reason, detail, state, at)"
            " VALUES(:subtask_id, :handler, :reason, :detail, :state, :at)",
            row,
        )

    def stage_escalation_closed(self, subtask_id: str, state: str, at: float) -> None:
        """An escalation answered, rejected or cancelled at ``at``."""
        self._stage(
            "UPDATE escalations SET state = ?, closed = ? WHERE subtask_id = ?",
            (state, at, subtask_id),
        )

    def stage_event(self, at: float, kind: str, subject: str, detail: dict[str, Any]) -> None:
        """An audit event: a kill, a stall, a late result, a re-drive."""
        self._stage(
            "INSERT INTO events(at, kind, subject, detail) VALUES(?, ?, ?, ?)",
            (at, kind, subject, json.dumps(detail, sort_keys=True, default=str)),
        )

    def _stage(self, sql: str, params: Sequence[Any] | dict[str, Any]) -> None:
        self._staged.append((sql, params))

    # -- committing ------------------------------------------------------------------

    async def commit(self) -> None:
        """Return once everything staged so far is committed: every commit awaited in
        one turn of the loop shares the group written at the next turn.

        Raises:
            StorageError: the transaction failed; nothing of it was committed.
        """
        if self._flush is None:
            loop = asyncio.get_running_loop()
            self._flush = loop.create_future()
            loop.call_soon(self._write_next)
        await asyncio.shield(self._flush)

    def commit_now(self) -> None:
        """Commit what is staged and wait for it (outside an event loop, at recovery, or
        on close).

        Raises:
            StorageError: the transaction failed.
        """
        self._write_group(self._take())

    def _take(self) -> Staged:
        """Everything staged, as one group's statements in order: new rows (each with
        its attempt staged meanwhile), the statements, then each attempt left."""
        new, self._new = self._new, {}
        running, self._running = self._running, {}
        for subtask_id, row in new.items():
            row["running"] = running.pop(subtask_id, row["running"])
        staged: Staged = [(_INSERT, row) for row in new.values()]
        staged += self._staged
        self._staged = []
        staged += [(_RUNNING, (attempt, sid)) for sid, attempt in running.items()]
        return staged

    def _write_next(self) -> None:
        """Commit everything staged as one group, for the waiting commits."""
        waiters, self._flush = self._flush, None
        if waiters is None:
            return
        try:
            self._write_group(self._take())
        except Exception as error:
            waiters.set_exception(error)
        else:
            waiters.set_result(None)

    def _write_group(self, staged: Staged) -> None:
        """Commit ``staged`` in one transaction.

        Raises:
            StorageError: the transaction failed; nothing of it was committed.
        """
        if not staged:
            return
        with transaction(self._conn, "supervisor store") as conn:
            for sql, params in staged:
                conn.execute(sql, params)

    # -- reading ---------------------------------------------------------------------

    def unfinished(self) -> list[Any]:
        """Every subtask not done or failed, oldest first (for recovery)."""
        return self._rows(
            "SELECT * FROM subtasks WHERE finished IS NULL AND state != 'quarantined' "
            "ORDER BY created"
        )

    def known(self, subtask_id: str) -> bool:
        """Whether a row of ``subtask_id`` is stored (its key only: no row is loaded)."""
        found = self._conn.execute("SELECT 1 FROM subtasks WHERE id = ?", (subtask_id,))
        return found.fetchone() is not None

    def subtask(self, subtask_id: str) -> Any:
        rows = self._rows("SELECT * FROM subtasks WHERE id = ?", (subtask_id,))
        return rows[0] if rows else None

    def handoffs(self, trace_id: str | None = None) -> list[dict[str, Any]]:
        """Handoff records, oldest first, of one trace or all."""
        where, params = ("WHERE trace_id = ?", (trace_id,)) if trace_id else ("", ())
        sql = f"SELECT * FROM handoffs {where} ORDER BY at"
        return [dict(row) for row in self._rows(sql, params)]

    def escalations(self, state: str | None = "open") -> list[dict[str, Any]]:
        """Escalations, oldest first; ``state=None`` lists answered ones too."""
        where, params = ("WHERE state = ?", (state,)) if state else ("", ())
        sql = f"SELECT * FROM escalations {where} ORDER BY at"
        return [dict(row) for row in self._rows(sql, params)]

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Audit events, oldest first, of one kind or all."""
        where, params = ("WHERE kind = ?", (kind,)) if kind else ("", ())
        rows = self._rows(f"SELECT * FROM events {where} ORDER BY seq", params)
        return [{**dict(row), "detail": json.loads(row["detail"])} for row in rows]

    def counts(self) -> dict[str, int]:
        """Subtasks stored, by state."""
        rows = self._rows("SELECT state, n FROM subtask_counts WHERE n > 0")
        return {row["state"]: int(row["n"]) for row in rows}

    def open_escalations(self) -> int:
        """How many escalations wait for an answer."""
        return int(self._rows("SELECT COUNT(*) FROM escalations WHERE state = 'open'")[0][0])

    def prune(self, now: float, retention: SupervisorRetention) -> bool:
        """One bounded pass: delete finished subtasks, handoffs, events and answered
        escalations older than their windows, at most ``retention.prune_batch`` of each.

        Returns:
            Whether a table had more to delete than one pass may (run again soon).

        Raises:
            StorageError: the pass failed; nothing of it was deleted.
        """
        windows = {
            "subtasks": retention.subtasks, "handoffs": retention.handoffs,
            "events": retention.events, "escalations": retention.escalations,
        }  # fmt: skip
        limit, more = retention.prune_batch, False
        with transaction(self._conn, "supervisor store: pruning") as conn:
            for table, old, key in PRUNE:
                before = now - windows[table].total_seconds()
                deleted = conn.execute(
                    f"DELETE FROM {table} WHERE {key} IN ({old})", (before, limit)
                ).rowcount
                more |= deleted == limit
        if not more:
            truncate_wal(self._conn)
        return more

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        self._conn.row_factory = sqlite3.Row  # by name too, on either backend
        return list(self._conn.execute(sql, params).fetchall())

    def close(self) -> None:
        self._conn.close()


def _add_column(conn: Connection, table: str, column: str) -> bool:
    """Add ``column`` to a table created before it existed; whether it was added."""
    names = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
    if column.split()[0] in names:
        return False
    conn.execute(f"ALTER TABLE {table} ADD COLUMN {column}")
    return True


def _create_counts(conn: Connection) -> None:
    """The counts table and its triggers; counted from the rows once, when the table is
    new (a store written before it existed)."""
    with transaction(conn, "supervisor store: counts") as txn:
        new = not txn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'subtask_counts'"
        ).fetchone()
        for statement in COUNTS:
            txn.execute(statement)
        if new:
            txn.execute(
                "INSERT INTO subtask_counts(state, n) SELECT state, COUNT(*) FROM subtasks "
                "GROUP BY state"
            )


def history(text: str) -> tuple[AttemptRecord, ...]:
    """The attempt history stored as JSON."""
    return tuple(AttemptRecord.from_dict(item) for item in json.loads(text))


def _history(attempts: Sequence[AttemptRecord]) -> str:
    return json.dumps([a.to_dict() for a in attempts])
