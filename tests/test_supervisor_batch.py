"""``Supervisor.submit_many`` on a real local Ray: many subtasks in one call, each outcome
streamed back when its own subtask ends, with everything ``result()`` promises alone:
timeouts that leave the subtask going, typed failures, submit ids that join rather than
run again, and a supervisor killed mid-batch losing nothing."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import ray
from resources_for_tests import Inventory
from supervised_agents import DelegateMany, Job, Orchestrator, StrictDone, Worker
from waiting import wait_until

from actors import AsyncSubtaskHandle, System
from actors._reconnect import UNAVAILABLE
from actors._supervisor.batch import MAX_BATCH
from actors._supervisor.calls import open_batch
from actors._supervisor.handle import make_spec
from policies import RetryPolicy
from runtime import Envelope, InvalidArgumentError, SubtaskFailedError
from runtime.testing import FakeClock

pytestmark = [pytest.mark.ray, pytest.mark.timeout(300)]

ONCE = RetryPolicy(max_attempts=1)


def _replica(output: object) -> int:
    assert isinstance(output, StrictDone)
    return output.replica


def test_each_outcome_comes_when_its_own_subtask_ends(system: System, tmp_path: Path) -> None:
    system.agent(Worker, name="workers", replicas=2)
    gate = tmp_path / "gate"
    jobs = [Job(key="slow", mode="gate", gate=str(gate))] + [Job(key=f"k{i}") for i in range(8)]
    handles = system.supervisor.submit_many(jobs, to="workers", expect=StrictDone)
    assert [h.id for h in handles] == [h.id for h in handles if h.ref is None]  # streamed
    wait_until(lambda: handles[0].status().state == "running", "the slow one runs")
    fast = [h.result(timeout=120) for h in handles[1:]]  # while the first still runs
    assert [o.key for o in fast] == [f"k{i}" for i in range(8)]  # type: ignore[attr-defined]
    with pytest.raises(TimeoutError, match=handles[0].id):
        handles[0].result(timeout=0.5)
    assert handles[0].status().state == "running"  # a timeout leaves it going
    gate.touch()
    slow = handles[0].result(timeout=120)
    assert slow == StrictDone(key="slow", replica=_replica(slow))
    assert handles[0].result(timeout=1) == slow  # asked again: the same outcome


def test_typed_failures_and_known_ids_in_one_batch(system: System) -> None:
    system.agent(Worker, name="workers", replicas=2)
    done = system.supervisor.submit(Job(key="before"), to="workers", expect=StrictDone)
    first = done.result(timeout=120)
    envelopes = [Envelope(trace_id=system.trace_id, task_id=done.id)] + [
        Envelope(trace_id=system.trace_id, task_id=f"t-{m}") for m in ("raise", "bad", "ok")
    ]
    jobs = [Job(key="before"), Job(key="r", mode="raise"), Job(key="b", mode="bad"), Job(key="o")]
    handles = system.supervisor.submit_many(
        jobs, to="workers", expect=StrictDone, retry=ONCE, envelopes=envelopes
    )
    assert [h.id for h in handles] == [done.id, "t-raise", "t-bad", "t-ok"]
    assert handles[0].result(timeout=120) == first  # joined by id, not run again
    for handle, reason in ((handles[1], "exception"), (handles[2], "schema")):
        with pytest.raises(SubtaskFailedError) as caught:
            handle.result(timeout=120)
        assert (caught.value.subtask_id, caught.value.reason) == (handle.id, reason)
    ok = handles[3].result(timeout=120)
    assert ok == StrictDone(key="o", replica=_replica(ok))
    ran = [h["subtask_id"] for h in system.supervisor.handoffs(system.trace_id)]
    assert sorted(ran) == sorted([done.id, "t-raise", "t-bad", "t-ok"])  # each once


def test_supervisor_killed_mid_batch_loses_nothing(system: System, tmp_path: Path) -> None:
    inventory = system.resource(Inventory, name="inventory")
    system.agent(Worker, name="workers", replicas=2)
    gate = tmp_path / "gate"
    jobs = [Job(key=f"k{i}", mode="gate", gate=str(gate), writes=1) for i in range(6)]
    handles = system.supervisor.submit_many(jobs, to="workers", expect=StrictDone)
    wait_until(lambda: inventory.read("available", "A").value >= 2, "two attempts wrote")
    ray.kill(system.supervisor.actor, no_restart=False)
    gate.touch()
    outputs = [h.result(timeout=180) for h in handles]  # the stream broke: joined by id
    assert sorted(o.key for o in outputs) == [f"k{i}" for i in range(6)]  # type: ignore[attr-defined]
    assert inventory.read("available", "A").value == 6  # nothing written twice
    redriven = [e["subject"] for e in system.supervisor.events("redriven")]
    assert len(redriven) == len(set(redriven)) >= 2


def test_an_agent_awaits_its_outcomes_from_the_stream(system: System) -> None:
    system.agent(Worker, name="workers", replicas=2)
    actor = system.supervisor.actor
    specs = [_spec(system, f"a{i}") for i in range(5)]
    stream = open_batch(actor, specs, FakeClock())

    async def gather() -> list[object]:
        handles = [AsyncSubtaskHandle(actor, spec, stream=stream) for spec in specs]
        return await asyncio.gather(*(h.result(timeout=120) for h in reversed(handles)))

    outputs = asyncio.run(gather())
    assert [o.key for o in outputs] == [f"a{i}" for i in reversed(range(5))]  # type: ignore[attr-defined]
    assert 1 <= stream.items <= 5


def test_an_agent_delegates_a_batch_under_its_own_trace(system: System) -> None:
    system.agent(Worker, name="workers", replicas=2)
    system.supervisor  # noqa: B018 -- running before the orchestrator delegates
    boss = system.agent(Orchestrator, name="boss")
    gathered = boss.ask(DelegateMany(keys=["a", "b", "c", "d"]), timeout=120)
    assert gathered.keys == ["a", "b", "c", "d"]
    handoffs = system.supervisor.handoffs()
    assert len(handoffs) == 4 and {h["trace_id"] for h in handoffs} == {gathered.trace_ids[0]}


def test_malformed_batches_are_refused_whole(system: System) -> None:
    system.agent(Worker, name="workers", replicas=1)
    supervisor = system.supervisor
    with pytest.raises(InvalidArgumentError, match="non-empty"):
        supervisor.submit_many([], to="workers")
    with pytest.raises(InvalidArgumentError, match="envelopes for"):
        supervisor.submit_many([Job(key="x")], to="workers", envelopes=[])
    good = _spec(system, "fine")
    for forged, match in (
        ("junk", "non-empty list"),
        ([good, {"subtask_id": "x"}], "not a subtask spec"),
        ([None] * (MAX_BATCH + 1), f"at most {MAX_BATCH}"),
    ):
        generator = supervisor.actor.run_many.options(num_returns="streaming").remote(forged)
        with pytest.raises(InvalidArgumentError, match=match):
            _first_item(generator)
    assert supervisor.status()["live"] == {}  # nothing of them ran
    assert ray.get(supervisor.actor.status.remote(good.subtask_id)).state == "unknown"


def _first_item(generator: object) -> object:
    try:
        return ray.get(next(generator))  # type: ignore[call-overload]
    except ray.exceptions.RayTaskError as error:
        raise error.cause from None
    except UNAVAILABLE:  # pragma: no cover - the supervisor must not die of it
        raise AssertionError("the supervisor died of a forged batch") from None


def _spec(system: System, key: str) -> object:
    env = Envelope(trace_id=system.trace_id, task_id=f"task-{key}")
    return make_spec(
        Job(key=key), to="workers", expect=StrictDone, deadline=None, retry=None,
        on_failure=None, envelope=env,
    )  # fmt: skip
