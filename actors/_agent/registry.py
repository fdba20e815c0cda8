"""The durable registry of agents: each agent name's current epoch, and the writer
tokens (capabilities) issued to its incarnations.

A writer's identity is a capability, not a claim: the system issues each incarnation
(and the driver, as ``"system"``) an unguessable token, kept here only as its SHA-256.
A resource maps a write's token to (writer, epoch) by reading this registry; bumping an
agent's epoch (the kill switch) revokes its tokens, and resources refuse the old epoch.
A revoked token is deleted ``TokenRetention.revoked`` after (pruned whenever a token is
revoked), so the table holds the live tokens and the recently revoked ones only.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Protocol

from policies import TokenRetention
from runtime import (
    Clock,
    Connection,
    DatabaseErrors,
    Location,
    StorageError,
    SystemClock,
    connect,
    transaction,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS agents(name TEXT PRIMARY KEY, epoch INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS tokens(
    digest BLOB PRIMARY KEY,
    writer TEXT NOT NULL,
    epoch INTEGER NOT NULL,
    revoked INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS tokens_writer ON tokens(writer);
"""
_LATER = (  # columns and indexes added after the first release of the table
    "ALTER TABLE tokens ADD COLUMN revoked_at REAL",
    "CREATE INDEX IF NOT EXISTS tokens_revoked ON tokens(revoked_at) WHERE revoked_at IS NOT NULL",
    # tokens revoked before the column existed are counted from now
    "UPDATE tokens SET revoked_at = :now WHERE revoked = 1 AND revoked_at IS NULL",
)


@dataclass(frozen=True, slots=True)
class TokenHolder:
    """Who a writer token was issued to."""

    writer: str
    epoch: int
    revoked: bool


class Tokens(Protocol):
    """Where a resource looks up writer tokens: the system's agent registry."""

    def holder(self, token: str) -> TokenHolder | None: ...


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class AgentRegistry:
    """Agent epochs and writer tokens in ``<root>/system.sqlite``.

    Args:
        root: the storage root.
        retention: how long revoked tokens are kept. Default ``TokenRetention()``.
        clock: the time of revocations. Default the system clock.
    """

    def __init__(
        self, root: Location, *, retention: TokenRetention | None = None, clock: Clock | None = None
    ) -> None:
        self.path = root / "system.sqlite"
        self._retention = retention or TokenRetention()
        self._clock = clock or SystemClock()
        self._conn = connect(self.path)
        self._conn.executescript(_SCHEMA)
        columns = {row[1] for row in self._conn.execute("PRAGMA table_info(tokens)")}
        with transaction(self._conn, f"agent registry {self.path}") as conn:
            for statement in _LATER[0 if "revoked_at" not in columns else 1 :]:
                conn.execute(statement, {"now": self._now()} if ":now" in statement else {})

    def current_epoch(self, name: str) -> int:
        """The agent's epoch, registering it at epoch 1 if new.

        Raises:
            StorageError: the registry could not be read or written.
        """
        with transaction(self._conn, f"agent registry {self.path}") as conn:
            conn.execute("INSERT OR IGNORE INTO agents(name, epoch) VALUES(?, 1)", (name,))
            row = conn.execute("SELECT epoch FROM agents WHERE name = ?", (name,)).fetchone()
        return int(row[0])

    def bump_epoch(self, name: str) -> int:
        """Make the agent's current epoch stale and revoke its tokens; return the new epoch.

        Raises:
            StorageError: the registry could not be written; the epoch is unchanged.
        """
        with transaction(self._conn, f"agent registry {self.path}") as conn:
            conn.execute("INSERT OR IGNORE INTO agents(name, epoch) VALUES(?, 1)", (name,))
            conn.execute("UPDATE agents SET epoch = epoch + 1 WHERE name = ?", (name,))
            row = conn.execute("SELECT epoch FROM agents WHERE name = ?", (name,)).fetchone()
            conn.execute(
                "UPDATE tokens SET revoked = 1, revoked_at = ? WHERE writer = ? AND revoked = 0",
                (self._now(), name),
            )
            self._prune(conn)
        return int(row[0])

    def revoke_token(self, token: str) -> None:
        """Revoke one token (a driver's, when its system shuts down).

        Raises:
            StorageError: the registry could not be written.
        """
        with transaction(self._conn, f"agent registry {self.path}") as conn:
            conn.execute(
                "UPDATE tokens SET revoked = 1, revoked_at = ? WHERE digest = ? AND revoked = 0",
                (self._now(), _digest(token)),
            )
            self._prune(conn)

    def _prune(self, conn: Connection) -> None:
        """Delete the tokens revoked longer ago than ``TokenRetention.revoked``."""
        before = self._now() - self._retention.revoked.total_seconds()
        conn.execute("DELETE FROM tokens WHERE revoked_at < ?", (before,))

    def _now(self) -> float:
        return self._clock.now().timestamp()

    def issue_token(self, writer: str, epoch: int) -> str:
        """A new unguessable token for ``writer`` at ``epoch``; only its digest is kept.

        Raises:
            StorageError: the registry could not be written.
        """
        token = secrets.token_urlsafe(32)
        with transaction(self._conn, f"agent registry {self.path}") as conn:
            conn.execute(
                "INSERT INTO tokens(digest, writer, epoch) VALUES(?, ?, ?)",
                (_digest(token), writer, epoch),
            )
        return token

    def issue_tokens(self, writer: str, epoch: int, count: int) -> list[str]:
        """``count`` new tokens for ``writer`` at ``epoch``, in one transaction.

        Raises:
            StorageError: the registry could not be written; no token was issued.
        """
        tokens = [secrets.token_urlsafe(32) for _ in range(count)]
        with transaction(self._conn, f"agent registry {self.path}") as conn:
            conn.executemany(
                "INSERT INTO tokens(digest, writer, epoch) VALUES(?, ?, ?)",
                [(_digest(token), writer, epoch) for token in tokens],
            )
        return tokens

    def holder(self, token: str) -> TokenHolder | None:
        """Who ``token`` was issued to, or None for a token never issued.

        Raises:
            StorageError: the registry could not be read.
        """
        try:
            row = self._conn.execute(
                "SELECT writer, epoch, revoked FROM tokens WHERE digest = ?", (_digest(token),)
            ).fetchone()
        except DatabaseErrors as error:
            raise StorageError(f"agent registry {self.path}: {error}") from error
        return None if row is None else TokenHolder(row[0], int(row[1]), bool(row[2]))

    def close(self) -> None:
        self._conn.close()
