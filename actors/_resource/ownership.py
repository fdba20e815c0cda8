"""Ownership of entities, held by the resource that holds them.

An entity (a draft, an order) named by a ``@write(entity=...)`` has at most one owning
agent. The record lives in the resource's own SQLite file, next to its log, so the check
is local to the single writer (no extra round trip) and survives restarts. Owners are
agent names, not incarnations: every replica of the owner writes, a killed owner's entity
stays its own, and its restarted replicas (new epoch, new token) write again.

A change (own, transfer, release) is applied by the resource's applier in arrival order
with the writes, so a write sent before a transfer is judged under the old owner; each
change is logged with the resource version it took effect at, its handoff note, and the
task and trace it came from (join ``task_id`` with the supervisor's handoff records).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import datetime
from enum import StrEnum
from typing import Any

from policies import Durability, ResourceRetention
from runtime import (
    ConfigurationError,
    DatabaseErrors,
    FencedError,
    IdempotencyKeyReusedError,
    InvalidArgumentError,
    Location,
    NotOwnerError,
    StorageError,
    UnauthorizedWriterError,
    check_name,
    connect,
    decode,
    encode,
    transaction,
)

from .calls import WriteCall, decode_arguments
from .declare import Operation

SYSTEM = "system"
"""The driver's writer name: it may own, transfer and release any entity, but writes to
an owned entity only its owner may make."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS owners(entity TEXT PRIMARY KEY, owner TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ownership_log(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    entity TEXT NOT NULL,
    action TEXT NOT NULL,
    previous TEXT NOT NULL,
    owner TEXT NOT NULL,
    by TEXT NOT NULL,
    version INTEGER NOT NULL,
    handoff TEXT NOT NULL,
    task_id TEXT NOT NULL,
    trace_id TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ownership_log_entity ON ownership_log(entity, id);
CREATE INDEX IF NOT EXISTS ownership_log_at ON ownership_log(at);
"""
OWNERSHIP_REFUSALS = (
    NotOwnerError, UnauthorizedWriterError, InvalidArgumentError, IdempotencyKeyReusedError,
)  # fmt: skip
"""The errors a refused change raises (logged as rejections)."""
_REASONS = {
    NotOwnerError: "not_owner", UnauthorizedWriterError: "unauthorized",
    InvalidArgumentError: "invalid", IdempotencyKeyReusedError: "key_reused",
}  # fmt: skip
_MAX_TEXT = 4096  # entity names and handoff notes: a record, not a payload


def refusal_reason(error: Exception) -> str:
    """The rejection reason of a refused change: ``not_owner``, ``unauthorized``..."""
    return next((r for kind, r in _REASONS.items() if isinstance(error, kind)), "invalid")


class OwnershipAction(StrEnum):
    """What a change does: give an unowned entity an owner, move it, or free it."""

    OWN = "own"
    TRANSFER = "transfer"
    RELEASE = "release"


@dataclass(frozen=True, slots=True)
class OwnershipRecord:
    """One change of an entity's owner.

    Attributes:
        entity: the entity. action: ``"own"``, ``"transfer"`` or ``"release"``.
        previous: the owner before ("" for none). owner: the owner after ("" for none).
        by: who made the change (an agent, or ``"system"``).
        version: the resource's version when it took effect: every write up to it was
            judged under ``previous``, every later one under ``owner``.
        handoff: the note given with a transfer (what was handed over, which stage ended).
        task_id: the task that made it (join with ``Supervisor.handoffs()``), or "".
        trace_id: its trace. at: when (ISO 8601, UTC). key: its idempotency key.
    """

    entity: str
    action: str
    previous: str
    owner: str
    by: str
    version: int
    handoff: str
    task_id: str
    trace_id: str
    at: str
    key: str


_RECORD_COLUMNS = ", ".join(f.name for f in fields(OwnershipRecord))


@dataclass(frozen=True, slots=True)
class OwnershipChange:
    """A change as a handle stamps it; the resource takes the writer from ``token``."""

    action: str
    entity: str
    to: str
    handoff: str
    key: str
    writer: str
    writer_epoch: int
    token: str
    trace_id: str
    task_id: str

    def as_call(self) -> WriteCall:
        """The change as a write call, to identify its writer and log its refusal."""
        return WriteCall(
            op=f"ownership.{self.action}", args=b"", writer=self.writer,
            writer_epoch=self.writer_epoch, idem_key=self.key, trace_id=self.trace_id,
            token=self.token,
        )  # fmt: skip


_CHANGE_TYPES = [
    (f.name, int if f.name == "writer_epoch" else str) for f in fields(OwnershipChange)
]


def pack_change(change: OwnershipChange) -> bytes:
    """The wire form of a change."""
    return encode([getattr(change, name) for name, _ in _CHANGE_TYPES])


def unpack_change(blob: Any) -> OwnershipChange:
    """A change from its wire form.

    Raises:
        InvalidArgumentError: not the wire form of a change, an unknown action, an empty
            entity or key, or text over 4 KiB.
    """
    values = decode(blob) if isinstance(blob, bytes) else None
    if not isinstance(values, list) or len(values) != len(_CHANGE_TYPES):
        raise InvalidArgumentError(f"an ownership change must be {len(_CHANGE_TYPES)} fields")
    for value, (name, kind) in zip(values, _CHANGE_TYPES, strict=True):
        if type(value) is not kind or (isinstance(value, str) and len(value) > _MAX_TEXT):
            raise InvalidArgumentError(f"ownership change: bad {name}: {str(value)[:80]!r}")
    change = OwnershipChange(*values)
    if change.action not in set(OwnershipAction) or not change.entity or not change.key:
        raise InvalidArgumentError(f"ownership change: bad action, entity or key: {change}")
    return change


class OwnershipBook:
    """Current owners in memory, and the ``owners`` / ``ownership_log`` tables.

    Args:
        path: the resource's SQLite file (its log opened it first).
        resource: the resource's name, for errors.
        admits: whether an agent may write to the resource at all (its authority).
        durability: as the resource's log.
        retention: ``audit`` is how long the ownership log keeps a change.
    """

    def __init__(
        self,
        path: Location,
        resource: str,
        admits: Callable[[str], bool],
        durability: Durability = Durability.FULL,
        retention: ResourceRetention | None = None,
    ) -> None:
        self._resource = resource
        self._admits = admits
        self._retention = retention or ResourceRetention()
        self._conn = connect(path, durability)
        self._conn.executescript(_SCHEMA)
        self._owners: dict[str, str] = dict(self._conn.execute("SELECT entity, owner FROM owners"))

    def close(self) -> None:
        self._conn.close()

    def owner(self, entity: str) -> str | None:
        """The entity's owner, or None."""
        return self._owners.get(entity)

    def refusal(self, op: Operation, args: bytes, writer: str) -> tuple[Exception, str] | None:
        """Why ``writer`` may not run ``op`` with ``args`` (the error and the rejection's
        reason), or None: the op declares no entity, the entity is not owned, or
        ``writer`` owns it. Costs nothing for an op without an entity or when nothing is
        owned."""
        if op.entity is None or not self._owners:
            return None
        try:
            entity = op.entity_of(*decode_arguments(args))
        except InvalidArgumentError as error:
            return error, "invalid"
        owner = self._owners.get(entity) if entity is not None else None
        if owner is None or owner == writer:
            return None
        return NotOwnerError(self._resource, entity or "", owner, writer), "not_owner"

    # long: the rules of the three changes read best side by side, in one place.
    def change(
        self, change: OwnershipChange, writer: str, incarnation: int, version: int, at: datetime
    ) -> OwnershipRecord:
        """Apply ``change`` made by ``writer`` (identified from its token) and log it.

        The system may own, transfer and release any entity; an agent may claim an
        unowned entity for itself, and transfer or release one it owns. A change whose
        key is already logged returns that record (a retry applies nothing twice).

        Raises:
            NotOwnerError: the entity is owned by another (own), or ``writer`` is neither
                its owner nor the system (transfer, release, or an unowned entity).
            UnauthorizedWriterError: the new owner is not a declared writer.
            InvalidArgumentError: a bad new owner's name, or an agent claiming an entity
                for another.
            IdempotencyKeyReusedError: the key was logged with another change.
            FencedError: a newer incarnation of the resource has opened the file.
            StorageError: the change could not be stored; nothing changed.
        """
        done = self._logged(change.key)
        if done is not None:
            if (done.entity, done.action) != (change.entity, change.action):
                raise IdempotencyKeyReusedError(self._resource, change.key)
            return done
        current = self._owners.get(change.entity, "")
        action = OwnershipAction(change.action)
        new = self._new_owner(change) if action is not OwnershipAction.RELEASE else ""
        if action is OwnershipAction.OWN:
            if writer not in (SYSTEM, new):
                raise InvalidArgumentError(f"{writer!r} may claim an entity only for itself")
            if current not in ("", new):
                raise NotOwnerError(self._resource, change.entity, current, writer)
        elif not current or writer not in (SYSTEM, current):
            raise NotOwnerError(self._resource, change.entity, current, writer)
        record = OwnershipRecord(
            change.entity, action.value, current, new, writer, version, change.handoff,
            change.task_id, change.trace_id, at.isoformat(), change.key,
        )  # fmt: skip
        self._store(record, incarnation, at)
        if new:
            self._owners[change.entity] = new
        else:
            self._owners.pop(change.entity, None)
        return record

    def _new_owner(self, change: OwnershipChange) -> str:
        try:
            check_name("agent", change.to)
        except ConfigurationError as error:
            raise InvalidArgumentError(f"ownership change: {error}") from None
        if not self._admits(change.to):
            why = f"{change.to!r} cannot own {change.entity!r}: not a declared writer"
            raise UnauthorizedWriterError(self._resource, change.to, why=why)
        return change.to

    def _store(self, record: OwnershipRecord, incarnation: int, at: datetime) -> None:
        where = f"{self._resource}: ownership change"
        with transaction(self._conn, where) as conn:
            row = conn.execute("SELECT value FROM meta WHERE key='incarnation'").fetchone()
            if row is None or row[0] != incarnation:
                raise FencedError(self._resource, f"incarnation {incarnation} superseded")
            if record.owner:
                conn.execute(
                    "INSERT INTO owners(entity, owner) VALUES(?, ?) ON CONFLICT(entity) "
                    "DO UPDATE SET owner=excluded.owner",
                    (record.entity, record.owner),
                )
            else:
                conn.execute("DELETE FROM owners WHERE entity = ?", (record.entity,))
            marks = ",".join("?" * len(fields(OwnershipRecord)))
            conn.execute(
                f"INSERT INTO ownership_log({_RECORD_COLUMNS}) VALUES({marks})",
                [getattr(record, f.name) for f in fields(OwnershipRecord)],
            )
            before = (at - self._retention.audit).isoformat()
            conn.execute(  # retention: one bounded pass per change
                "DELETE FROM ownership_log WHERE id IN (SELECT id FROM ownership_log "
                "WHERE at < ? ORDER BY at LIMIT ?)",
                (before, self._retention.compact_batch),
            )

    def _logged(self, key: str) -> OwnershipRecord | None:
        rows = self._read(f"SELECT {_RECORD_COLUMNS} FROM ownership_log WHERE key = ?", (key,))
        return OwnershipRecord(*rows[0]) if rows else None

    def history(self, entity: str, limit: int = 1000) -> list[OwnershipRecord]:
        """The entity's changes still kept (``ResourceRetention.audit``), oldest first.

        Raises:
            StorageError: the log could not be read.
        """
        rows = self._read(
            f"SELECT {_RECORD_COLUMNS} FROM (SELECT * FROM ownership_log WHERE entity = ? "
            "ORDER BY id DESC LIMIT ?) AS recent ORDER BY id",
            (entity, limit),
        )
        return [OwnershipRecord(*row) for row in rows]

    def _read(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        try:
            return list(self._conn.execute(sql, params).fetchall())
        except DatabaseErrors as error:
            raise StorageError(f"{self._resource}: reading ownership failed: {error}") from error
