"""The client agent of ``agentcast bench resource`` and the table of workloads (one row
each); the plain-Ray actors it calls are in ``baselines``.

Every row of the benchmark runs on the same client actors (replicas of ``BenchClient``),
so the rows differ only in what a client does per operation. Each handler waits for a
common start time, runs a fixed number of operations back to back, and times each one
in the client with ``time.perf_counter``.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import ray
from pydantic import BaseModel

from policies import Durability

from ..._agent.agent import Agent, handler
from ..._resource.constraints import carrying
from ..._resource.declare import Resource
from ..._resource.handle import Write
from .counters import TEN_CONSTRAINTS, VerifiedCounter
from .payload import write_payload

# -- messages --------------------------------------------------------------------------


class Run(BaseModel):
    """What every workload takes: how many operations, on which key, from when.

    ``start_at`` is wall-clock time (``time.time()``), the one clock every process on
    the machine shares; 0 starts at once (warm-up).
    """

    ops: int
    key: str
    start_at: float = 0.0
    clients: int = 1  # how many clients run this message at once


class NoopRun(Run):
    target: str
    namespace: str


class PayloadRun(NoopRun):
    resource: str  # whose write's request and reply the no-op call carries


class WriteRun(Run):
    resource: str
    think_s: float = 0.0
    constrained: bool = False  # carry ``TEN_CONSTRAINTS`` (none of which the write breaks)


class BatchRun(Run):
    resource: str
    batch: int


class LockRun(Run):
    lock: str
    store: str
    namespace: str
    ttl_s: float
    retry_base_s: float
    retry_cap_s: float


class NaiveRun(Run):
    store: str
    start_line: str
    namespace: str
    think_s: float


class RunOut(BaseModel):
    """One client's measurements: a latency per operation and what went wrong."""

    latencies_ms: list[float]
    started: float
    finished: float
    failed: int = 0
    duplicates: int = 0
    retries: int = 0


@dataclass(slots=True)
class _Counts:
    failed: int = 0
    duplicates: int = 0
    retries: int = 0


async def _timed(run: Run, op: Callable[[], Awaitable[None]], counts: _Counts) -> RunOut:
    """Wait for ``run.start_at``, then run ``op`` ``run.ops`` times, timing each."""
    delay = run.start_at - time.time()
    if delay > 0:
        await asyncio.sleep(delay)
    latencies: list[float] = []
    started = time.time()
    for _ in range(run.ops):
        begin = time.perf_counter()
        await op()
        latencies.append((time.perf_counter() - begin) * 1000)
    return RunOut(
        latencies_ms=latencies,
        started=started,
        finished=time.time(),
        failed=counts.failed,
        duplicates=counts.duplicates,
        retries=counts.retries,
    )


class BenchClient(Agent):
    """One benchmark client. The same replicas run every row, one workload per handler."""

    def __init__(self) -> None:
        self._actors: dict[str, Any] = {}

    def _actor(self, name: str, namespace: str) -> Any:
        if name not in self._actors:
            self._actors[name] = ray.get_actor(name, namespace=namespace)
        return self._actors[name]

    @handler
    async def noop(self, run: NoopRun) -> RunOut:
        """Sequential awaited no-op calls into one plain async actor."""
        target = self._actor(run.target, run.namespace)

        async def op() -> None:
            await target.noop.remote()

        return await _timed(run, op, _Counts())

    @handler
    async def noop_payload(self, run: PayloadRun) -> RunOut:
        """Sequential awaited no-op calls carrying a durable write's request and reply."""
        target = self._actor(run.target, run.namespace)
        request, reply = await write_payload(self.resource(run.resource), run.key)
        await target.reply_with.remote(reply)

        async def op() -> None:
            await target.carry.remote(request)

        return await _timed(run, op, _Counts())

    @handler
    async def write_one(self, run: WriteRun) -> RunOut:
        """One awaited agentcast write per operation, after ``think_s`` of thinking."""
        resource = self.resource(run.resource)
        counts = _Counts()

        async def op() -> None:
            if run.think_s > 0:
                await asyncio.sleep(run.think_s)
            if run.constrained:  # the plain row pays nothing for the option
                with carrying(TEN_CONSTRAINTS):
                    result = await resource.write("add", run.key, 1)
            else:
                result = await resource.write("add", run.key, 1)
            counts.failed += result.error is not None
            counts.duplicates += result.duplicate

        return await _timed(run, op, counts)

    @handler
    async def write_batch(self, run: BatchRun) -> RunOut:
        """``write_many`` of ``batch`` writes per operation: one call, one group commit."""
        resource = self.resource(run.resource)
        counts = _Counts()

        async def op() -> None:
            batch = [Write(op="add", args=(run.key, 1)) for _ in range(run.batch)]
            for result in await resource.write_many(batch):
                counts.failed += result.error is not None
                counts.duplicates += result.duplicate

        return await _timed(run, op, counts)

    @handler
    async def ttl_lock(self, run: LockRun) -> RunOut:
        """Acquire a lease, read, write, release: 4 round trips when the lock is free.

        A refused acquire is asked again after an exponential backoff with full jitter
        (a random pause up to ``retry_base_s * 2**attempt``, capped at ``retry_cap_s``).
        """
        lock, store = self._actor(run.lock, run.namespace), self._actor(run.store, run.namespace)
        owner, counts = f"{self.name}:{self.replica}", _Counts()

        async def op() -> None:
            token = await lock.acquire.remote(owner, run.ttl_s)
            attempt = 0
            while token is None:
                counts.retries += 1
                bound = min(run.retry_cap_s, run.retry_base_s * 2**attempt)
                await asyncio.sleep(random.uniform(0, bound))
                attempt += 1
                token = await lock.acquire.remote(owner, run.ttl_s)
            value = await store.get.remote(run.key)
            await store.put.remote(run.key, value + 1)
            counts.failed += not await lock.release.remote(owner, token)

        return await _timed(run, op, counts)

    @handler
    async def naive_rmw(self, run: NaiveRun) -> RunOut:
        """Read, think for ``think_s``, write back the value read plus one.

        The first operation meets the other clients at the start line between its read
        and its write: all first writes rest on one reading, so ``clients - 1`` updates
        are lost on every run.
        """
        store = self._actor(run.store, run.namespace)
        start_line = self._actor(run.start_line, run.namespace)
        first = True

        async def op() -> None:
            nonlocal first
            value = await store.get.remote(run.key)
            if first:
                first = False
                await start_line.wait.remote(run.key, run.clients)
            await asyncio.sleep(run.think_s)
            await store.put.remote(run.key, value + 1)

        return await _timed(run, op, _Counts())


# -- the workloads -----------------------------------------------------------------------

CLIENT_COUNTS = (1, 8, 32)
NAMESPACE = "agentcast-bench"
NOOP, LOCK, LOCK_STORE, NAIVE_STORE = "bench-noop", "bench-lock", "bench-lock-store", "bench-dict"
START_LINE = "bench-start-line"
RESOURCES = {
    "bench-full": Durability.FULL,
    "bench-process": Durability.PROCESS,
    "bench-batched": Durability.FULL,
    "bench-rmw": Durability.FULL,
    "bench-provenance": Durability.FULL,
}
RESOURCE_CLASSES: dict[str, type[Resource]] = {"bench-provenance": VerifiedCounter}
"""The class of each resource not a plain ``BenchCounter``."""
IN_MEMORY = "none (plain actor memory)"


@dataclass(frozen=True, slots=True, kw_only=True)
class BenchConfig:
    """The fixed workload.

    Attributes:
        ops: operations per client per row (a batched operation is ``batch`` writes).
        lock_ops: operations per client of the TTL-lock row, fewer than ``ops``: under
            contention the lock admits a few dozen updates a second on a small machine.
        warmup: operations per client before each measured run, not counted.
        batch: writes per ``write_many`` call.
        think_s: "thinking" between read and write (naive) or before a write (agentcast).
        lock_ttl_s: lease TTL of the TTL-lock pattern.
        lock_retry_base_s: first backoff bound after a refused acquire; it doubles per
            refusal (full jitter: the pause is uniform in [0, bound]).
        lock_retry_cap_s: largest backoff bound.
        start_slack_s: clients of a run start together this long after dispatch.
        clients: the client counts N each row runs at.
        rounds: interleaved rounds of the side-by-side rows at each N (``paired``).
    """

    ops: int = 300
    lock_ops: int = 60
    warmup: int = 20
    batch: int = 32
    think_s: float = 0.002
    lock_ttl_s: float = 5.0
    lock_retry_base_s: float = 0.001
    lock_retry_cap_s: float = 0.05
    start_slack_s: float = 0.25
    clients: tuple[int, ...] = CLIENT_COUNTS
    rounds: int = 5


QUICK = BenchConfig(ops=30, lock_ops=10, warmup=5, clients=(1, 8), rounds=3)
"""Cheap enough for CI: fewer operations, no 32-client runs, three rounds."""
MessageFactory = Callable[[str, int, float], Run]


@dataclass(frozen=True, slots=True)
class RowSpec:
    """One row: what a client does per operation and where the count lands."""

    name: str
    system: str
    durability: str
    unit: str
    writes_per_op: int
    op: str
    round_trips_per_op: str
    counter: str | None  # resource or store actor holding the count; None: nothing counted
    message: MessageFactory
    ops_per_client: int | None = None  # None: the configuration's ``ops``


# long: one message factory per row of the table, kept side by side
def _messages(c: BenchConfig, ns: str) -> dict[str, MessageFactory]:
    """How each row builds its message from (key, ops, start_at)."""

    def writes(resource: str, think_s: float = 0.0, constrained: bool = False) -> MessageFactory:
        return lambda k, n, t: WriteRun(
            key=k, ops=n, start_at=t, resource=resource, think_s=think_s, constrained=constrained
        )

    return {
        "noop_ceiling": lambda k, n, t: NoopRun(
            key=k, ops=n, start_at=t, target=NOOP, namespace=ns
        ),
        "noop_payload": lambda k, n, t: PayloadRun(
            key=k, ops=n, start_at=t, target=NOOP, namespace=ns, resource="bench-full"
        ),
        "durable_unbatched": writes("bench-full"),
        "durable_constrained": writes("bench-full", constrained=True),
        "durable_provenance": writes("bench-provenance"),
        "durable_unbatched_process": writes("bench-process"),
        "batched": lambda k, n, t: BatchRun(
            key=k, ops=n, start_at=t, resource="bench-batched", batch=c.batch
        ),
        "ttl_lock": lambda k, n, t: LockRun(
            key=k,
            ops=n,
            start_at=t,
            lock=LOCK,
            store=LOCK_STORE,
            namespace=ns,
            ttl_s=c.lock_ttl_s,
            retry_base_s=c.lock_retry_base_s,
            retry_cap_s=c.lock_retry_cap_s,
        ),
        "naive_rmw": lambda k, n, t: NaiveRun(
            key=k,
            ops=n,
            start_at=t,
            store=NAIVE_STORE,
            start_line=START_LINE,
            namespace=ns,
            think_s=c.think_s,
        ),
        "agentcast_rmw": writes("bench-rmw", c.think_s),
    }


def workloads(config: BenchConfig, ns: str) -> list[RowSpec]:
    """The rows of the benchmark, in the order they run."""
    c, m = config, _messages(config, ns)
    full, process = Durability.FULL.value, Durability.PROCESS.value
    write, think = "one awaited write", f"{c.think_s * 1000:g} ms think, one awaited write"
    return [
        RowSpec("noop_ceiling", "ray", IN_MEMORY, "calls", 1, "one awaited no-op call", "1",
                None, m["noop_ceiling"]),
        RowSpec("noop_payload", "ray", IN_MEMORY, "calls", 1,
                "one awaited no-op call carrying a durable write's request and reply", "1",
                None, m["noop_payload"]),
        RowSpec("durable_unbatched", "agentcast", full, "writes", 1, write, "1", "bench-full",
                m["durable_unbatched"]),
        RowSpec("durable_constrained", "agentcast", full, "writes", 1,
                f"{write} carrying {len(TEN_CONSTRAINTS.items)} constraints", "1", "bench-full",
                m["durable_constrained"]),
        RowSpec("durable_provenance", "agentcast", full, "writes", 1,
                "one awaited write requiring VERIFIED provenance", "1", "bench-provenance",
                m["durable_provenance"]),
        RowSpec("durable_unbatched_process", "agentcast", process, "writes", 1, write, "1",
                "bench-process", m["durable_unbatched_process"]),
        RowSpec("batched", "agentcast", full, "writes", c.batch,
                f"one write_many of {c.batch} writes", "1", "bench-batched", m["batched"]),
        RowSpec("ttl_lock", "ray", IN_MEMORY, "updates", 1, "acquire, read, write, release",
                "4 + refused acquires", LOCK_STORE, m["ttl_lock"], c.lock_ops),
        RowSpec("naive_rmw", "ray", IN_MEMORY, "updates", 1,
                f"read, {c.think_s * 1000:g} ms think, write", "2", NAIVE_STORE, m["naive_rmw"]),
        RowSpec("agentcast_rmw", "agentcast", full, "updates", 1, think, "1", "bench-rmw",
                m["agentcast_rmw"]),
    ]  # fmt: skip
