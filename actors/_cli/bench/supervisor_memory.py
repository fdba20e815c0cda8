"""The supervisor bench's memory rows: the supervisor's resident memory per subtask held in
flight, at a controlled number in flight.

``HELD`` subtasks of an agent that holds each until it is released are submitted (alone,
one call each, or in one ``submit_many`` call); once the supervisor tracks exactly that
many, its RSS is sampled against a sample taken before, with none in flight; then they
are released and what finished subtasks leave behind is sampled too.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import ray
from pydantic import BaseModel

from runtime import Envelope

from ..._agent.agent import Agent, handler
from ..._system import System

HELD = 2_000
QUICK_HELD = 400


class Hold(BaseModel):
    i: int


class Held(BaseModel):
    i: int


class Release(BaseModel):
    pass


class HoldingAgent(Agent):
    """Holds every ``Hold`` until a ``Release`` comes (sent straight to the replica)."""

    max_concurrency = 10_000

    @handler
    async def hold(self, hold: Hold) -> Held:
        await self._released().wait()
        return Held(i=hold.i)

    @handler
    async def let_go(self, release: Release) -> Held:
        self._released().set()
        return Held(i=-1)

    def _released(self) -> asyncio.Event:
        event: asyncio.Event | None = getattr(self, "_event", None)
        if event is None:
            event = self._event = asyncio.Event()
        return event


def measure_memory(system: System, held: int) -> dict[str, Any]:
    """Both ways of submitting, each on a replica of its own, batched first: the second
    way may reuse memory the allocator kept from the first (its figure is then a floor).

    Returns:
        Per way: the subtasks tracked at the sample, bytes of RSS per tracked subtask,
        subtasks left live after all finished and bytes left per finished subtask.
    """
    return {way: _one_way(system, way, held) for way in ("batched", "alone")}


def _one_way(system: System, way: str, held: int) -> dict[str, Any]:
    name = f"hold-{way}"
    group = system.agent(HoldingAgent, name=name)
    supervisor = system.supervisor
    stats = supervisor.actor.stats.remote
    before = ray.get(stats())
    tasks = [Hold(i=i) for i in range(held)]
    if way == "alone":
        handles = [supervisor.submit(t, to=name, expect=Held) for t in tasks]
    else:
        handles = supervisor.submit_many(tasks, to=name, expect=Held)
    during = _when_tracking(stats, before["live"] + held)
    ray.get(group.actors[0].handle.remote(Release(), Envelope(trace_id=system.trace_id)))
    for handle in handles:
        handle.result(timeout=600)
    after = _when_tracking(stats, before["live"])
    return {
        "tracked_at_sample": during["live"] - before["live"],
        "bytes_per_tracked_subtask": round((during["rss_bytes"] - before["rss_bytes"]) / held),
        "live_after": after["live"],
        "bytes_left_per_finished_subtask": round((after["rss_bytes"] - before["rss_bytes"]) / held),
    }  # fmt: skip


def _when_tracking(stats: Any, live: int, limit_s: float = 600.0) -> dict[str, Any]:
    """The supervisor's stats once it tracks ``live`` subtasks (bounded wait)."""
    ends = time.monotonic() + limit_s
    while True:
        sample: dict[str, Any] = ray.get(stats())
        if sample["live"] == live or time.monotonic() > ends:
            return sample
        time.sleep(0.05)
