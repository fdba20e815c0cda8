"""Agents for the context-integrity Ray tests (importable by Ray workers by reference):
a brief relayed orchestrator -> research -> synthesis -> action, where the action writes
a file."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel

from actors import Agent, Resource, handler, read, write
from policies import ConstraintSet, RetryPolicy
from runtime import (
    ConstraintLoosenedError,
    ConstraintViolationError,
    SubtaskFailedError,
)


class Files(Resource):
    @write
    def write_file(self, state: dict[str, Any], path: str, text: str) -> int:
        state[path] = text
        return len(state)

    @read
    def paths(self, state: dict[str, Any]) -> list[str]:
        return sorted(state)


class Brief(BaseModel):
    """What travels between the hops as prose: the constraint is not in it."""

    goal: str
    target: str
    hops: list[str] = []
    drop_at: str = ""  # the hop that tries to hand on an empty constraint set


class Report(BaseModel):
    written: bool
    refused_by: str = ""
    trace_id: str = ""
    hops: list[str] = []
    carried: list[dict[str, Any]] = []


class Relay(Agent):
    """Hands the brief to the next hop; a child subtask carries the task's constraints."""

    NEXT: ClassVar[dict[str, str]] = {
        "orchestrator": "research", "research": "synthesis", "synthesis": "action",
    }  # fmt: skip

    @handler
    async def relay(self, brief: Brief) -> Report:
        onward = brief.model_copy(update={"hops": [*brief.hops, self.name]})
        dropped = ConstraintSet() if brief.drop_at == self.name else None
        try:
            handle = self.supervisor.submit(
                onward, to=self.NEXT[self.name], expect=Report, constraints=dropped,
                retry=RetryPolicy(max_attempts=1),
            )  # fmt: skip
        except ConstraintLoosenedError as error:
            return Report(written=False, refused_by=f"loosened: {error}", hops=onward.hops)
        try:
            return await handle.result()  # type: ignore[return-value]
        except SubtaskFailedError as error:
            return Report(written=False, refused_by=f"failed: {error}", hops=onward.hops)


class Action(Agent):
    """Writes the file the brief names, under the constraints its task carries."""

    @handler
    async def act(self, brief: Brief) -> Report:
        hops = [*brief.hops, self.name]
        carried = self.task.constraints.to_wire()
        try:
            await self.resource("files").write_file(brief.target, brief.goal)
        except ConstraintViolationError as error:
            return Report(
                written=False, refused_by=error.constraint, trace_id=error.trace_id, hops=hops,
                carried=carried,
            )  # fmt: skip
        return Report(written=True, trace_id=self.task.trace_id, hops=hops, carried=carried)
