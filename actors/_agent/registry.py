"""The durable registry of agents: each agent name's current epoch.

A writer's epoch travels with every write it makes; bumping it (the kill switch) makes
resources refuse the old incarnation's writes.
"""

from __future__ import annotations

from pathlib import Path

from runtime import connect, transaction


class AgentRegistry:
    """Agent epochs in ``<root>/system.sqlite``."""

    def __init__(self, root: Path) -> None:
        self.path = root / "system.sqlite"
        self._conn = connect(self.path)
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS agents(name TEXT PRIMARY KEY, epoch INTEGER NOT NULL)"
        )

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
        """Make the agent's current epoch stale; return the new one.

        Raises:
            StorageError: the registry could not be written; the epoch is unchanged.
        """
        with transaction(self._conn, f"agent registry {self.path}") as conn:
            conn.execute("INSERT OR IGNORE INTO agents(name, epoch) VALUES(?, 1)", (name,))
            conn.execute("UPDATE agents SET epoch = epoch + 1 WHERE name = ?", (name,))
            row = conn.execute("SELECT epoch FROM agents WHERE name = ?", (name,)).fetchone()
        return int(row[0])

    def close(self) -> None:
        self._conn.close()
