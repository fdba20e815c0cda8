"""The supervisor's logic as a plain class: a fake clock, a fake dispatcher, real SQLite.

Each test drives the core the way the Ray actor does (calls, then ``tick``), resolving
agent calls by hand, so every failure reason and every plan is pinned without Ray.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from pydantic import BaseModel, Field
from waiting import settle

from actors import Outcome
from actors._supervisor.handle import make_spec
from actors._supervisor.store import SubtaskStore
from actors._supervisor.types import AgentDiedError, ReplicaInfo
from actors.lowlevel import SubtaskSpec, SupervisorCore
from policies import (
    Abandon,
    Deadlines,
    Escalate,
    OnFailure,
    Reroute,
    RestartIntensity,
    Retry,
    RetryPolicy,
)
from runtime import BudgetExceededError, Envelope, Location, SubtaskFailedError, new_task_id
from runtime.testing import FakeClock

NOW = RetryPolicy(max_attempts=3, initial_backoff=timedelta(0), max_backoff=timedelta(0))


class Ask(BaseModel):
    topic: str


class Answer(BaseModel):
    summary: str = Field(min_length=1)
    sources: list[str] = Field(min_length=1)


GOOD = Answer(summary="ok", sources=["a"])


@dataclass
class Call:
    replica: str
    message: BaseModel
    envelope: Envelope
    future: asyncio.Future[Any]


class FakeAgents:
    """Replicas by group; every call waits until the test resolves it (a cancel resolves
    it as cancelled, unless the agent ignores cancels)."""

    def __init__(self, groups: dict[str, int], *, ignore_cancel: bool = False) -> None:
        self.groups = {
            g: [ReplicaInfo(f"{g}:{i}", 1, 1) for i in range(n)] for g, n in groups.items()
        }
        self.calls: list[Call] = []
        self.ignore_cancel = ignore_cancel

    async def replicas(self, group: str) -> list[ReplicaInfo]:
        return list(self.groups.get(group, []))

    def send(
        self, replica: str, message: BaseModel, envelope: Envelope
    ) -> tuple[Awaitable[Any], Callable[[], None]]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.calls.append(Call(replica, message, envelope, future))
        return future, (lambda: None) if self.ignore_cancel else future.cancel

    def follow(self, replica: str, span_id: str) -> Awaitable[Any]:
        return asyncio.get_running_loop().create_future()  # never ends: nothing to record


class Refusing:
    async def may_retry(self, run: str, agent: str) -> bool:
        return False

    def record_first_attempts(self, run: str, count: int) -> None:
        pass


def run(test: Callable[..., Coroutine[Any, Any, None]], *args: Any) -> None:
    asyncio.run(test(*args))


def make_core(
    store_root: Location, agents: FakeAgents, clock: FakeClock, **kwargs: Any
) -> SupervisorCore:
    return SupervisorCore(SubtaskStore(store_root), agents, clock=clock, **kwargs)


def spec(
    to: str = "r",
    *,
    deadline: Deadlines | None = None,
    on_failure: OnFailure | None = None,
    retry: RetryPolicy | None = NOW,
    **kwargs: Any,
) -> SubtaskSpec:
    envelope = Envelope(task_id=new_task_id())
    return make_spec(
        Ask(topic="x"), to=to, expect=Answer, deadline=deadline, retry=retry,
        on_failure=on_failure, envelope=envelope, **kwargs,
    )  # fmt: skip


async def started(core: SupervisorCore, s: SubtaskSpec) -> asyncio.Task[Outcome]:
    task = asyncio.ensure_future(core.run(s))
    await settle()
    return task


def failure(task: asyncio.Task[Outcome]) -> SubtaskFailedError:
    assert task.done()
    error = task.result().error
    assert error is not None
    return error


def test_success_runs_under_the_subtask_id_and_writes_a_handoff(store_root: Location) -> None:
    async def body() -> None:
        agents = FakeAgents({"r": 2})
        core = make_core(store_root, agents, FakeClock())
        s = spec(next_stage="review")
        task = await started(core, s)
        (call,) = agents.calls
        assert call.envelope.task_id == s.subtask_id
        assert call.envelope.trace_id == s.envelope.trace_id
        call.future.set_result(GOOD)
        await settle()
        assert task.result().unwrap() == GOOD
        (handoff,) = core.store.handoffs()
        assert handoff["status"] == "done" and handoff["next_stage"] == "review"
        assert handoff["output_ref"].endswith(s.subtask_id)
        assert (await core.wait(s.subtask_id)).output == GOOD  # from storage
        assert core.live == {}

    run(body)


def test_truncated_output_is_a_schema_failure_then_retried(store_root: Location) -> None:
    async def body() -> None:
        agents = FakeAgents({"r": 2})
        core = make_core(store_root, agents, FakeClock())
        task = await started(core, spec())
        agents.calls[0].future.set_result(Answer.model_construct(summary="The fi", sources=[]))
        await settle()
        assert agents.calls[1].replica != agents.calls[0].replica  # avoids the failed one
        assert agents.calls[1].envelope.task_id == agents.calls[0].envelope.task_id
        agents.calls[1].future.set_result(GOOD)
        await settle()
        outcomes = [a.outcome for a in core.status_of(task.result().subtask_id).attempts]
        assert outcomes == ["schema", "succeeded"]

    run(body)


@pytest.mark.parametrize(
    ("raised", "reason", "kind"),
    [
        (ValueError("boom"), "exception", "ValueError"),
        (AgentDiedError("gone"), "agent_died", None),
        (
            BudgetExceededError(scope="run:x", dimension="cost", cap=1, requested=2, available=0),
            "budget",
            "BudgetExceededError",
        ),
    ],
)
def test_errors_become_typed_reasons(
    store_root: Location, raised: BaseException, reason: str, kind: str | None
) -> None:
    async def body() -> None:
        agents = FakeAgents({"r": 1})
        core = make_core(store_root, agents, FakeClock())
        task = await started(core, spec(retry=RetryPolicy(max_attempts=1)))
        agents.calls[0].future.set_exception(raised)
        await settle()
        error = failure(task)
        assert (error.reason, error.attempts[0].error_type) == (reason, kind)
        assert ("attempts_exhausted" in error.detail) == (reason != "budget")

    run(body)


def test_a_budget_refusal_fails_the_subtask_at_once(store_root: Location) -> None:
    async def body() -> None:
        agents = FakeAgents({"r": 2})
        core = make_core(store_root, agents, FakeClock())
        task = await started(core, spec(retry=NOW))
        refused = BudgetExceededError(
            scope="run:x", dimension="calls", cap=1, requested=1, available=0
        )
        agents.calls[0].future.set_exception(refused)
        await settle()
        assert failure(task).reason == "budget"
        assert len(agents.calls) == 1  # not retried: the run's caps bind every agent

    run(body)


def test_running_deadline_then_the_late_result_is_recorded_and_discarded(
    store_root: Location,
) -> None:
    async def body() -> None:
        clock = FakeClock()
        agents = FakeAgents({"r": 2}, ignore_cancel=True)  # answers after it was cancelled
        core = make_core(store_root, agents, clock)
        s = spec(deadline=Deadlines(running=timedelta(seconds=5)))
        task = await started(core, s)
        clock.advance(5)
        core.tick()
        await settle()
        assert len(agents.calls) == 2  # retried while the first still runs
        agents.calls[0].future.set_result(Answer(summary="late", sources=["z"]))
        await settle()
        assert not task.done()
        agents.calls[1].future.set_result(GOOD)
        await settle()
        assert task.result().unwrap() == GOOD
        outcomes = [a.outcome for a in core.status_of(s.subtask_id).attempts]
        assert outcomes == ["deadline", "late:succeeded", "succeeded"]
        assert [e["kind"] for e in core.store.events()] == ["late_result"]

    run(body)


def test_queue_timeout_and_heartbeat_timeout(store_root: Location) -> None:
    async def body() -> None:
        clock = FakeClock()
        agents = FakeAgents({"r": 1})
        core = make_core(store_root, agents, clock)
        beat = Deadlines(running=timedelta(seconds=60), heartbeat=timedelta(seconds=2))
        first = await started(core, spec(deadline=beat, retry=RetryPolicy(max_attempts=1)))
        queued = Deadlines(queued=timedelta(seconds=1))
        second = await started(core, spec(deadline=queued, retry=RetryPolicy(max_attempts=1)))
        clock.advance(1.5)
        first_id = agents.calls[0].envelope.task_id
        assert core.heartbeat(first_id, agents.calls[0].envelope.span_id)
        core.tick()
        await settle()
        assert failure(second).reason == "queue_timeout"
        assert core.status_of(first_id).state == "running"
        assert not core.heartbeat(first_id, "not-the-attempt-span")
        clock.advance(2)
        core.tick()
        await settle()
        assert failure(first).reason == "heartbeat_timeout"

    run(body)


def test_no_agent_cancel_and_rejection_are_final(store_root: Location) -> None:
    async def body() -> None:
        agents = FakeAgents({"r": 1})
        core = make_core(store_root, agents, FakeClock())
        nobody = await started(core, spec(to="ghost", retry=RetryPolicy(max_attempts=1)))
        assert failure(nobody).reason == "no_agent"
        running = await started(core, spec())
        assert await core.cancel(running_id := agents.calls[0].envelope.task_id)
        await settle()
        assert failure(running).reason == "cancelled"
        assert agents.calls[0].future.cancelled()
        assert not await core.cancel(running_id)

    run(body)


def test_escalation_to_a_human_waits_for_an_answer(store_root: Location) -> None:
    async def body() -> None:
        agents = FakeAgents({"r": 1})
        core = make_core(store_root, agents, FakeClock())
        plan = Escalate()
        a = await started(core, spec(retry=None, on_failure=plan))
        agents.calls[0].future.set_exception(ValueError("no"))
        await settle()
        b = await started(core, spec(retry=None, on_failure=plan))
        agents.calls[1].future.set_exception(ValueError("no"))
        await settle()
        assert [e["reason"] for e in core.store.escalations()] == ["exception", "exception"]
        assert not a.done()
        first, second = (e["subtask_id"] for e in core.store.escalations())
        with pytest.raises(Exception, match="validate"):
            await core.answer(first, {"summary": ""}, None)
        assert await core.answer(first, {"summary": "s", "sources": ["h"]}, None) == "done"
        assert await core.answer(second, None, "not worth it") == "failed"
        await settle()
        assert a.result().unwrap() == Answer(summary="s", sources=["h"])
        assert failure(b).reason == "rejected"
        assert core.store.escalations() == []

    run(body)


def test_kill_fails_attempts_with_killed_and_the_plan_reroutes(store_root: Location) -> None:
    async def body() -> None:
        agents = FakeAgents({"r": 1, "backup": 1})
        core = make_core(store_root, agents, FakeClock())
        task = await started(core, spec(retry=None, on_failure=Reroute(to="backup", policy=NOW)))
        done = await core.kill_agent("r", 2)
        await settle()
        assert done["attempts_failed"] == 1
        assert agents.calls[1].replica == "backup:0"
        agents.calls[1].future.set_result(GOOD)
        await settle()
        assert task.result().output == GOOD
        history = core.status_of(agents.calls[0].envelope.task_id).attempts
        assert [a.outcome for a in history] == ["killed", "late:cancelled", "succeeded"]
        assert [e["kind"] for e in core.store.events()] == ["kill", "late_result"]
        await started(core, spec())  # the fenced group has no replica left
        assert core.pool.replicas.keys() == {"backup:0"}

    run(body)


def test_restart_intensity_and_retry_budget_stop_retries(store_root: Location) -> None:
    async def body() -> None:
        agents = FakeAgents({"r": 2})
        core = make_core(store_root / "a", agents, FakeClock())
        core.configure_group("r", RestartIntensity(max_restarts=0))
        task = await started(core, spec(on_failure=Retry(policy=NOW, then=Abandon()), retry=None))
        agents.calls[0].future.set_exception(ValueError("x"))
        await settle()
        assert "restart_intensity_exceeded" in failure(task).detail
        assert core.failed_groups == {"r"}

        agents = FakeAgents({"r": 2})
        core = make_core(store_root / "b", agents, FakeClock(), retry_budget=Refusing())
        task = await started(core, spec())
        agents.calls[0].future.set_exception(ValueError("x"))
        await settle()
        assert "retry_budget_exhausted" in failure(task).detail

    run(body)


def test_a_new_core_redrives_unfinished_subtasks_and_keeps_finished_ones(
    store_root: Location,
) -> None:
    async def body() -> None:
        agents = FakeAgents({"r": 2})
        core = make_core(store_root, agents, FakeClock())
        finished, unfinished = spec(), spec()
        t1 = await started(core, finished)
        await started(core, unfinished)
        agents.calls[0].future.set_result(GOOD)
        await settle()
        assert t1.result().output == GOOD
        # A new incarnation on the same storage, as after the actor was killed.
        again = FakeAgents({"r": 2})
        core2 = make_core(store_root, again, FakeClock())
        assert core2.recover() == 1
        await settle()
        (call,) = again.calls
        assert call.envelope.task_id == unfinished.subtask_id  # same idempotency keys
        call.future.set_result(GOOD)
        await settle()
        assert (await core2.wait(unfinished.subtask_id)).output == GOOD
        assert (await core2.wait(finished.subtask_id)).output == GOOD
        assert [e["kind"] for e in core2.store.events()] == ["redriven"]

    run(body)


def test_a_stage_silent_past_its_window_is_a_stall(store_root: Location) -> None:
    async def body() -> None:
        clock = FakeClock()
        agents = FakeAgents({"r": 1})
        core = make_core(store_root, agents, clock)
        core.declare_stage("write", 10.0)
        await started(core, spec(stage="research", next_stage="write"))
        agents.calls[0].future.set_result(GOOD)
        await settle()
        clock.advance(9)
        core.tick()
        assert core.stalls() == []
        clock.advance(1)
        core.tick()
        await settle()
        assert [s["stage"] for s in core.stalls()] == ["write"]
        assert core.overview()["stalls"][0]["stage"] == "write"
        assert [e["kind"] for e in core.store.events()] == ["stall"]
        await started(core, spec(stage="write"))
        assert core.stalls() == []

    run(body)


def test_attempts_queued_for_a_replica_that_dies_fail_with_no_agent(store_root: Location) -> None:
    async def body() -> None:
        agents = FakeAgents({"r": 2})
        core = make_core(store_root, agents, FakeClock())
        plan = Reroute(to="r", policy=NOW)
        first = await started(core, spec(to="r:0", retry=None, on_failure=plan))
        queued = await started(core, spec(to="r:0", retry=None, on_failure=plan))
        assert len(agents.calls) == 1  # the second waits for r:0, without a queue deadline
        agents.calls[0].future.set_exception(AgentDiedError("r:0 died"))
        await settle()
        for index in (1, 2):  # one at a time on r:1, the replica left
            assert agents.calls[index].replica == "r:1"
            agents.calls[index].future.set_result(GOOD)
            await settle()
        assert first.result().output == GOOD and queued.result().output == GOOD
        waited = core.status_of(queued.result().subtask_id).attempts
        assert [(a.outcome, a.replica) for a in waited] == [
            ("no_agent", None),
            ("succeeded", "r:1"),
        ]
        assert "r:0 is gone" in waited[0].detail

    run(body)


def test_a_budget_refusal_does_not_count_toward_restart_intensity(store_root: Location) -> None:
    async def body() -> None:
        agents = FakeAgents({"r": 1})
        core = make_core(store_root, agents, FakeClock())
        core.configure_group("r", RestartIntensity(max_restarts=1))
        refused = BudgetExceededError(
            scope="run:x", dimension="calls", cap=1, requested=1, available=0
        )
        capped = await started(core, spec())
        agents.calls[0].future.set_exception(refused)
        await settle()
        assert failure(capped).reason == "budget"
        retried = await started(core, spec())
        agents.calls[1].future.set_exception(ValueError("once"))
        await settle()
        agents.calls[2].future.set_result(GOOD)  # one failure of the group: retried
        await settle()
        assert retried.result().output == GOOD and core.failed_groups == set()

    run(body)
