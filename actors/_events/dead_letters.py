"""Dead letters: events a consumer group's handler failed ``max_delivery_attempts`` times
in a row, set aside so the partition (group x resource) goes on past them.

Who owns what: the dispatcher, as for checkpoints. The table lives in the dispatcher's
store (``events/dispatch.sqlite``, or that schema in PostgreSQL) next to the checkpoints,
so that moving an event to the dead letters and moving the checkpoint past it are **one
transaction**: a crash leaves both or neither (then the event is delivered again and
counted again; never lost, never dead-lettered twice: one row per (group, event)). A
letter carries the whole event (the resource's events table may trim it once every
checkpoint passed it), so a redelivery needs nothing from the resource.

What is counted: a failure of the handler (its ``where``, its model validation, the
handler itself: the report's reason ``handler``) at one event, consecutive, per partition,
in the dispatcher's store (``DispatchCore.count_failure``: a restarted dispatcher goes on
from the stored count; burying the event deletes it in the same transaction). A contract
refusal (reason ``contract``) and an unreachable replica are never counted.

Retention: a letter is deleted when it is redelivered and handled, when its group is
forgotten, or ``EventsPolicy.dead_letter_retention`` (7 days) after it was dead-lettered,
by the dispatcher's retention pass (docs/operations.md, "Retention").
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from runtime import (
    Connection,
    DatabaseErrors,
    InvalidArgumentError,
    StorageError,
    UnknownDeadLetterError,
    transaction,
)

from .checkpoints import CLEAR_FAILURES, UPSERT, CheckpointStore
from .store import EventRecord
from .subscribe import DeliveryReport
from .wire import EventBatch

if TYPE_CHECKING:
    from .core import DispatchCore
    from .partition import Pending

# The key orders a group's letters by resource and event (the listing); the unique index
# finds one by its event id (redelivery); the time index serves retention.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS dead_letters(
    grp TEXT NOT NULL,
    resource TEXT NOT NULL,
    seq INTEGER NOT NULL,
    event_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    type TEXT NOT NULL,
    payload BLOB NOT NULL,
    trace_id TEXT NOT NULL,
    provenance TEXT NOT NULL,
    writer TEXT NOT NULL,
    at TEXT NOT NULL,
    contract TEXT NOT NULL,
    contract_version INTEGER NOT NULL,
    error_type TEXT NOT NULL,
    error TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    dead_at TEXT NOT NULL,
    PRIMARY KEY(grp, resource, seq)
);
CREATE UNIQUE INDEX IF NOT EXISTS dead_letters_event ON dead_letters(grp, event_id);
CREATE INDEX IF NOT EXISTS dead_letters_dead_at ON dead_letters(dead_at);
"""
_RECORD = (
    "resource, seq, event_id, version, type, payload, trace_id, provenance, writer, at, "
    "contract, contract_version"
)
_COLUMNS = f"grp, {_RECORD}, error_type, error, attempts, dead_at"
_BURY = (
    f"INSERT INTO dead_letters({_COLUMNS}) VALUES({', '.join('?' * 17)}) "
    "ON CONFLICT(grp, resource, seq) DO UPDATE SET error_type=excluded.error_type, "
    "error=excluded.error, attempts=excluded.attempts, dead_at=excluded.dead_at"
)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An event set aside for a consumer group.

    Attributes:
        group: the consumer group (agent name).
        record: the event, whole (redelivered from here).
        error_type: the class name of the last error. error: its message.
        attempts: how many deliveries failed in a row (redeliveries included).
        dead_at: when it was dead-lettered, or last redelivered and failed (ISO 8601).
    """

    group: str
    record: EventRecord
    error_type: str
    error: str
    attempts: int
    dead_at: str

    def row(self) -> tuple[Any, ...]:
        r = self.record
        return (
            self.group, r.resource, r.seq, r.event_id, r.version, r.type, r.payload,
            r.trace_id, r.provenance, r.writer, r.at, r.contract, r.contract_version,
            self.error_type, self.error, self.attempts, self.dead_at,
        )  # fmt: skip


def _letter(row: tuple[Any, ...]) -> DeadLetter:
    record = EventRecord(*row[1:13])
    record = dataclasses.replace(record, payload=bytes(record.payload))  # bytea: a memoryview
    return DeadLetter(row[0], record, *row[13:17])


class DeadLetterStore:
    """The dead letters, on the checkpoint store's connection (one writer: the
    dispatcher)."""

    def __init__(self, checkpoints: CheckpointStore) -> None:
        self.path = checkpoints.path
        self._conn: Connection = checkpoints.conn
        self._conn.executescript(_SCHEMA)

    def bury(self, letter: DeadLetter) -> None:
        """Store ``letter``, move its group's checkpoint on its resource to the event
        and delete the partition's failure count, in one transaction (or update the
        letter of an event buried before).

        Raises:
            StorageError: neither was stored.
        """
        r, now = letter.record, letter.dead_at
        with transaction(self._conn, f"dead-lettering {r.event_id} in {self.path} failed") as c:
            c.execute(_BURY, letter.row())
            c.execute(UPSERT, (letter.group, r.resource, r.seq, now))
            c.execute(CLEAR_FAILURES, (letter.group, r.resource))

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        try:
            return list(self._conn.execute(sql, params).fetchall())
        except DatabaseErrors as error:
            raise StorageError(f"reading dead letters of {self.path} failed: {error}") from error

    def of(self, group: str) -> list[DeadLetter]:
        """``group``'s dead letters, by resource and event number.

        Raises:
            StorageError: the store could not be read.
        """
        sql = f"SELECT {_COLUMNS} FROM dead_letters WHERE grp=? ORDER BY resource, seq"
        return [_letter(row) for row in self._query(sql, (group,))]

    def get(self, group: str, event_id: str) -> DeadLetter:
        """The letter of ``event_id`` in ``group``.

        Raises:
            InvalidArgumentError: ``group`` or ``event_id`` is not a string.
            UnknownDeadLetterError: there is none.
            StorageError: the store could not be read.
        """
        if not (isinstance(group, str) and isinstance(event_id, str)):
            raise InvalidArgumentError(
                f"a dead letter is named by strings: {group!r}, {event_id!r}"
            )
        sql = f"SELECT {_COLUMNS} FROM dead_letters WHERE grp=? AND event_id=?"
        rows = self._query(sql, (group, event_id))
        if not rows:
            raise UnknownDeadLetterError(group, event_id)
        return _letter(rows[0])

    def settle(self, letter: DeadLetter, report: DeliveryReport, now: datetime) -> bool:
        """After a redelivery of ``letter``: delete it if it was done, else count the
        attempt and keep the new error. Returns whether it was done.

        Raises:
            StorageError: nothing was stored.
        """
        r, where = letter.record, f"settling dead letter {letter.record.event_id} failed"
        with transaction(self._conn, where) as conn:
            if report.error is None and report.done_upto >= r.seq:
                conn.execute(
                    "DELETE FROM dead_letters WHERE grp=? AND event_id=?",
                    (letter.group, r.event_id),
                )
                return True
            again = dataclasses.replace(
                letter, error_type=report.error_type, error=message(r, report),
                attempts=letter.attempts + 1, dead_at=now.isoformat(),
            )  # fmt: skip
            conn.execute(_BURY, again.row())
            return False

    def counts(self) -> dict[tuple[str, str], int]:
        """How many letters each (group, resource) holds.

        Raises:
            StorageError: the store could not be read.
        """
        sql = "SELECT grp, resource, COUNT(*) FROM dead_letters GROUP BY grp, resource"
        return {(g, r): int(n) for g, r, n in self._query(sql)}

    def forget(self, group: str) -> None:
        """Delete ``group``'s letters.

        Raises:
            StorageError: nothing was deleted.
        """
        with transaction(self._conn, f"forgetting dead letters of {group} failed") as conn:
            conn.execute("DELETE FROM dead_letters WHERE grp=?", (group,))

    def prune(self, before: str, limit: int) -> int:
        """Delete at most ``limit`` letters dead-lettered before ``before``; how many.

        Raises:
            StorageError: nothing was deleted.
        """
        with transaction(self._conn, f"pruning dead letters in {self.path} failed") as conn:
            deleted: int = conn.execute(
                "DELETE FROM dead_letters WHERE dead_at IN (SELECT dead_at FROM dead_letters "
                "WHERE dead_at < ? ORDER BY dead_at LIMIT ?)",
                (before, limit),
            ).rowcount
            return deleted


def on_the_wire(letter: DeadLetter) -> list[Any]:
    """The delivery call's argument that carries ``letter``'s event alone."""
    return EventBatch.of(letter.record.resource, [letter.record]).wire()


def message(record: EventRecord, report: DeliveryReport) -> str:
    """The report's error without its ``<event id>: <type>: `` prefix."""
    text = report.error or ""
    prefix = f"{record.event_id}: {report.error_type}: "
    return text[len(prefix) :] if text.startswith(prefix) else text


def failing(events: list[EventRecord], report: DeliveryReport) -> EventRecord | None:
    """The event a handler failure stopped at: the first after ``done_upto``; None when
    the report is not the handler's failure (a contract refusal, or no error)."""
    if report.error is None or report.reason != "handler":
        return None
    return next((event for event in events if event.seq > report.done_upto), None)


def after_failure(
    core: DispatchCore, group: str, resource: str, pending: Pending, report: DeliveryReport,
    now: datetime,
) -> DeadLetter | None:  # fmt: skip
    """After ``report`` (already acknowledged: the events before the failure are
    checkpointed): count the handler's failure at its event in the store and, at
    ``max_delivery_attempts``, bury the event and move the checkpoint past it instead;
    nothing if the partition was replayed while the batch was out. Returns the letter if
    it was buried.

    Raises:
        StorageError: the count, or the letter and the move, were not stored (the event
            is delivered again; that failure is not counted).
    """
    record = failing(pending.events, report)
    limit = None if record is None else core.policy.max_delivery_attempts
    if record is None or limit is None:  # None: never dead-letter, nothing to count
        return None
    if core.replayed(group, resource, pending):
        return None  # a replay came while the batch was out: it is delivered again
    attempts = core.attempts(group, resource, record.seq)
    if attempts < limit:
        core.count_failure(group, resource, record.seq, attempts)
        return None
    letter = DeadLetter(
        group, record, report.error_type, message(record, report), attempts, now.isoformat()
    )
    if not core.bury(letter, expected=max(report.done_upto, pending.after)):
        return None  # a replay moved the checkpoint meanwhile: it decides
    return letter
