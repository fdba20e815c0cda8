"""Levels 2 to 4 on Ray: messages delivered to the agents as supervised subtasks.

Each message is a subtask held to the policy's deadline and output schema (``Position``,
``Ruling``), with an id derived from the conflict, so a ladder climbed again after the
resource restarted joins the subtasks already under way instead of asking twice. The
arbitration subtask escalates to the supervisor's human queue when the arbiter fails to
rule (an error, a missed deadline, a bad output), if the policy escalates.
"""

from __future__ import annotations

import asyncio
import hashlib
from datetime import timedelta
from typing import Any

from pydantic import BaseModel

from policies import (
    Abandon,
    ConflictLevel,
    ConflictPolicy,
    ConflictSide,
    Escalate,
    OnFailure,
    Retry,
    RetryPolicy,
)
from runtime import Envelope

from .._supervisor.handle import AsyncSubtaskHandle, make_spec, supervisor_actor
from .ladder import Conflict
from .messages import Arbitrate, Negotiate, Position, Ruling


class SupervisedLevels:
    """``Levels`` through the ``supervisor`` actor of ``namespace``."""

    def __init__(self, resource: str, policy: ConflictPolicy, namespace: str) -> None:
        self._resource = resource
        self._policy = policy
        self._namespace = namespace

    async def negotiate(self, conflict: Conflict, round: int) -> tuple[bool, bool]:
        c = conflict
        deadline = self._policy.negotiation_deadline
        parties = (
            (ConflictSide.CHALLENGER, c.challenger, c.incumbent),
            (ConflictSide.INCUMBENT, c.incumbent, c.challenger),
        )
        handles = []
        for side, agent, other in parties:
            message = Negotiate(**_about(c), round=round, side=side, other=other)
            step = f"n{round}-{side.value}"
            handles.append(self._submit(message, c, step, agent, Position, deadline, Abandon()))
        positions = await asyncio.gather(*(h.result() for h in handles))
        challenger, incumbent = (p for p in positions if isinstance(p, Position))
        return challenger.yields, incumbent.yields

    async def arbitrate(self, conflict: Conflict) -> tuple[ConflictSide, ConflictLevel, str]:
        c, arbiter = conflict, self._policy.arbiter
        assert arbiter is not None
        plan: OnFailure = Abandon()
        if self._policy.escalate:  # one attempt, then the human queue
            plan = Retry(policy=RetryPolicy(max_attempts=1), then=Escalate())
        message = Arbitrate(**_about(c), challenger=c.challenger, incumbent=c.incumbent)
        deadline = self._policy.arbitration_deadline
        handle = self._submit(message, c, "arbiter", arbiter, Ruling, deadline, plan)
        ruling = await handle.result()
        assert isinstance(ruling, Ruling)
        answered = await supervisor_actor(self._namespace).escalations.remote("answered")
        human = any(row["subtask_id"] == handle.id for row in answered)
        level = ConflictLevel.HUMAN if human else ConflictLevel.ARBITER
        who = "a human" if human else repr(arbiter)
        return ruling.winner, level, f"{who} ruled: {ruling.reason}"

    def _submit(
        self,
        message: BaseModel,
        conflict: Conflict,
        step: str,
        to: str,
        expect: type[BaseModel],
        deadline: timedelta,
        on_failure: OnFailure,
    ) -> AsyncSubtaskHandle:
        envelope = Envelope(
            trace_id=conflict.trace_id, task_id=arbitration_id(conflict.conflict_id, step),
            sender=f"resource:{self._resource}",
        )  # fmt: skip
        spec = make_spec(
            message, to=to, expect=expect, deadline=deadline, retry=None,
            on_failure=on_failure, envelope=envelope,
        )  # fmt: skip
        return AsyncSubtaskHandle(supervisor_actor(self._namespace), spec)


def _about(c: Conflict) -> dict[str, Any]:
    """The fields every message about the conflict carries."""
    return {
        "conflict_id": c.conflict_id, "resource": c.resource, "op": c.op, "args": c.args,
        "keywords": c.kwargs, "expected": c.expected, "current": c.current,
    }  # fmt: skip


def arbitration_id(conflict_id: str, step: str = "arbiter") -> str:
    """The subtask id of a conflict's step (``"arbiter"``, ``"n1-challenger"``...): the
    id a human answers in the escalation queue."""
    digest = hashlib.blake2b(conflict_id.encode(), digest_size=10).hexdigest()
    return f"t-c{digest}-{step}"
