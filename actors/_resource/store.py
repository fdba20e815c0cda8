"""The durable log of one resource: records, snapshots, rejections, epochs, fences.

One SQLite file per resource, so resources never contend for a lock. The interface is
small on purpose (open, recover, commit, lookup, snapshot, compact, read back) so that
another backend can implement it. Compaction (``ResourceRetention``) deletes only records a
snapshot covers, so recovery is unchanged; the keys of compacted records are kept in
``compacted_keys`` for the rest of their window.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from itertools import takewhile
from operator import attrgetter
from typing import Any

from policies import Durability, ResourceRetention
from runtime import (
    DatabaseErrors,
    FencedError,
    Location,
    StorageError,
    check_name,
    connect,
    decode,
    defer_sync,
    encode,
    transaction,
    truncate_wal,
)

from .._events import store as events
from . import fencing
from .provenance import migrate
from .records import AuditRecord as AuditRecord
from .recovery import Recovered as Recovered
from .state_view import replay

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS log(
    version INTEGER PRIMARY KEY,
    op TEXT NOT NULL,
    args BLOB NOT NULL,
    result BLOB NOT NULL,
    writer TEXT NOT NULL,
    writer_epoch INTEGER NOT NULL,
    incarnation INTEGER NOT NULL,
    idem_key TEXT NOT NULL UNIQUE,
    trace_id TEXT NOT NULL,
    at TEXT NOT NULL,
    diff BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS snapshot(version INTEGER PRIMARY KEY, state BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS rejected(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    op TEXT NOT NULL,
    writer TEXT NOT NULL,
    writer_epoch INTEGER NOT NULL,
    idem_key TEXT NOT NULL,
    trace_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS writer_fence(writer TEXT PRIMARY KEY, min_epoch INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS rejected_at ON rejected(at);
CREATE INDEX IF NOT EXISTS rejected_reason ON rejected(reason);
CREATE INDEX IF NOT EXISTS log_trace ON log(trace_id, version);
CREATE INDEX IF NOT EXISTS rejected_trace ON rejected(trace_id, id);
CREATE TABLE IF NOT EXISTS compacted_keys(
    idem_key TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    result BLOB NOT NULL,
    op TEXT NOT NULL,
    args_digest BLOB NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS compacted_keys_at ON compacted_keys(at);
"""


def args_digest(args: bytes) -> bytes:
    """What an idempotency key is bound to besides its operation: its encoded arguments."""
    return hashlib.blake2b(args, digest_size=16).digest()


@dataclass(frozen=True, slots=True)
class LogRecord:
    """One committed write. ``diff`` is the encoded before/after of what changed."""

    version: int
    op: str
    args: bytes
    result: bytes
    writer: str
    writer_epoch: int
    incarnation: int
    idem_key: str
    trace_id: str
    at: str
    diff: bytes
    provenance: str = "unverified_agent"  # as the resource believed it (``.provenance``)


@dataclass(frozen=True, slots=True)
class Rejection:
    """One refused write attempt, kept for the audit."""

    at: str
    op: str
    writer: str
    writer_epoch: int
    idem_key: str
    trace_id: str
    reason: str
    detail: str


# Columns are the records' fields, in order: a row is ``LogRecord(*row)``, and a record's
# row is made in C by ``attrgetter``, with no Python call per record of a batch.
_LOG_FIELDS = tuple(f.name for f in fields(LogRecord))
_LOG_COLUMNS = ", ".join(_LOG_FIELDS)
_LOG_MARKS = ",".join("?" * len(_LOG_FIELDS))
_REJECTION_FIELDS = tuple(f.name for f in fields(Rejection))
_REJECTION_COLUMNS = ", ".join(_REJECTION_FIELDS)
_record_row = attrgetter(*_LOG_FIELDS)
_DELETE_REJECTED = (
    "DELETE FROM rejected WHERE id IN (SELECT id FROM rejected WHERE at < ? ORDER BY at LIMIT ?)"
)
_DELETE_KEYS = (
    "DELETE FROM compacted_keys WHERE idem_key IN "
    "(SELECT idem_key FROM compacted_keys WHERE at < ? ORDER BY at LIMIT ?)"
)
_rejection_row = attrgetter(*_REJECTION_FIELDS)


def _insert(conn: Any, records: list[LogRecord], rejections: list[Rejection]) -> None:
    """No statement for an empty list: each costs a prepare and a step per commit."""
    if records:
        conn.executemany(
            f"INSERT INTO log({_LOG_COLUMNS}) VALUES({_LOG_MARKS})", map(_record_row, records)
        )
    if rejections:
        conn.executemany(
            f"INSERT INTO rejected({_REJECTION_COLUMNS}) VALUES(?,?,?,?,?,?,?,?)",
            map(_rejection_row, rejections),
        )


class ResourceLog:
    """The SQLite log of one resource. Not thread-safe: one owner at a time."""

    def __init__(self, root: Location, name: str, durability: Durability = Durability.FULL) -> None:
        self.path = root / "resources" / f"{check_name('resource', name)}.sqlite"
        self._conn = connect(self.path, durability)
        self._conn.executescript(_SCHEMA + fencing.SCHEMA + events.SCHEMA)
        migrate(self._conn)
        events.migrate(self._conn)

    def close(self) -> None:
        self._conn.close()

    def open_incarnation(self) -> Recovered:
        """Bump the incarnation (epoch) durably and load snapshot + tail of the log.

        From this commit on, any older incarnation's commit is refused (fencing).

        Raises:
            StorageError: the store failed; the incarnation is unchanged.
        """
        conn = self._conn
        with transaction(conn, f"opening {self.path} failed"):
            row = conn.execute("SELECT value FROM meta WHERE key='incarnation'").fetchone()
            incarnation = (row[0] if row else 0) + 1
            conn.execute(
                "INSERT INTO meta(key, value) VALUES('incarnation', ?) "
                "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                (incarnation,),
            )
        snap = conn.execute(
            "SELECT version, state, marks FROM snapshot ORDER BY version DESC LIMIT 1"
        ).fetchone()
        snapshot_version, snapshot_state, snapshot_marks = snap or (0, None, None)
        fences = dict(conn.execute("SELECT writer, min_epoch FROM writer_fence").fetchall())
        return Recovered(
            incarnation=incarnation,
            snapshot_version=snapshot_version,
            snapshot_state=snapshot_state,
            snapshot_marks=snapshot_marks,
            tail=list(self.records(after=snapshot_version)),
            writer_fences=fences,
            lease_fences=fencing.load(conn),
        )

    def commit(
        self,
        incarnation: int,
        records: list[LogRecord],
        rejections: list[Rejection],
        fences: dict[str, int] | None = None,
        lease_fences: Sequence[tuple[str, int, str]] = (),
        emitted: Sequence[events.EventRow] = (),
    ) -> None:
        """Append records, rejections, writer fences, the newest lease tokens seen
        (``fencing.LeaseFences.rows``) and the records' events in one transaction.

        Raises:
            FencedError: a newer incarnation has opened the log; nothing was written.
            StorageError: the store failed; nothing was written.
        """
        conn = self._conn
        with transaction(conn, f"commit to {self.path} failed"):
            row = conn.execute("SELECT value FROM meta WHERE key='incarnation'").fetchone()
            if row is None or row[0] != incarnation:
                raise FencedError(
                    self.path.stem, f"incarnation {incarnation} superseded by {row and row[0]}"
                )
            _insert(conn, records, rejections)
            for writer, epoch in (fences or {}).items():
                conn.execute(
                    "INSERT INTO writer_fence(writer, min_epoch) VALUES(?, ?) ON CONFLICT"
                    "(writer) DO UPDATE SET min_epoch=max(min_epoch, excluded.min_epoch)",
                    (writer, epoch),
                )
            if lease_fences:
                fencing.store(conn, lease_fences)
            events.insert(conn, emitted)

    def save_snapshot(self, version: int, state: bytes, marks: bytes | None = None) -> None:
        """Keep the full state at ``version``, with the provenance marks of its keys
        (``provenance.StateMarks.saved``), and drop older snapshots.

        Raises:
            StorageError: the store failed; the older snapshot is kept.
        """
        with transaction(self._conn, f"snapshot to {self.path} failed") as conn:
            conn.execute(
                "INSERT OR REPLACE INTO snapshot(version, state, marks) VALUES(?, ?, ?)",
                (version, state, marks),
            )
            conn.execute("DELETE FROM snapshot WHERE version < ?", (version,))

    def defer_sync(self) -> Callable[[], None] | None:
        """Commits no longer wait for the disk; the returned function syncs them
        (``runtime.defer_sync``: for ``GroupSync``), or None if nothing is deferred."""
        return defer_sync(self._conn, self.path)

    def truncate_wal(self) -> None:
        """Cut the WAL file back once its pages are in the database (``truncate_wal``)."""
        truncate_wal(self._conn)

    def committed(self, idem_keys: list[str]) -> dict[str, tuple[int, bytes, str, bytes]]:
        """Version, result, op and ``args_digest`` of each of ``idem_keys`` committed and
        remembered: in the log, or kept by compaction (``ResourceRetention``).

        Raises:
            StorageError: the log could not be read.
        """
        found: dict[str, tuple[int, bytes, str, bytes]] = {}
        for start in range(0, len(idem_keys), 500):  # under SQLite's bound-variable limit
            chunk = idem_keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._read(
                f"SELECT idem_key, version, result, op, args FROM log WHERE idem_key IN ({marks})",
                chunk,
            )
            found.update({k: (v, result, op, args_digest(args)) for k, v, result, op, args in rows})
            missing = [key for key in chunk if key not in found]
            if missing:
                rows = self._read(
                    "SELECT idem_key, version, result, op, args_digest FROM compacted_keys "
                    f"WHERE idem_key IN ({','.join('?' * len(missing))})",
                    missing,
                )
                found.update({row[0]: row[1:] for row in rows})
        return found

    def idem_keys(self) -> Iterator[str]:
        """Every idempotency key ``committed`` may find: the log's and the kept ones."""
        query = "SELECT idem_key FROM log UNION ALL SELECT idem_key FROM compacted_keys"
        yield from (row[0] for row in self._conn.execute(query))

    def compact(self, now: datetime, retention: ResourceRetention) -> bool:
        """One bounded pass: delete the log records a snapshot covers that are older than
        ``retention.audit`` (keeping the keys of those younger than
        ``retention.idempotency_keys``), rejections older than ``retention.audit``, and
        kept keys older than ``retention.idempotency_keys``. Recovery is unchanged: it
        starts from the snapshot.

        Returns:
            Whether a table had more to delete than one pass may (run again soon).

        Raises:
            StorageError: the pass failed; nothing of it was deleted.
        """
        audit_before = (now - retention.audit).isoformat()
        keys_before = (now - retention.idempotency_keys).isoformat()
        limit = retention.compact_batch
        with transaction(self._conn, f"compacting {self.path} failed") as conn:
            row = conn.execute("SELECT MAX(version) FROM snapshot").fetchone()
            covered = row[0] or 0
            rows = conn.execute(
                "SELECT version, idem_key, result, op, args, at FROM log WHERE version <= ? "
                "ORDER BY version LIMIT ?",
                (covered, limit),
            ).fetchall()
            old = list(takewhile(lambda r: r[5] < audit_before, rows))
            keep = [(k, v, res, op, args_digest(a), at) for v, k, res, op, a, at in old]
            conn.executemany(
                "INSERT OR REPLACE INTO compacted_keys VALUES(?,?,?,?,?,?)",
                [k for k in keep if k[5] >= keys_before],
            )
            if old:
                conn.execute("DELETE FROM log WHERE version <= ?", (old[-1][0],))
            more = len(old) == limit
            for sql, before in (
                (_DELETE_REJECTED, audit_before),
                (_DELETE_KEYS, keys_before),
                (fencing.DELETE_OLD, audit_before),
            ):
                more |= conn.execute(sql, (before, limit)).rowcount == limit
        return more

    def incarnation_now(self) -> int:
        """The newest incarnation that opened the log (0 before any).

        Raises:
            StorageError: the log could not be read.
        """
        row = self._read("SELECT value FROM meta WHERE key='incarnation'", ())
        return int(row[0][0]) if row else 0

    def _read(self, sql: str, params: Sequence[Any]) -> list[Any]:
        try:
            return list(self._conn.execute(sql, params).fetchall())
        except DatabaseErrors as error:
            raise StorageError(f"reading {self.path} failed: {error}") from error

    def records(self, *, after: int = 0) -> Iterator[LogRecord]:
        """Committed records with version > ``after``, in version order."""
        cursor = self._conn.execute(
            f"SELECT {_LOG_COLUMNS} FROM log WHERE version > ? ORDER BY version", (after,)
        )
        for row in cursor:
            yield LogRecord(*row)

    def audit(self, *, after: int = 0) -> Iterator[AuditRecord]:
        """Committed writes with version > ``after``, decoded, in version order."""
        for r in self.records(after=after):
            args, kwargs = decode(r.args)
            yield AuditRecord(
                r.version, r.op, args, kwargs, decode(r.result), r.writer, r.writer_epoch,
                r.incarnation, r.idem_key, r.trace_id, r.at, decode(r.diff), r.provenance,
            )  # fmt: skip

    def replay(self, initial: dict[Any, Any] | None = None) -> dict[Any, Any]:
        """What a restarted resource recovers: the last snapshot (or ``initial``, its
        ``initial_state()``, default empty), with the log's writes after it replayed."""
        snap = self._conn.execute(
            "SELECT version, state FROM snapshot ORDER BY version DESC LIMIT 1"
        ).fetchone()
        if snap is None:
            state: dict[Any, Any] = decode(encode(dict(initial or {})))
        else:
            state = decode(snap[1])
        replay(state, self.records(after=snap[0] if snap else 0))
        return state

    def rejection_counts(self) -> dict[str, int]:
        """Refused attempts kept in the log, by reason."""
        rows = self._read("SELECT reason, COUNT(*) FROM rejected GROUP BY reason", ())
        return {reason: int(n) for reason, n in rows}

    def rejections(self) -> list[Rejection]:
        """Every refused attempt, oldest first."""
        query = f"SELECT {_REJECTION_COLUMNS} FROM rejected ORDER BY id"
        return [Rejection(*row) for row in self._conn.execute(query)]
