"""Group commit with the fsync on its own thread (``runtime.GroupSync``) and what the
resource actor promises with it: no reply (write, duplicate, read, fence) before the
commits it may show are on disk; many commits share one fsync; order, versions and
idempotency unchanged. The Ray kill storm is in tests/test_resource_ray.py."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from resources_for_tests import Inventory
from waiting import until

from actors._agent.registry import AgentRegistry
from actors._resource.calls import WriteCall, pack_calls, unpack_results
from actors.lowlevel import ResourceHost
from policies import Durability, ResourcePolicy, WriteAuthority
from runtime import GroupSync, StorageError, connect, defer_sync, encode

pytestmark = pytest.mark.timeout(60)


class GatedSync:
    """A sync that waits until the test opens its gate, counting the syncs begun."""

    def __init__(self) -> None:
        self.began = 0
        self.gate = threading.Event()
        self.fail_next = False

    def __call__(self) -> None:
        self.began += 1
        if not self.gate.wait(30):
            raise AssertionError("the test never opened the gate")
        if self.fail_next:
            self.fail_next = False
            raise OSError(5, "Input/output error")


def test_defer_sync_takes_the_fsync_from_a_full_sqlite_commit_only(tmp_path: Path) -> None:
    full = connect(tmp_path / "full.sqlite", Durability.FULL)
    sync = defer_sync(full, tmp_path / "full.sqlite")
    assert sync is not None
    assert full.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    full.execute("CREATE TABLE t(x)")
    sync()  # the WAL file now exists: synced without error
    assert (tmp_path / "full.sqlite-wal").exists()
    process = connect(tmp_path / "process.sqlite", Durability.PROCESS)
    assert defer_sync(process, tmp_path / "process.sqlite") is None
    assert defer_sync(object(), tmp_path / "pg") is None  # not SQLite: commits are flushed


def test_nothing_deferred_settles_at_once() -> None:
    async def scenario() -> None:
        group = GroupSync(None, "r")
        group.committed()
        await asyncio.wait_for(group.settled(), 1)
        assert not group.deferred

    asyncio.run(scenario())


def test_settled_waits_for_the_sync_after_the_commit_and_commits_meanwhile_share_one() -> None:
    async def scenario() -> None:
        sync = GatedSync()
        group = GroupSync(sync, "r")
        group.committed()  # its sync starts at once
        await until(lambda: sync.began == 1, "the first sync began")
        first = asyncio.ensure_future(group.settled())
        group.committed()  # three commits while the first sync runs
        group.committed()
        group.committed()
        later = [asyncio.ensure_future(group.settled()) for _ in range(3)]
        await asyncio.sleep(0.05)
        assert not first.done() and not any(f.done() for f in later)
        sync.gate.set()
        await asyncio.wait_for(asyncio.gather(first, *later), 10)
        assert sync.began == 2  # one for the first commit, one for the three after it
        await asyncio.wait_for(group.settled(), 1)  # nothing new: no sync
        assert sync.began == 2

    asyncio.run(scenario())


def test_a_failed_sync_fails_every_waiter_and_a_later_commit_syncs_again() -> None:
    async def scenario() -> None:
        sync = GatedSync()
        sync.fail_next = True
        group = GroupSync(sync, "inventory")
        group.committed()
        await until(lambda: sync.began == 1, "the first sync began")
        first = asyncio.ensure_future(group.settled())
        group.committed()  # during the sync that fails: its waiter must not hang
        second = asyncio.ensure_future(group.settled())
        await asyncio.sleep(0)
        sync.gate.set()
        for waiting in (first, second):
            with pytest.raises(StorageError, match="inventory: sync failed"):
                await asyncio.wait_for(waiting, 10)
        group.committed()
        await asyncio.wait_for(group.settled(), 10)
        assert sync.began == 2

    asyncio.run(scenario())


def _call(sku: str, qty: int, token: str, key: str = "") -> WriteCall:
    return WriteCall("restock", encode([[sku, qty], {}]), "orders", 1,
                     key or uuid.uuid4().hex, "a" * 32, None, token)  # fmt: skip


def _host(root: Path) -> tuple[ResourceHost, GatedSync]:
    host = ResourceHost(Inventory, "inventory", str(root), ResourcePolicy(), WriteAuthority())
    asyncio.run(host.describe())  # opens the core and its group sync
    gated = GatedSync()
    assert host._group is not None and host._group.deferred
    host._group._sync = gated  # the real one is an fdatasync: too fast to watch
    return host, gated


def _logged(root: Path) -> list[tuple[int, str]]:
    with sqlite3.connect(root / "resources" / "inventory.sqlite") as conn:
        return list(conn.execute("SELECT version, idem_key FROM log ORDER BY version"))


def test_a_write_is_acknowledged_and_read_only_once_its_commit_is_on_disk(
    tmp_path: Path,
) -> None:
    token = AgentRegistry(tmp_path).issue_token("orders", 1)
    host, gated = _host(tmp_path)

    async def scenario() -> None:
        key = uuid.uuid4().hex
        write = asyncio.ensure_future(host.submit(pack_calls([_call("A", 5, token, key)])))
        await until(lambda: gated.began == 1, "the commit's sync began")
        assert _logged(tmp_path) == [(1, key)]  # committed to the log, not yet on disk
        retry = asyncio.ensure_future(host.submit(pack_calls([_call("A", 5, token, key)])))
        read = asyncio.ensure_future(host.read("available", encode([["A"], {}])))
        fence = asyncio.ensure_future(host.fence_writer("pricing", 1))
        await asyncio.sleep(0.1)
        assert not any(f.done() for f in (write, retry, read, fence))
        gated.gate.set()
        (first,) = unpack_results(await asyncio.wait_for(write, 10))
        (again,) = unpack_results(await asyncio.wait_for(retry, 10))
        assert (first.version, first.value, first.duplicate) == (1, 5, False)
        assert (again.version, again.value, again.duplicate) == (1, 5, True)
        assert (await asyncio.wait_for(read, 10)).value == 5
        await asyncio.wait_for(fence, 10)
        assert _logged(tmp_path) == [(1, key)]  # applied once

    asyncio.run(scenario())


def test_writes_arriving_during_a_sync_commit_in_order_and_share_the_next_sync(
    tmp_path: Path,
) -> None:
    token = AgentRegistry(tmp_path).issue_token("orders", 1)
    host, gated = _host(tmp_path)

    async def scenario() -> list[Any]:
        first = asyncio.ensure_future(host.submit(pack_calls([_call("A", 1, token)])))
        await until(lambda: gated.began == 1, "the first sync began")
        rest = [
            asyncio.ensure_future(host.submit(pack_calls([_call("A", 1, token)])))
            for _ in range(20)
        ]
        await until(lambda: len(_logged(tmp_path)) == 21, "all 21 committed")
        gated.gate.set()
        blobs = await asyncio.wait_for(asyncio.gather(first, *rest), 10)
        return [r for blob in blobs for r in unpack_results(blob)]

    results = asyncio.run(scenario())
    assert [(r.version, r.value) for r in results] == [(v, v) for v in range(1, 22)]
    assert [v for v, _ in _logged(tmp_path)] == list(range(1, 22))
    assert gated.began == 2  # the 20 writes that came during the first sync: one more
