"""Fake agent replicas for the supervisor's liveness tests: calls are resolved by the test;
a stubborn replica ignores cancels (as a handler blocking its event loop does), a dead one
refuses calls, and a restart fails every call still running on the old incarnation."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from actors._supervisor.core import SupervisorCore
from actors._supervisor.types import AgentDiedError, ReplicaInfo
from runtime import ConfigurationError, Envelope


@dataclass
class Call:
    replica: str
    message: BaseModel
    envelope: Envelope
    future: asyncio.Future[Any]
    stubborn: bool = False  # ignores cancels

    def cancel(self) -> None:
        if not self.stubborn:
            self.future.cancel()


class Replicas:
    """Replicas ``group:i`` with ``capacity`` each; every call waits for the test."""

    def __init__(self, groups: dict[str, int], capacity: int = 1) -> None:
        self.groups = {g: [f"{g}:{i}" for i in range(n)] for g, n in groups.items()}
        self.capacity = capacity
        self.calls: list[Call] = []
        self.stubborn: set[str] = set()
        self.dead: set[str] = set()
        self.restarted: list[str] = []
        self.sent: list[str] = []  # the task id of every send, refused ones included
        # Set: a restart waits for it, the old incarnation gone and the new one not up
        # (neither listed nor taking calls), as a Ray actor killed and started anew.
        self.restart_gate: asyncio.Event | None = None
        self.down: set[str] = set()

    async def replicas(self, group: str) -> list[ReplicaInfo]:
        names = [n for n in self.groups.get(group, []) if n not in self.dead | self.down]
        return [ReplicaInfo(n, self.capacity, 1) for n in names]

    def send(
        self, replica: str, message: BaseModel, envelope: Envelope
    ) -> tuple[Awaitable[Any], Callable[[], None]]:
        self.sent.append(envelope.task_id)
        if replica in self.dead | self.down:
            raise AgentDiedError(f"{replica} is dead")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        call = Call(replica, message, envelope, future, stubborn=replica in self.stubborn)
        self.calls.append(call)
        return asyncio.shield(future), call.cancel  # a dying supervisor leaves it running

    async def restart(self, replica: str) -> ReplicaInfo:
        if replica in self.dead:
            raise AgentDiedError(f"{replica} is dead")
        self.kill_calls(replica, "restarted")
        self.stubborn.discard(replica)
        if self.restart_gate is not None:
            self.down.add(replica)
            await self.restart_gate.wait()
            self.down.discard(replica)
            if replica in self.dead:  # it could not be started again
                raise AgentDiedError(f"{replica} did not start again")
        self.restarted.append(replica)
        return ReplicaInfo(replica, self.capacity, 1)

    def follow(self, replica: str, span_id: str) -> Awaitable[Any]:
        found = [c for c in self.calls if c.envelope.span_id == span_id]
        if not found or found[0].replica != replica:
            raise ConfigurationError(f"no attempt {span_id!r} on {replica}")
        return asyncio.shield(found[0].future)

    def die(self, replica: str) -> None:
        """The replica dies: its running calls fail, later ones are refused."""
        self.dead.add(replica)
        self.kill_calls(replica, "died")

    def kill_calls(self, replica: str, why: str) -> None:
        for call in self.calls:
            if call.replica == replica and not call.future.done():
                call.future.set_exception(AgentDiedError(f"{replica} {why}"))

    def running(self) -> list[Call]:
        return [c for c in self.calls if not c.future.done()]


async def stop(core: SupervisorCore) -> None:
    """The supervisor's process dies: its tasks stop and its staged writes are lost (the
    calls it sent go on, as agents' calls do)."""
    for task in list(core._table._background._tasks):
        task.cancel()
    for _ in range(10):
        await asyncio.sleep(0)
    core.store._staged.clear()
    core.store.close()
