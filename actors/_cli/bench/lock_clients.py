"""The client agent of ``agentcast bench locks`` and the plain-Ray lock actor it measures
against. Every row runs on the same client replicas; each client updates its own key, so
rows measure what one update costs in each pattern, not contention on one key."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

import ray
from pydantic import BaseModel

from runtime import Clock, SystemClock

from ..._agent.agent import Agent, handler
from ..._resource.handle import Write


class TtlLocks:
    """The usual plain-Ray TTL lock: one lease per key, taken over once it expires."""

    def __init__(self, clock: Clock | None = None) -> None:
        self._clock = clock or SystemClock()
        self._held: dict[str, tuple[str, float, int]] = {}  # key -> owner, expiry, token
        self._token = 0

    async def acquire(self, key: str, owner: str, ttl_s: float) -> int | None:
        """A token if ``key`` is free or its lease expired, else None."""
        now = self._clock.monotonic()
        held = self._held.get(key)
        if held is not None and now < held[1]:
            return None
        self._token += 1
        self._held[key] = (owner, now + ttl_s, self._token)
        return self._token

    async def release(self, key: str, owner: str, token: int) -> bool:
        """Give the lease back; False if it had expired and been taken over."""
        held = self._held.get(key)
        if held is None or (held[0], held[2]) != (owner, token):
            return False
        del self._held[key]
        return True


class LockRun(BaseModel):
    """One client's run: ``updates`` on ``key``, ``per_lease`` of them under each lease."""

    pattern: str  # plain_ttl_lock, lease_single, lease_two_keys, lease_single_batched
    key: str
    updates: int
    per_lease: int = 50
    batch: int = 16
    namespace: str = ""
    start_at: float = 0.0


class LockRunOut(BaseModel):
    latencies_ms: list[float]
    started: float
    finished: float
    retries: int = 0
    failed: int = 0


class LockBenchClient(Agent):
    """Runs one pattern; several handler calls run at once on one replica (one client each)."""

    max_concurrency = 16

    @handler
    async def run(self, run: LockRun) -> LockRunOut:
        delay = run.start_at - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        started = time.time()
        if run.pattern == "plain_ttl_lock":
            latencies, retries, failed = await self._plain(run)
        else:
            latencies, retries, failed = await self._leased(run), 0, 0
        return LockRunOut(
            latencies_ms=latencies, started=started, finished=time.time(), retries=retries,
            failed=failed,
        )  # fmt: skip

    async def _plain(self, run: LockRun) -> tuple[list[float], int, int]:
        """Acquire, read, write, release: 4 round trips per update when the key is free."""
        locks = ray.get_actor("bench-ttl-locks", namespace=run.namespace)
        store = ray.get_actor("bench-dict-store", namespace=run.namespace)
        owner, retries, failed = f"{self.name}:{run.key}", 0, 0
        latencies: list[float] = []
        for _ in range(run.updates):
            begin = time.perf_counter()
            token = await locks.acquire.remote(run.key, owner, 10.0)
            while token is None:
                retries += 1
                await asyncio.sleep(0.001)
                token = await locks.acquire.remote(run.key, owner, 10.0)
            value = await store.get.remote(run.key)
            await store.put.remote(run.key, value + 1)
            failed += not await locks.release.remote(run.key, owner, token)
            latencies.append((time.perf_counter() - begin) * 1000)
        return latencies, retries, failed

    async def _leased(self, run: LockRun) -> list[float]:
        """Leases of ``per_lease`` updates each; an update is one write (operations need
        no read), or one ``batch``-th of a ``write_many``; the lease's own round trips are
        counted in the first and last update under it."""
        counter, latencies = self.resource("locks-bench"), list[float]()
        keys: tuple[str, ...] = (run.key,)
        if run.pattern == "lease_two_keys":
            keys = (f"pricing:{run.key}", f"inventory:{run.key}")  # taken sorted anyway
        done = 0
        while done < run.updates:
            n = min(run.per_lease, run.updates - done)
            begin = time.perf_counter()
            async with self.lease(*keys, ttl=timedelta(seconds=10)):
                latencies.extend(await self._updates(counter, run, n, begin))
                begin = time.perf_counter()
            latencies[-1] += (time.perf_counter() - begin) * 1000
            done += n
        return latencies

    async def _updates(self, counter: Any, run: LockRun, n: int, begin: float) -> list[float]:
        latencies: list[float] = []
        if run.pattern == "lease_single_batched":
            for start in range(0, n, run.batch):
                size = min(run.batch, n - start)
                await counter.write_many([Write(op="add", args=(run.key, 1))] * size)
                spent = (time.perf_counter() - begin) * 1000
                latencies.extend([spent / size] * size)
                begin = time.perf_counter()
            return latencies
        for _ in range(n):
            await counter.add(run.key, 1)
            latencies.append((time.perf_counter() - begin) * 1000)
            begin = time.perf_counter()
        return latencies
