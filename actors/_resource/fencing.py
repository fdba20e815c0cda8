"""Fencing of lease tokens at the resource (Kleppmann): the newest token seen per key.

A write made under leases carries each lease's (key, token) pairs. The resource admits it
only if no token is older than the newest it has seen for that key, and records the
newest in the ``lease_fence`` table in the same transaction as the write (or as the write's
rejection: a token the resource has seen stays seen, whether or not the write applied).
A holder paused past its TTL, whose key went to a newer lease that wrote, is refused
with ``StaleLeaseError`` and the attempt is logged with reason ``stale_lease``.

Retention: a key's row is deleted once nothing under a lease has written it for the
resource's audit window (``ResourceRetention.audit``, 7 days); a holder paused longer than
that, on a key nobody wrote meanwhile, is no longer refused.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from runtime import Clock, Connection, StaleLeaseError

MAX_LEASES = 64
"""Most (key, token) pairs one write may carry."""
_KEY_CHARS = 256
_MAX_TOKEN = 2**63 - 1  # what a SQLite integer holds

SCHEMA = """
CREATE TABLE IF NOT EXISTS lease_fence(
    key TEXT PRIMARY KEY,
    token INTEGER NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS lease_fence_at ON lease_fence(at);
"""
DELETE_OLD = (
    "DELETE FROM lease_fence WHERE key IN "
    "(SELECT key FROM lease_fence WHERE at < ? ORDER BY at LIMIT ?)"
)
"""The compaction pass's statement: rows not written since the audit window."""


def checked_leases(value: Any) -> tuple[tuple[str, int], ...] | str:
    """A write's wire ``leases`` field as pairs, or why it is malformed."""
    if not isinstance(value, list) or len(value) > MAX_LEASES:
        return f"leases must be a list of at most {MAX_LEASES} [key, token] pairs"
    pairs = []
    for pair in value:
        if not (isinstance(pair, list) and len(pair) == 2):
            return "a lease must be a [key, token] pair"
        key, token = pair
        if not isinstance(key, str) or not 0 < len(key) <= _KEY_CHARS:
            return f"a lease key must be a str of 1 to {_KEY_CHARS} characters"
        if type(token) is not int or not 0 <= token <= _MAX_TOKEN:
            return "a lease token must be an int >= 0"
        pairs.append((key, token))
    return tuple(pairs)


def load(conn: Connection) -> dict[str, int]:
    """The newest token seen per key, as stored."""
    return dict(conn.execute("SELECT key, token FROM lease_fence").fetchall())


def store(conn: Connection, rows: Iterable[tuple[str, int, str]]) -> None:
    """Keep ``(key, token, at)`` rows, never lowering a key's token (inside the commit)."""
    conn.executemany(
        "INSERT INTO lease_fence(key, token, at) VALUES(?, ?, ?) ON CONFLICT(key) DO UPDATE "
        "SET token = max(token, excluded.token), at = excluded.at",
        rows,
    )


class LeaseFences:
    """The newest token seen per key, in memory, with the changes of the batch being
    applied (``pending``): kept by ``committed``, forgotten by ``discard``."""

    def __init__(self, resource: str, newest: dict[str, int], clock: Clock) -> None:
        self._resource = resource
        self._clock = clock
        self.newest = newest
        self.pending: dict[str, tuple[int, str]] = {}

    def admit(self, leases: tuple[tuple[str, int], ...]) -> StaleLeaseError | None:
        """Note the write's tokens; or, for a token older than the newest seen for its
        key, the error that refuses the write (nothing noted)."""
        if not leases:
            return None
        for key, token in leases:
            newest = max(self.newest.get(key, 0), self.pending.get(key, (0, ""))[0])
            if token < newest:
                return StaleLeaseError(self._resource, key, token, newest)
        at = self._clock.now().isoformat()
        for key, token in leases:
            if token > self.newest.get(key, 0):
                self.pending[key] = (max(token, self.pending.get(key, (0, ""))[0]), at)
        return None

    def rows(self) -> list[tuple[str, int, str]]:
        """The pending changes as ``lease_fence`` rows."""
        return [(key, token, at) for key, (token, at) in self.pending.items()]

    def committed(self) -> None:
        for key, (token, _) in self.pending.items():
            self.newest[key] = max(self.newest.get(key, 0), token)
        self.pending.clear()

    def discard(self) -> None:
        self.pending.clear()
