"""The agent registry's tokens: a revoked token is deleted after its window, live tokens
and recently revoked ones stay."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

from actors import System
from actors._agent.registry import AgentRegistry, TokenHolder
from policies import TokenRetention
from runtime.testing import FakeClock

HOUR = timedelta(hours=1).total_seconds()


def test_revoked_tokens_go_after_their_window_live_ones_stay(tmp_path: Path) -> None:
    clock = FakeClock()
    registry = AgentRegistry(
        tmp_path, retention=TokenRetention(revoked=timedelta(hours=2)), clock=clock
    )
    old = registry.issue_token("a", 1)
    driver = registry.issue_token("system", 0)
    live_b = registry.issue_token("b", 1)
    registry.bump_epoch("a")
    registry.revoke_token(driver)
    clock.advance(HOUR)
    new_a = registry.issue_token("a", 2)
    assert registry.holder(old) == TokenHolder("a", 1, revoked=True)  # inside the window
    clock.advance(1.5 * HOUR)
    registry.bump_epoch("c")  # any revocation prunes
    assert registry.holder(old) is None
    assert registry.holder(driver) is None
    assert registry.holder(live_b) == TokenHolder("b", 1, revoked=False)
    assert registry.holder(new_a) == TokenHolder("a", 2, revoked=False)
    assert registry.current_epoch("a") == 2


def test_a_registry_from_before_the_window_counts_its_revoked_tokens_from_now(
    tmp_path: Path,
) -> None:
    conn = sqlite3.connect(tmp_path / "system.sqlite")
    conn.executescript(
        "CREATE TABLE agents(name TEXT PRIMARY KEY, epoch INTEGER NOT NULL);"
        "CREATE TABLE tokens(digest BLOB PRIMARY KEY, writer TEXT NOT NULL,"
        " epoch INTEGER NOT NULL, revoked INTEGER NOT NULL DEFAULT 0);"
        "INSERT INTO tokens VALUES(x'00', 'a', 1, 1);"
    )
    conn.close()
    clock = FakeClock()
    window = TokenRetention(revoked=timedelta(hours=1))
    registry = AgentRegistry(tmp_path, retention=window, clock=clock)
    registry.bump_epoch("b")
    assert registry._conn.execute("SELECT COUNT(*) FROM tokens").fetchone()[0] == 1
    clock.advance(2 * HOUR)
    registry.bump_epoch("b")
    assert registry._conn.execute("SELECT COUNT(*) FROM tokens").fetchone()[0] == 0
    registry.close()
    AgentRegistry(tmp_path).close()  # opening again is a no-op


def test_a_driver_revokes_its_token_when_its_system_shuts_down(
    ray_session: None, tmp_path: Path
) -> None:
    system = System(root=tmp_path, namespace="tokens", owns_ray=False)  # asks Ray's GCS
    token = system._driver_identity.token
    system.shutdown()
    registry = AgentRegistry(tmp_path)
    assert registry.holder(token) == TokenHolder("system", 0, revoked=True)
