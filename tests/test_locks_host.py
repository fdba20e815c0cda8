"""The locks actor's host as a plain class in an event loop: waiters hear their outcome
only after it is committed, the actor's own timer times waits out, and a failed commit
fails its batch's callers with ``StorageError`` and recovers from storage."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from waiting import until

from actors.lowlevel import Acquire, LocksHost
from policies import LockPolicy
from runtime import LockTimeoutError, StorageError

pytestmark = pytest.mark.timeout(60)


def request(lease: str, owner: str, *keys: str, **kw: Any) -> Acquire:
    return Acquire(lease_id=lease, owner=owner, agent=owner, keys=keys, **kw)


def test_a_waiter_is_granted_when_the_holder_releases(tmp_path: Path) -> None:
    async def scenario() -> None:
        host = LocksHost(str(tmp_path), LockPolicy())
        first = await host.acquire(request("l1", "a", "k:1"))
        waiting = asyncio.ensure_future(host.acquire(request("l2", "b", "k:1")))
        await until(lambda: host._open().status().waiting == 1, "b waits")
        assert not waiting.done()
        assert await host.release("l1") is True
        granted = await asyncio.wait_for(waiting, 10)
        assert granted.tokens["k:1"] > first.tokens["k:1"]

    asyncio.run(scenario())


def test_the_actors_own_timer_times_a_wait_out(tmp_path: Path) -> None:
    async def scenario() -> None:
        host = LocksHost(str(tmp_path), LockPolicy(tick=timedelta(milliseconds=10)))
        await host.acquire(request("l1", "a", "k:1"))
        with pytest.raises(LockTimeoutError):
            await asyncio.wait_for(host.acquire(request("l2", "b", "k:1", timeout_s=0.05)), 10)

    asyncio.run(scenario())


def test_a_failed_commit_fails_its_callers_and_the_core_recovers(tmp_path: Path) -> None:
    async def scenario() -> None:
        host = LocksHost(str(tmp_path), LockPolicy())
        await host.acquire(request("l1", "a", "k:1"))
        store = host._open()._store
        real = store.commit

        def broken(changes: Any) -> None:
            store.commit = real  # type: ignore[method-assign]
            raise StorageError("disk full")

        store.commit = broken  # type: ignore[method-assign]
        with pytest.raises(StorageError):
            await host.acquire(request("l2", "b", "k:1"))  # its wait was never stored
        status = await host.status()
        assert (status.incarnation, status.held, status.waiting) == (2, 1, 0)
        assert await host.release("l1") is True
        assert (await host.acquire(request("l3", "c", "k:1"))).tokens["k:1"] == 2

    asyncio.run(scenario())
