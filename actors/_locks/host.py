"""The locks actor ``locks``: an async Ray actor whose one applier runs calls in order.

Every call becomes an operation on ``LocksCore``; the applier applies a batch, commits it
in one SQLite transaction, and only then answers: a grant is durable before its holder
hears of it. A caller whose lease must wait gets a future, resolved (after the commit that
decided it) when the lease is granted, times out, or is chosen to break a deadlock. A timer
in the actor runs the lock manager's tick: expiry is the runtime's job, never the holder's.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from policies import LockPolicy, prefix_label
from runtime import (
    Clock,
    SerialApplier,
    StorageError,
    SystemClock,
    apply_each,
    counter,
    gauge,
    histogram,
    storage_root,
)

from .core import Acquire, LocksCore, Outcome
from .status import LeaseGrant, LocksStatus, WaitAlert
from .store import LockEvent

_Op = Callable[[LocksCore], Any]
_PRUNE_EVERY_TICKS = 600


def describe_policy(policy: LockPolicy) -> dict[str, str | None]:
    """The lease, order and deadlock settings of ``policy`` in words, for ``check``."""
    tick_ms = policy.tick.total_seconds() * 1000
    order = (
        f"declared order {list(policy.order)}, then sorted names"
        if policy.order
        else "sorted names"
    )
    return {
        "leases": f"TTL {policy.default_ttl.total_seconds():g}s by default (at most "
        f"{policy.max_ttl.total_seconds():g}s), expired by the locks actor every {tick_ms:g} ms",
        "order": f"keys taken in one global order: {order}" if policy.enforce_order else None,
        "deadlocks": f"wait-for graph checked every {tick_ms:g} ms and on every wait (the "
        f"youngest waiter of a cycle gets DeadlockError); lock_wait_exceeded after "
        f"{policy.alert_factor:g}x the declared expected hold",
    }


class LocksHost:
    """Leases, fencing tokens and deadlock detection for the whole system."""

    def __init__(self, root: str, policy: LockPolicy, clock: Clock | None = None) -> None:
        # Nothing here may raise: an exception in __init__ kills the actor for good.
        self._root = storage_root(root)
        self._policy = policy
        self._clock: Clock = clock or SystemClock()
        self._core: LocksCore | None = None
        self._applier: SerialApplier[_Op] = SerialApplier(self._apply_batch)
        self._waiters: dict[str, list[asyncio.Future[Outcome]]] = {}
        self._labels: set[str] = set()  # prefixes whose gauges were set
        self._ticking: asyncio.Task[None] | None = None
        self._ticks = 0

    def _open(self) -> LocksCore:
        if self._core is None:
            try:
                self._core = LocksCore(self._root, self._policy, clock=self._clock)
            except Exception as error:
                raise StorageError(f"locks: recovery failed: {error}") from error
        return self._core

    async def describe(self) -> dict[str, Any]:
        """What a lease needs to know, the policy (order, renewal fraction), and what
        ``agentcast check`` reports of leases, the lock order and deadlock detection
        (``order`` is None when the order is not enforced)."""
        self._start_ticking()
        return {"policy": self._policy, **describe_policy(self._policy)}

    async def acquire(self, request: Acquire) -> LeaseGrant:
        """Grant ``request``'s keys, waiting in FIFO order for those held.

        Raises:
            InvalidArgumentError: a malformed request.
            LockOrderError: the keys break the global order of the owner's leases.
            LockTimeoutError: not granted within the request's timeout.
            DeadlockError: the wait closed a cycle and this lease is its youngest waiter.
            LeaseExpiredError: the lease was released or its agent killed while waiting.
        """
        started = self._clock.monotonic()
        answer = await self._run(lambda core: self._acquire_op(core, request))
        grant: LeaseGrant = await answer if isinstance(answer, asyncio.Future) else answer
        key = prefix_label(grant.keys[0])
        histogram(
            "locks_wait_ms", "Time from asking for a lease to its grant", ("prefix",)
        ).observe((self._clock.monotonic() - started) * 1000, tags={"prefix": key})
        return grant

    def _acquire_op(self, core: LocksCore, request: Acquire) -> Any:
        grant = core.acquire(request)
        if grant is not None:
            return grant
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(request.lease_id, []).append(future)
        return future

    async def renew(self, lease_id: str) -> LeaseGrant:
        """Push a held lease's expiry to now + its ttl.

        Raises:
            LeaseExpiredError: the lease is no longer held.
        """
        grant: LeaseGrant = await self._run(lambda core: core.renew(lease_id))
        return grant

    async def release(self, lease_id: str) -> bool:
        """End a lease (held or waiting); False if it was gone already."""
        released: bool = await self._run(lambda core: core.release(lease_id))
        return released

    async def kill(self, agent: str) -> dict[str, int]:
        """End every lease of ``agent``; returns key -> the token that fences its old ones."""
        fenced: dict[str, int] = await self._run(lambda core: core.kill(agent))
        return fenced

    async def status(self) -> LocksStatus:
        """Held and waiting leases, keys, standing alerts and counts."""
        self._start_ticking()
        return self._open().status()

    async def events(self, after: int = 0, limit: int = 1000) -> list[LockEvent]:
        """The locks log after position ``after``, at most ``limit`` events, oldest first."""
        return self._open().events(after, limit)

    async def tick_now(self) -> list[WaitAlert]:
        """Run one tick at once (tests on a fake clock move time, then tick)."""
        alerts: list[WaitAlert] = await self._run(lambda core: core.tick())
        return alerts

    async def advance_clock(self, seconds: float) -> None:
        """Move a ``FakeClock`` the actor was started with (tests only)."""
        advance = getattr(self._clock, "advance", None)
        if advance is None:
            raise TypeError("the locks actor runs on the system clock")
        advance(seconds)

    async def _run(self, op: _Op) -> Any:
        self._open()
        self._start_ticking()
        return await self._applier.submit(op)

    def _start_ticking(self) -> None:
        if self._ticking is None or self._ticking.done():
            self._ticking = asyncio.get_running_loop().create_task(self._tick_forever())

    async def _tick_forever(self) -> None:
        """Expire, time out, alert and break cycles every tick, whoever calls."""
        tick = self._policy.tick.total_seconds()
        while True:
            await asyncio.sleep(tick)
            with contextlib.suppress(StorageError):  # the next batch recovers the core
                await self._applier.submit(self._tick_op)
            self._ticks += 1
            if self._ticks % _PRUNE_EVERY_TICKS == 0 and self._core is not None:
                with contextlib.suppress(StorageError):
                    self._core.prune()

    def _tick_op(self, core: LocksCore) -> None:
        expired = core.expired
        for alert in core.tick():
            counter(
                "locks_wait_exceeded_total", "Waits past 2x their expected hold", ("prefix",)
            ).inc(tags={"prefix": prefix_label(alert.key)})
        if core.expired > expired:
            counter("locks_expired_total", "Leases expired by the runtime", ()).inc(
                core.expired - expired
            )
        self._record(core)

    def _apply_batch(self, batch: list[_Op]) -> list[tuple[bool, Any]]:
        core = self._open()
        outcomes = apply_each(batch, core)
        try:
            core.commit()
        except Exception as error:  # memory is ahead of the log: reopen from the log
            self._core = None
            core.close()
            # Waits queued by this batch were never stored: their callers get this error
            # from the applier, and nobody awaits their futures.
            lost = {id(value) for _, value in outcomes if isinstance(value, asyncio.Future)}
            for waiters in self._waiters.values():
                for future in [f for f in waiters if id(f) in lost]:
                    waiters.remove(future)
                    future.cancel()
            raise StorageError(f"locks: {error}") from error
        self._count_deadlocks(core)
        self._deliver(core.resolved())
        return outcomes

    def _count_deadlocks(self, core: LocksCore) -> None:
        """Every cycle broken, whether its victim was a waiter (answered through
        ``resolved``) or the request that closed it (answered by its own call)."""
        deadlocks = counter("locks_deadlocks_total", "Wait cycles broken", ("prefix",))
        for key in core.broken_keys:
            deadlocks.inc(tags={"prefix": prefix_label(key)})
        core.broken_keys.clear()

    def _deliver(self, resolved: dict[str, Outcome]) -> None:
        for lease_id, outcome in resolved.items():
            for future in self._waiters.pop(lease_id, []):
                if future.done():
                    continue
                if isinstance(outcome, Exception):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)

    def _record(self, core: LocksCore) -> None:
        holders: dict[str, int] = {}
        queued: dict[str, int] = {}
        for key, state in core.table.keys.items():
            label = prefix_label(key)
            holders[label] = holders.get(label, 0) + len(state.holders)
            queued[label] = queued.get(label, 0) + len(state.queue)
        held = gauge("locks_holders", "Leases holding keys, per key prefix", ("prefix",))
        waiting = gauge("locks_queue", "Leases queued for keys, per key prefix", ("prefix",))
        for label in self._labels | set(holders):
            held.set(holders.get(label, 0), tags={"prefix": label})
            waiting.set(queued.get(label, 0), tags={"prefix": label})
        self._labels = self._labels | set(holders)
