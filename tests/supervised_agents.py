"""Agents for the supervisor's Ray tests (importable by Ray workers by reference).

A ``Job`` says how the agent misbehaves, so one agent class covers every failure reason.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from pydantic import BaseModel, Field

from actors import Agent, handler
from runtime import BudgetExceededError


class Job(BaseModel):
    key: str
    mode: str = "ok"  # ok, raise, bad, hang, die, budget, beat, write, gate, stubborn, block_once
    gate: str = ""  # a file the agent waits for (mode gate)
    only_replica: int | None = None  # misbehave only on this replica
    writes: int = 0


class Done(BaseModel):
    key: str
    replica: int


class StrictDone(BaseModel):
    key: str = Field(min_length=1)
    replica: int


class Worker(Agent):
    max_concurrency = 1

    @handler
    async def work(self, job: Job) -> Done:
        mode = job.mode
        if job.only_replica is not None and job.only_replica != self.replica:
            mode = "ok"
        for _ in range(job.writes):
            await self.resource("inventory").restock("A", 1)
        await self._misbehave(mode, job)
        return Done(key="" if mode == "bad" else job.key, replica=self.replica)

    async def _misbehave(self, mode: str, job: Job) -> None:
        if mode == "raise":
            raise ValueError(f"boom {job.key}")
        if mode == "hang":
            await asyncio.Event().wait()
        if mode == "die":
            os._exit(1)
        if mode == "budget":
            raise BudgetExceededError(
                scope="run:x", dimension="cost", cap=1.0, requested=2.0, available=0.0
            )
        if mode == "beat":
            while not Path(job.gate).exists():
                await self.heartbeat()
                await asyncio.sleep(0.02)
        if mode == "gate":
            while not Path(job.gate).exists():
                await asyncio.sleep(0.02)
        if mode == "stubborn":  # waits for its gate even when cancelled
            while not Path(job.gate).exists():
                try:
                    await asyncio.sleep(0.02)
                except asyncio.CancelledError:
                    continue
        if mode == "block_once" and not Path(job.gate).exists():  # blocks its event loop
            Path(job.gate).touch()
            time.sleep(3600)


class PairWorker(Worker):
    """A ``Worker`` whose replicas run two tasks at once."""

    max_concurrency = 2


class Delegate(BaseModel):
    keys: list[str]


class Gathered(BaseModel):
    keys: list[str]
    trace_ids: list[str]


class DelegateMany(BaseModel):
    keys: list[str]


class Orchestrator(Agent):
    """Delegates one subtask per key to ``workers`` through the supervisor (alone, or all
    in one ``submit_many`` for a ``DelegateMany``)."""

    @handler
    async def fan_out_at_once(self, task: DelegateMany) -> Gathered:
        handles = self.supervisor.submit_many(
            [Job(key=k) for k in task.keys], to="workers", expect=StrictDone
        )
        outputs = [await h.result(timeout=120) for h in reversed(handles)]
        keys = [o.key for o in reversed(outputs)]  # type: ignore[attr-defined]
        return Gathered(keys=keys, trace_ids=[self.task.trace_id])

    @handler
    async def fan_out(self, task: Delegate) -> Gathered:
        handles = [
            self.supervisor.submit(Job(key=k), to="workers", expect=StrictDone) for k in task.keys
        ]
        outputs = [await h.result() for h in handles]
        statuses = [await h.status() for h in handles]
        assert all(s.state == "done" for s in statuses)
        keys = [o.key for o in outputs]  # type: ignore[attr-defined]
        return Gathered(keys=keys, trace_ids=[self.task.trace_id])
