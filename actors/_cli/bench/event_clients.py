"""What ``agentcast bench events`` runs: the emitting resource, the subscribing agent,
and the plain-Ray pub/sub it is measured against (an actor fanning out calls)."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from pydantic import BaseModel

from ..._agent.agent import Agent, handler
from ..._events.subscribe import subscribe
from ..._resource.declare import Resource, write


class Tick(BaseModel):
    """One event: its number and when its write was sent (``time.time()``)."""

    n: int
    sent_at: float


class Mark(BaseModel):
    """The emit-cost rows' event: the same shape as ``Tick``, and nobody subscribes."""

    n: int
    sent_at: float


class TickFeed(Resource):
    """Writes with and without an event, otherwise the same."""

    @write
    def tick(self, state: dict[str, int], n: int, sent_at: float) -> int:
        state["n"] = n
        self.emit(Tick(n=n, sent_at=sent_at))
        return n

    @write
    def mark(self, state: dict[str, int], n: int, sent_at: float) -> int:
        state["n"] = n
        self.emit(Mark(n=n, sent_at=sent_at))
        return n

    @write
    def tick_silent(self, state: dict[str, int], n: int, sent_at: float) -> int:
        state["n"] = n
        return n


class StatsQuery(BaseModel):
    reset: bool = False


class Stats(BaseModel):
    count: int
    latencies_ms: list[float]
    pid: int  # the subscriber's process: pooled ones share theirs


class TickCounter(Agent):
    """A subscriber that counts and times each event (from its write's sending)."""

    def __init__(self) -> None:
        self.count = 0
        self.latencies: list[float] = []

    @subscribe(Tick)
    async def on_tick(self, event: Tick) -> None:
        self.count += 1
        self.latencies.append((time.time() - event.sent_at) * 1000)

    @handler
    async def stats(self, query: StatsQuery) -> Stats:
        out = Stats(count=self.count, latencies_ms=self.latencies, pid=os.getpid())
        if query.reset:
            self.count, self.latencies = 0, []
        return out


class PlainSubscriber:
    """Plain Ray: a subscriber actor that counts and times the batches it is sent."""

    def __init__(self) -> None:
        self.count = 0
        self.latencies: list[float] = []

    async def on_events(self, batch: list[tuple[int, float]]) -> None:
        now = time.time()
        self.count += len(batch)
        self.latencies.extend((now - sent_at) * 1000 for _, sent_at in batch)

    async def stats(self, reset: bool) -> tuple[int, list[float]]:
        out = (self.count, self.latencies)
        if reset:
            self.count, self.latencies = 0, []
        return out


class PlainPublisher:
    """Plain Ray pub/sub: each published batch is fanned out to every subscriber, one
    call in flight per subscriber (the same bound the dispatcher keeps)."""

    def __init__(self) -> None:
        self.subscribers: list[Any] = []
        self.inflight: dict[int, Any] = {}

    def add(self, subscriber: Any) -> None:
        self.subscribers.append(subscriber)

    async def publish(self, batch: list[tuple[int, float]]) -> None:
        async def send(i: int, sub: Any) -> None:
            previous = self.inflight.get(i)
            if previous is not None:
                await previous
            self.inflight[i] = asyncio.ensure_future(sub.on_events.remote(batch))

        await asyncio.gather(*(send(i, s) for i, s in enumerate(self.subscribers)))

    async def drain(self) -> None:
        await asyncio.gather(*self.inflight.values())

    async def publish_all(self, batches: list[list[tuple[int, float]]], count: int) -> None:
        """Fan out batches already produced (the backlog rows) to the first ``count``
        subscribers: to each in order, one call in flight per subscriber; returns once
        every one is done."""

        async def feed(sub: Any) -> None:
            for batch in batches:
                await sub.on_events.remote(batch)

        await asyncio.gather(*(feed(s) for s in self.subscribers[:count]))
