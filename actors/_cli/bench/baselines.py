"""The plain-Ray side of ``agentcast bench resource``: the actors its clients call when a
row measures Ray itself, or the usual ways to guard a store on it (spawned with
``ray.remote``)."""

from __future__ import annotations

import asyncio

from runtime import Clock, SystemClock


class NoopTarget:
    """An async actor that does nothing: the ceiling of one actor's call rate. ``carry``
    takes a payload and returns the reply set by ``reply_with``, doing nothing else."""

    def __init__(self) -> None:
        self._reply = b""

    async def noop(self) -> None:
        return None

    async def reply_with(self, reply: bytes) -> None:
        self._reply = reply

    async def carry(self, payload: bytes) -> bytes:
        return self._reply


class DictStore:
    """A plain dict behind an async actor, used the usual way: get, then put."""

    def __init__(self) -> None:
        self._data: dict[str, int] = {}

    async def get(self, key: str) -> int:
        return self._data.get(key, 0)

    async def put(self, key: str, value: int) -> None:
        self._data[key] = value


class StartLine:
    """One-shot barriers, one per key: each holds its callers until ``parties`` have come.

    The naive read-modify-write row meets here once per client, after the first read and
    before the first write, so that its lost update happens on every run with more than
    one client, however the machine schedules them.
    """

    def __init__(self) -> None:
        self._arrived: dict[str, int] = {}
        self._all_in: dict[str, asyncio.Event] = {}

    async def wait(self, key: str, parties: int) -> None:
        """Return once ``parties`` callers have waited on ``key``."""
        all_in = self._all_in.setdefault(key, asyncio.Event())
        self._arrived[key] = self._arrived.get(key, 0) + 1
        if self._arrived[key] >= parties:
            all_in.set()
        await all_in.wait()


class LeaseLock:
    """One lock with leases that expire after a TTL: the usual way to guard a store."""

    def __init__(self, clock: Clock | None = None) -> None:
        self._clock = clock or SystemClock()
        self._owner: str | None = None
        self._expires = 0.0
        self._token = 0

    async def acquire(self, owner: str, ttl_s: float) -> int | None:
        """A lease token if the lock is free or its lease expired, else None."""
        now = self._clock.monotonic()
        if self._owner is not None and now < self._expires:
            return None
        self._token += 1
        self._owner, self._expires = owner, now + ttl_s
        return self._token

    async def release(self, owner: str, token: int) -> bool:
        """Give the lease back; False if it had expired and been taken over."""
        if self._owner != owner or self._token != token:
            return False
        self._owner = None
        return True
