"""Liveness of the supervisor's core, finding by finding (issue 9): no subtask waits
forever, whatever its agent does. A fake clock, fake replicas, real SQLite."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from liveness_fakes import Replicas, stop
from pydantic import BaseModel

from actors._supervisor.core import SupervisorCore
from actors._supervisor.handle import make_spec
from actors._supervisor.store import SubtaskStore
from actors._supervisor.types import Outcome, SubtaskSpec
from policies import (
    Deadlines,
    Durability,
    OnFailure,
    Reroute,
    RestartIntensity,
    RetryBudget,
    RetryPolicy,
)
from runtime import (
    ConfigurationError,
    Envelope,
    StorageError,
    SubtaskFailedError,
    new_task_id,
    new_trace_id,
)
from runtime.testing import FakeClock

NOW = RetryPolicy(max_attempts=3, initial_backoff=timedelta(0), max_backoff=timedelta(0))
FIVE = Deadlines(running=timedelta(seconds=5))
DRIVER = new_trace_id()  # every driver submission of one System shares its trace id


class Ask(BaseModel):
    topic: str


class Answer(BaseModel):
    summary: str


GOOD = Answer(summary="ok")


async def settle() -> None:
    for _ in range(50):
        await asyncio.sleep(0)


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), timeout=30))


def spec(
    to: str = "r",
    *,
    deadline: Deadlines | None = None,
    on_failure: OnFailure | None = None,
    retry: RetryPolicy | None = NOW,
) -> SubtaskSpec:
    return make_spec(
        Ask(topic="x"), to=to, expect=Answer, deadline=deadline, retry=retry,
        on_failure=on_failure, envelope=Envelope(trace_id=DRIVER, task_id=new_task_id()),
    )  # fmt: skip


async def started(core: SupervisorCore, s: SubtaskSpec) -> asyncio.Task[Outcome]:
    task = asyncio.ensure_future(core.run(s))
    await settle()
    return task


async def advance(core: SupervisorCore, clock: FakeClock, seconds: float) -> None:
    clock.advance(seconds)
    core.tick()
    await settle()


def failure(task: asyncio.Task[Outcome]) -> SubtaskFailedError:
    assert task.done()
    error = task.result().error
    assert error is not None
    return error


def outcomes(core: SupervisorCore, subtask_id: str) -> list[tuple[str, str | None]]:
    return [(a.outcome, a.replica) for a in core.status_of(subtask_id).attempts]


# -- 1. a missed deadline cancels the attempt and frees its slot --------------------------


def test_a_missed_deadline_cancels_the_attempt_and_frees_the_slot(tmp_path: Path) -> None:
    async def body() -> None:
        clock, agents = FakeClock(), Replicas({"r": 1})
        core = SupervisorCore(SubtaskStore(tmp_path), agents, clock=clock)
        hung = await started(core, spec(deadline=FIVE))
        behind = await started(core, spec(deadline=FIVE))
        assert len(agents.calls) == 1 and core.overview()["replicas"] == {"r:0": "1/1"}
        await advance(core, clock, 5)
        assert agents.calls[0].future.cancelled()  # the hung call was cancelled
        assert len(agents.calls) == 2  # and its slot went to the next attempt
        agents.calls[1].future.set_result(GOOD)
        await settle()
        agents.calls[2].future.set_result(GOOD)
        await settle()
        assert hung.done() and behind.done()
        assert outcomes(core, hung.result().subtask_id)[0] == ("deadline", "r:0")

    run(body)


Hung = tuple[FakeClock, Replicas, SupervisorCore, "asyncio.Task[Outcome]"]


async def past_its_deadline(tmp_path: Path, *, gated: bool = False) -> Hung:
    """A subtask for group ``r`` past its deadline, on the group's one replica, whose
    handler blocks (a cancel does not interrupt it); ``gated``: a restart of the replica
    waits for ``agents.restart_gate``, the replica killed and not up again meanwhile."""
    clock, agents = FakeClock(), Replicas({"r": 1})
    agents.stubborn.add("r:0")
    agents.restart_gate = asyncio.Event() if gated else None
    core = SupervisorCore(SubtaskStore(tmp_path), agents, clock=clock)
    hung = await started(core, spec(deadline=FIVE))
    await advance(core, clock, 5)  # the retry queues behind the busy slot
    return clock, agents, core, hung


async def succeeds_on_the_new_incarnation(
    agents: Replicas, core: SupervisorCore, hung: asyncio.Task[Outcome]
) -> None:
    """The retry runs on the restarted replica and succeeds: the wedged attempt is late."""
    agents.calls[1].future.set_result(GOOD)
    await settle()
    assert hung.result().output == GOOD
    assert outcomes(core, hung.result().subtask_id) == [
        ("deadline", "r:0"), ("late:agent_died", "r:0"), ("succeeded", "r:0"),
    ]  # fmt: skip


def test_a_replica_wedged_past_the_grace_is_restarted_and_reported(tmp_path: Path) -> None:
    async def body() -> None:
        clock, agents, core, hung = await past_its_deadline(tmp_path)
        assert len(agents.calls) == 1 and core.overview()["replicas"] == {"r:0": "1/1"}
        await advance(core, clock, 9.9)
        assert agents.restarted == []  # within its grace
        await advance(core, clock, 0.1)
        assert agents.restarted == ["r:0"]
        assert [e["kind"] for e in core.store.events()][:1] == ["wedged"]
        assert core.overview()["restarts"] == {"r:0": 1}
        await succeeds_on_the_new_incarnation(agents, core, hung)

    run(body)


async def restarting(tmp_path: Path) -> Hung:
    """``past_its_deadline``, gated, and past its grace: the wedged replica is being
    restarted until ``agents.restart_gate`` is set."""
    clock, agents, core, hung = await past_its_deadline(tmp_path, gated=True)
    await advance(core, clock, 10)  # the grace
    assert agents.down == {"r:0"} and agents.calls[0].future.done()
    return clock, agents, core, hung


def test_a_group_waits_for_its_one_replica_s_restart_without_spending_attempts(
    tmp_path: Path,
) -> None:
    """The retry, queued for the group, waits while the group's only replica is being
    restarted: it is not failed no_agent (a retry policy with no backoff would spend
    every attempt at once)."""

    async def body() -> None:
        clock, agents, core, hung = await restarting(tmp_path)
        for _ in range(3):
            await advance(core, clock, 1)
        assert not hung.done() and len(agents.calls) == 1, hung.done() and hung.result()
        assert agents.restart_gate is not None
        agents.restart_gate.set()
        await settle()
        await succeeds_on_the_new_incarnation(agents, core, hung)

    run(body)


def test_a_group_whose_one_replica_fails_to_restart_fails_its_queue_no_agent(
    tmp_path: Path,
) -> None:
    async def body() -> None:
        _, agents, core, hung = await restarting(tmp_path)
        agents.dead.add("r:0")
        assert agents.restart_gate is not None
        agents.restart_gate.set()  # and it does not come back
        await settle()
        assert failure(hung).reason == "no_agent"  # at once, not at the queue's deadline
        assert [o for o, _ in outcomes(core, hung.result().subtask_id)][-1] == "no_agent"

    run(body)


def test_wedged_restarts_stop_at_the_restart_intensity(tmp_path: Path) -> None:
    async def body() -> None:
        clock, agents = FakeClock(), Replicas({"r": 1})
        agents.stubborn.add("r:0")
        core = SupervisorCore(SubtaskStore(tmp_path), agents, clock=clock)
        core.configure_group("r", RestartIntensity(max_restarts=1, within=timedelta(minutes=1)))
        hung = await started(core, spec(deadline=FIVE, retry=RetryPolicy(max_attempts=1)))
        pinned = await started(core, spec(to="r:0", deadline=FIVE))
        await advance(core, clock, 5)
        await advance(core, clock, 10)  # the failed attempt and the wedge: 2 restarts
        assert agents.restarted == [] and core.failed_groups == {"r"}
        assert failure(hung).reason == "deadline"
        assert failure(pinned).reason == "no_agent"  # nothing will ever run it
        kinds = [e["kind"] for e in core.store.events() if e["kind"] != "late_result"]
        assert kinds == ["group_failed", "wedged"]

    run(body)


def test_with_default_deadlines_nothing_is_queued_after_an_hour(tmp_path: Path) -> None:
    async def body() -> None:
        clock, agents = FakeClock(), Replicas({"r": 1})
        agents.stubborn.add("r:0")
        core = SupervisorCore(SubtaskStore(tmp_path), agents, clock=clock)
        tasks = [await started(core, spec(retry=RetryPolicy(max_attempts=2))) for _ in range(3)]
        for _ in range(360):
            await advance(core, clock, 10)
            for call in agents.running():
                if call.replica not in agents.stubborn:
                    call.future.set_result(GOOD)
            await settle()
        assert all(t.done() for t in tasks)
        assert core.live == {}

    run(body)


# -- 2. an unknown or dead target fails no_agent at once, and the plan runs -----------------


def test_a_subtask_for_a_dead_replica_fails_no_agent_and_is_rerouted(tmp_path: Path) -> None:
    async def body() -> None:
        agents = Replicas({"r": 2})
        core = SupervisorCore(SubtaskStore(tmp_path), agents, clock=FakeClock())
        first = await started(core, spec(to="r:1", retry=RetryPolicy(max_attempts=1)))
        agents.die("r:1")
        await settle()
        assert failure(first).reason == "agent_died"
        plan = Reroute(to="r", policy=NOW)
        for to in ("r:1", "r:7"):  # dead, and never seen
            task = await started(core, spec(to=to, retry=None, on_failure=plan))
            agents.calls[-1].future.set_result(GOOD)
            await settle()
            assert task.result().output == GOOD
            assert outcomes(core, task.result().subtask_id) == [
                ("no_agent", None), ("succeeded", "r:0")
            ]  # fmt: skip

    run(body)


def test_recovery_checks_the_stored_target(tmp_path: Path) -> None:
    async def body() -> None:
        agents = Replicas({"r": 2})
        core = SupervisorCore(SubtaskStore(tmp_path), agents, clock=FakeClock())
        plan = Reroute(to="r", policy=NOW)
        task = await started(core, spec(to="r:1", retry=None, on_failure=plan))
        assert not task.done()
        await stop(core)
        agents.die("r:1")  # it died while the supervisor restarted
        core2 = SupervisorCore(SubtaskStore(tmp_path), agents, clock=FakeClock())
        core2.recover()
        await settle()
        call = agents.calls[-1]
        assert call.replica == "r:0"
        call.future.set_result(GOOD)
        await settle()
        sid = call.envelope.task_id
        assert (await core2.wait(sid)).output == GOOD
        assert outcomes(core2, sid) == [
            ("interrupted", "r:1"), ("late:agent_died", "r:1"), ("no_agent", None),
            ("succeeded", "r:0"),
        ]  # fmt: skip
        assert [a.number for a in core2.status_of(sid).attempts] == [1, 1, 2, 3]

    run(body)


# -- 3. a pinned retry runs on its pin ------------------------------------------------------


def test_a_retry_in_place_on_a_pinned_target_runs(tmp_path: Path) -> None:
    async def body() -> None:
        agents = Replicas({"r": 2})
        core = SupervisorCore(SubtaskStore(tmp_path), agents, clock=FakeClock())
        task = await started(core, spec(to="r:0"))
        agents.calls[0].future.set_exception(ValueError("once"))
        await settle()
        assert [c.replica for c in agents.calls] == ["r:0", "r:0"]
        agents.calls[1].future.set_result(GOOD)
        await settle()
        assert task.result().output == GOOD

    run(body)


# -- 5. an attempt running when the supervisor stops stays in the history ------------------


def test_an_interrupted_attempt_keeps_its_number_and_its_result_is_late(tmp_path: Path) -> None:
    async def body() -> None:
        agents = Replicas({"r": 2})
        core = SupervisorCore(SubtaskStore(tmp_path), agents, clock=FakeClock())
        s = spec()
        await started(core, s)
        (old,) = agents.calls
        await stop(core)
        core2 = SupervisorCore(SubtaskStore(tmp_path), agents, clock=FakeClock())  # restarted
        assert core2.recover() == 1
        await settle()
        new = agents.calls[1]
        assert new.envelope.task_id == old.envelope.task_id  # same idempotency keys
        old.future.set_result(Answer(summary="late"))
        await settle()
        new.future.set_result(GOOD)
        await settle()
        assert (await core2.wait(s.subtask_id)).output == GOOD
        records = core2.status_of(s.subtask_id).attempts
        assert [(a.number, a.outcome, a.replica) for a in records] == [
            (1, "interrupted", old.replica), (1, "late:succeeded", old.replica),
            (2, "succeeded", new.replica),
        ]  # fmt: skip

    run(body)


# -- 6. a subtask stays live until its outcome commits -------------------------------------


def test_a_failed_final_commit_is_retried_and_nobody_sees_storage_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def body() -> None:
        agents = Replicas({"r": 1})
        core = SupervisorCore(SubtaskStore(tmp_path), agents, clock=FakeClock())
        s = spec()
        task = await started(core, s)
        real, failures = core.store._write_group, [2]

        def flaky(staged: Any) -> None:
            if failures[0] > 0:
                failures[0] -= 1  # the transaction and its statements are lost
                raise StorageError("disk full")
            real(staged)

        monkeypatch.setattr(core.store, "_write_group", flaky)
        agents.calls[0].future.set_result(GOOD)
        await settle()
        assert not task.done()  # still being stored
        assert core.store.subtask(s.subtask_id)["finished"] is None
        joined = asyncio.ensure_future(core.wait(s.subtask_id))
        outcome = await asyncio.wait_for(task, timeout=5)
        assert outcome.output == GOOD and (await joined).output == GOOD
        assert core.store.subtask(s.subtask_id)["state"] == "done"

    run(body)


def test_an_undecodable_row_is_quarantined_and_the_rest_recover(tmp_path: Path) -> None:
    async def body() -> None:
        agents = Replicas({"r": 1})
        core = SupervisorCore(SubtaskStore(tmp_path), agents, clock=FakeClock())
        bad, good = spec(), spec()
        await started(core, bad)
        await started(core, good)
        core.store._conn.execute(
            "UPDATE subtasks SET spec = ? WHERE id = ?", (b"not a pickle", bad.subtask_id)
        )
        core2 = SupervisorCore(SubtaskStore(tmp_path), agents, clock=FakeClock())
        assert core2.recover() == 1
        assert [e["subject"] for e in core2.store.events("quarantined")] == [bad.subtask_id]
        assert core2.status_of(bad.subtask_id).state == "quarantined"
        with pytest.raises(ConfigurationError, match="quarantined"):
            await core2.wait(bad.subtask_id)

    run(body)


# -- 7. a second submit of the same id waits until it is stored ----------------------------


def test_a_concurrent_submit_of_the_same_id_returns_once_it_is_stored(tmp_path: Path) -> None:
    async def body() -> None:
        agents = Replicas({"r": 1})
        core = SupervisorCore(SubtaskStore(tmp_path), agents, clock=FakeClock())
        s = spec()
        first = asyncio.ensure_future(core.submit(s))
        second = asyncio.ensure_future(core.submit(s))
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert not second.done()  # the first one's row is not committed yet
        await first
        await second
        assert core.store.subtask(s.subtask_id) is not None

    run(body)


# -- 8. the retry budget is configured where subtasks are submitted -------------------------


async def _failing_once(core: SupervisorCore, agents: Replicas, specs: list[SubtaskSpec]) -> int:
    """Submit ``specs``, fail every first attempt, answer every retry; how many failed."""
    core.configure_group("r", RestartIntensity(max_restarts=1000))
    tasks = [await started(core, s) for s in specs]
    for call in list(agents.calls):
        call.future.set_exception(ValueError("first attempts fail"))
    await settle()
    for call in agents.running():
        call.future.set_result(GOOD)
    await settle()
    return sum(1 for t in tasks if t.result().error is not None)


def test_the_retry_budget_is_set_where_subtasks_are_submitted(tmp_path: Path) -> None:
    async def body() -> None:
        agents = Replicas({"r": 1}, capacity=100)
        core = SupervisorCore(SubtaskStore(tmp_path / "a"), agents, clock=FakeClock())
        specs = [spec() for _ in range(30)]
        assert await _failing_once(core, agents, specs) == 14  # 10 + 0.2 * 30 retries
        refused = [core.status_of(s.subtask_id) for s in specs]
        assert sum("[retry_budget_exhausted]" in s.detail for s in refused) == 14

        generous = RetryBudget(ratio=1.0, min_retries_per_window=0)
        agents = Replicas({"r": 1}, capacity=100)
        core = SupervisorCore(SubtaskStore(tmp_path / "b"), agents, clock=FakeClock())
        envelope = Envelope(trace_id=DRIVER, task_id=new_task_id())
        one = make_spec(
            Ask(topic="x"), to="r", expect=Answer, deadline=None, retry=NOW, on_failure=None,
            envelope=envelope, run="batch", retry_budget=generous,
        )  # fmt: skip
        batch = [replace(one, subtask_id=t, envelope=replace(envelope, task_id=t))
                 for t in (new_task_id() for _ in range(30))]  # fmt: skip
        assert await _failing_once(core, agents, batch) == 0

        agents = Replicas({"r": 1}, capacity=100)
        core = SupervisorCore(SubtaskStore(tmp_path / "c"), agents, clock=FakeClock())
        core.configure_retry_budget(generous)
        assert await _failing_once(core, agents, [spec() for _ in range(30)]) == 0

    run(body)


def test_the_subtask_store_fsyncs_by_default(tmp_path: Path) -> None:
    synchronous = {1: "NORMAL", 2: "FULL"}
    default = SubtaskStore(tmp_path / "a")._conn.execute("PRAGMA synchronous").fetchone()[0]
    process = (
        SubtaskStore(tmp_path / "b", Durability.PROCESS)
        ._conn.execute("PRAGMA synchronous")
        .fetchone()[0]
    )
    assert (synchronous[default], synchronous[process]) == ("FULL", "NORMAL")
