"""Group commit with the fsync on a thread of its own (``Durability.FULL`` on SQLite).

A state actor's applier commits each batch to SQLite's write-ahead log without waiting
for the disk (``synchronous=NORMAL``: the commit is in the operating system's page
cache, where it survives the death of any process), and notes the commit here. A
reply that acknowledges a commit awaits ``settled()``: every commit noted so far is on
disk (one ``fdatasync`` of the WAL file, on a thread, while the event loop goes on
applying and committing the next writes). Commits noted while an fsync runs share the
next one. Nothing acknowledged is ever only in memory; what a crash of the machine may
lose is only what nobody was told had happened.

Where nothing is deferred (PostgreSQL, whose ``COMMIT`` returns once it is flushed, or
``Durability.PROCESS``), a commit is as durable as it gets when it returns and
``settled()`` returns at once.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .errors import StorageError

Sync = Callable[[], None]
"""Makes every commit made so far durable, or raises ``OSError``."""

_FULL = 2  # what ``PRAGMA synchronous`` reads for FULL


def defer_sync(conn: Any, path: Path | Any) -> Sync | None:
    """Stop ``conn`` (a store's connection from ``connect``) from syncing at each commit
    and return what syncs its commits instead (for ``GroupSync``); None when its commits
    are already as durable as they will be (PostgreSQL, or SQLite below FULL).

    Safe because in WAL mode with ``synchronous=NORMAL`` SQLite still syncs the WAL
    before every checkpoint: the only thing left unsynced is the newest commits' frames
    in the WAL file, which the returned function flushes.
    """
    if not isinstance(conn, sqlite3.Connection):
        return None
    if conn.execute("PRAGMA synchronous").fetchone()[0] != _FULL:
        return None
    conn.execute("PRAGMA synchronous=NORMAL")
    return lambda: sync_wal(Path(f"{path}-wal"))


def sync_wal(wal: Path) -> None:
    """``fdatasync`` the WAL file. Opened anew each time: SQLite deletes and creates it
    again when the last connection closes (after a checkpoint that synced it all), so a
    kept descriptor could name a deleted file.

    Raises:
        OSError: the file could not be synced.
    """
    try:
        fd = os.open(wal, os.O_RDONLY)
    except FileNotFoundError:
        return  # checkpointed and removed: everything is in the synced database file
    try:
        os.fdatasync(fd)
    finally:
        os.close(fd)


class GroupSync:
    """Counts commits and makes them durable in groups, on one thread, in the background.

    Args:
        sync: flushes every commit made so far (``defer_sync``), or None: commits are
            durable when they return.
        what: names the store in the error of a failed sync.
    """

    def __init__(self, sync: Sync | None, what: str) -> None:
        self._sync = sync
        self._what = what
        self._committed = 0  # commits noted
        self._synced = 0  # commits known durable
        self._waiting: list[tuple[int, asyncio.Future[None]]] = []
        self._task: asyncio.Task[None] | None = None
        self._thread = ThreadPoolExecutor(1, "group-sync") if sync is not None else None

    @property
    def deferred(self) -> bool:
        """Whether commits wait for a sync of their own (SQLite, ``Durability.FULL``)."""
        return self._sync is not None

    def committed(self) -> None:
        """Note a commit (called by the applier, on the event loop, right after it
        commits); its sync starts at once, so that what the loop does before the reply
        (the batch's bookkeeping, packing the results) runs while the disk works."""
        if self._sync is None:
            return
        self._committed += 1
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._sync_forever())

    async def settled(self) -> None:
        """Return once every commit noted before this call is durable.

        Raises:
            StorageError: the sync failed; the commits it covered may not be durable
                (their writes are in the log: a retry with the same key learns which
                after a later sync).
        """
        target = self._committed
        if self._synced >= target:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((target, future))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._sync_forever())
        await future

    async def _sync_forever(self) -> None:
        """Sync until every noted commit is durable: each round covers every commit
        noted before it started. A failed round fails every waiter (pages a failed
        fsync covered may be gone, whichever commit they belong to) and ends the task;
        the next commit or wait starts another, so a broken disk is not spun on."""
        assert self._sync is not None
        loop = asyncio.get_running_loop()
        while self._synced < self._committed:
            upto = self._committed
            try:
                await loop.run_in_executor(self._thread, self._sync)
            except OSError as error:
                failed = StorageError(f"{self._what}: sync failed: {error}")
                self._resolve(self._committed, failed)
                return
            self._synced = upto
            self._resolve(upto, None)

    def _resolve(self, upto: int, error: StorageError | None) -> None:
        still: list[tuple[int, asyncio.Future[None]]] = []
        for target, future in self._waiting:
            if target > upto:
                still.append((target, future))
            elif future.done():
                continue  # its caller was cancelled
            elif error is None:
                future.set_result(None)
            else:
                future.set_exception(error)
        self._waiting = still
