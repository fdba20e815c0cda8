"""The supervisor on a real local Ray: every failure reason, restarts, late results, the
kill switch under load. Time-bound failures run on a FakeClock moved by the test; the rest
wait on conditions, never on sleeps."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import ray
from resources_for_tests import Inventory
from supervised_agents import Delegate, Done, Job, Orchestrator, StrictDone, Worker

from actors import System
from policies import Deadlines, Escalate, Reroute, RetryPolicy
from runtime import SubtaskFailedError
from runtime.testing import FakeClock

pytestmark = pytest.mark.ray

ONCE = RetryPolicy(max_attempts=1)
AGAIN = RetryPolicy(max_attempts=3, initial_backoff=timedelta(0), max_backoff=timedelta(0))


def wait_until(condition: Callable[[], Any], what: str, limit: float = 60.0) -> Any:
    ends = time.monotonic() + limit
    while time.monotonic() < ends:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"never happened: {what}")


def reason_of(system: System, job: Job, to: str = "workers", **kwargs: Any) -> SubtaskFailedError:
    handle = system.supervisor.submit(job, to=to, expect=StrictDone, **kwargs)
    with pytest.raises(SubtaskFailedError) as caught:
        handle.result(timeout=60)
    assert caught.value.subtask_id == handle.id
    return caught.value


def test_every_failure_reason_without_time(system: System) -> None:
    system.agent(Worker, name="workers", replicas=2)
    ok = system.supervisor.submit(Job(key="a"), to="workers", expect=StrictDone)
    assert ok.result(timeout=60) == StrictDone(key="a", replica=ok.result().replica)  # type: ignore[attr-defined]
    assert ok.status().state == "done"
    assert reason_of(system, Job(key="b", mode="raise"), retry=ONCE).reason == "exception"
    bad = reason_of(system, Job(key="c", mode="bad"), retry=AGAIN)
    assert [a.outcome for a in bad.attempts] == ["schema"] * 3  # never an empty success
    assert reason_of(system, Job(key="d", mode="budget"), retry=ONCE).reason == "budget"
    nobody = system.supervisor.submit(Job(key="e"), to="nobody", retry=ONCE)
    with pytest.raises(SubtaskFailedError, match="no_agent"):
        nobody.result(timeout=60)
    died = reason_of(system, Job(key="f", mode="die"), to="workers:0", retry=ONCE)
    assert (died.reason, died.attempts[0].replica) == ("agent_died", "workers:0")
    handoffs = system.supervisor.handoffs(system.trace_id)
    assert {h["status"] for h in handoffs} == {"done", "failed"} and len(handoffs) == 6


def test_cancel_and_escalation_to_a_human(system: System, tmp_path: Path) -> None:
    system.agent(Worker, name="workers", replicas=1)
    hung = system.supervisor.submit(Job(key="h", mode="hang"), to="workers", expect=StrictDone)
    wait_until(lambda: hung.status().state == "running", "the attempt runs")
    assert hung.cancel()
    with pytest.raises(SubtaskFailedError, match="cancelled"):
        hung.result(timeout=60)
    handle = system.supervisor.submit(
        Job(key="x", mode="raise"), to="workers", expect=StrictDone, on_failure=Escalate()
    )
    (open_one,) = wait_until(system.supervisor.escalations, "an open escalation")
    assert open_one["subtask_id"] == handle.id and open_one["reason"] == "exception"
    system.supervisor.answer(handle.id, {"key": "x", "replica": 9})
    assert handle.result(timeout=60) == StrictDone(key="x", replica=9)


def test_deadlines_by_phase_on_a_fake_clock_and_the_late_result(
    system: System, tmp_path: Path
) -> None:
    supervisor = system.supervise(clock=FakeClock())
    system.agent(Worker, name="workers", replicas=2)
    gate = tmp_path / "gate"
    slow = supervisor.submit(
        Job(key="s", mode="stubborn", gate=str(gate), only_replica=0), to="workers:0",
        expect=StrictDone, deadline=Deadlines(running=timedelta(seconds=5)),
        retry=None, on_failure=Reroute(to="workers:1", policy=AGAIN),
    )  # fmt: skip
    wait_until(lambda: slow.status().state == "running", "the first attempt runs")
    ray.get(supervisor.actor.advance_clock.remote(5.0))
    assert slow.result(timeout=60) == StrictDone(key="s", replica=1)
    gate.touch()  # now the superseded first attempt answers, late
    history = wait_until(
        lambda: len(slow.status().attempts) == 3 and slow.status().attempts, "the late result"
    )
    assert [a.outcome for a in history] == ["deadline", "succeeded", "late:succeeded"]
    assert slow.result() == StrictDone(key="s", replica=1)  # the late one was discarded

    beat = Deadlines(running=timedelta(seconds=60), heartbeat=timedelta(seconds=2))
    alive = supervisor.submit(Job(key="b", mode="beat", gate=str(tmp_path / "g2")),
                              to="workers", deadline=beat, retry=ONCE)  # fmt: skip
    silent = supervisor.submit(Job(key="q", mode="hang"), to="workers", deadline=beat, retry=ONCE)
    # Ray may start an async actor's calls out of order: the third is submitted only once
    # both replicas are taken, so it is the one that waits.
    wait_until(lambda: alive.status().state == silent.status().state == "running",
               "both replicas busy")  # fmt: skip
    queued = supervisor.submit(Job(key="w"), to="workers", retry=ONCE,
                               deadline=Deadlines(queued=timedelta(seconds=1)))  # fmt: skip
    wait_until(lambda: queued.status().state == "queued", "the third one waits")
    ray.get(supervisor.actor.advance_clock.remote(1.0))
    with pytest.raises(SubtaskFailedError, match="queue_timeout"):
        queued.result(timeout=60)
    now = 6.0
    for _ in range(3):  # the live one heartbeats between advances, the silent one does not
        ray.get(supervisor.actor.advance_clock.remote(0.9))
        now += 0.9
        wait_until(lambda t=now: (alive.status().heartbeat_at or 0) >= t - 1e-6, "a heartbeat")
    with pytest.raises(SubtaskFailedError, match="heartbeat_timeout"):
        silent.result(timeout=60)
    (tmp_path / "g2").touch()
    assert alive.result(timeout=60) == Done(key="b", replica=alive.result().replica)  # type: ignore[attr-defined]


def test_supervisor_killed_mid_run_loses_nothing_and_writes_once(
    system: System, tmp_path: Path
) -> None:
    inventory = system.resource(Inventory, name="inventory")
    system.agent(Worker, name="workers", replicas=2)
    gate = tmp_path / "gate"
    handles = [
        system.supervisor.submit(
            Job(key=f"k{i}", mode="gate", gate=str(gate), writes=1), to="workers", expect=StrictDone
        )
        for i in range(6)
    ]
    wait_until(lambda: inventory.read("available", "A").value >= 2, "two attempts wrote")
    ray.kill(system.supervisor.actor, no_restart=False)
    gate.touch()
    assert sorted(h.result(timeout=120).key for h in handles) == [f"k{i}" for i in range(6)]  # type: ignore[attr-defined]
    assert inventory.read("available", "A").value == 6  # re-driven attempts wrote nothing twice
    # At least the two attempts that wrote were in flight at the kill: each re-driven once.
    redriven = [e["subject"] for e in system.supervisor.events("redriven")]
    assert len(redriven) == len(set(redriven)) >= 2
    assert set(redriven) <= {h.id for h in handles}


def test_agents_delegate_through_the_supervisor_under_one_trace(system: System) -> None:
    system.agent(Worker, name="workers", replicas=2)
    system.supervisor  # noqa: B018 -- running before the orchestrator delegates
    boss = system.agent(Orchestrator, name="boss")
    gathered = boss.ask(Delegate(keys=["a", "b", "c"]), timeout=60)
    assert gathered.keys == ["a", "b", "c"]
    traces = {h["trace_id"] for h in system.supervisor.handoffs()}
    assert traces == {gathered.trace_ids[0]}


def test_kill_switch_under_load_commits_nothing_after_it_returns(system: System) -> None:
    inventory = system.resource(Inventory, name="inventory")
    system.agent(Worker, name="workers", replicas=2)
    system.agent(Worker, name="spare", replicas=1)
    handles = [
        system.supervisor.submit(
            Job(key=f"w{i}", writes=200),
            to="workers",
            expect=StrictDone,
            on_failure=Reroute(to="spare", policy=AGAIN),
        )
        for i in range(4)
    ]
    wait_until(lambda: inventory.read("available", "A").value >= 20, "writes under way")
    done = system.kill("workers")
    version_at_kill = inventory.status()["version"]
    assert done["resources_fenced"] == ["inventory"] and len(done["replicas_killed"]) == 2
    outputs = [h.result(timeout=120) for h in handles]
    assert {o.replica for o in outputs} <= {0, 1}  # type: ignore[attr-defined]
    after = [r for r in system.log("inventory").records() if r.version > version_at_kill]
    assert after and all(r.writer == "spare" for r in after)
    assert any(e["kind"] == "kill" for e in system.supervisor.events())
