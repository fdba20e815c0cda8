"""Liveness of the supervisor on a real local Ray (issue 9): control calls never queue
behind handlers, a replica blocked past its grace is restarted, a restarted supervisor
recovers at once and keeps every attempt, and a random mix of misbehaviours ends every
subtask once, in bounded time, with no write applied twice."""

from __future__ import annotations

import random
import sqlite3
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import ray
from resources_for_tests import Inventory
from supervised_agents import Job, PairWorker, StrictDone, Worker

from actors import System
from policies import Deadlines, RestartIntensity, RetryPolicy
from runtime import ConfigurationError, SubtaskFailedError
from runtime.testing import FakeClock

pytestmark = pytest.mark.ray

AGAIN = RetryPolicy(max_attempts=3, initial_backoff=timedelta(0), max_backoff=timedelta(0))


def wait_until(condition: Callable[[], Any], what: str, limit: float = 60.0) -> Any:
    ends = time.monotonic() + limit
    while time.monotonic() < ends:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"never happened: {what}")


def stored_events(system: System, kind: str) -> list[str]:
    with sqlite3.connect(system.root / "supervisor.sqlite") as conn:
        rows = conn.execute("SELECT subject FROM events WHERE kind = ?", (kind,)).fetchall()
    return [row[0] for row in rows]


def test_control_calls_answer_while_the_only_slot_is_busy(system: System, tmp_path: Path) -> None:
    workers = system.agent(Worker, name="workers", replicas=1)
    gate = tmp_path / "gate"
    busy = system.supervisor.submit(Job(key="b", mode="gate", gate=str(gate)), to="workers")
    wait_until(lambda: busy.status().state == "running", "the attempt runs")
    info = ray.get(workers.actors[0].ping.remote(), timeout=5)  # not queued behind it
    assert (info["name"], info["capacity"]) == ("workers", 1)
    gate.touch()
    assert busy.result(timeout=60).key == "b"  # type: ignore[attr-defined]


def test_a_restarted_supervisor_recovers_at_once_and_keeps_the_busy_replica(
    system: System, tmp_path: Path
) -> None:
    system.agent(Worker, name="workers", replicas=1)
    gate = tmp_path / "gate"
    handle = system.supervisor.submit(
        Job(key="k", mode="gate", gate=str(gate)), to="workers", expect=StrictDone
    )
    wait_until(lambda: handle.status().state == "running", "the attempt runs")
    ray.kill(system.supervisor.actor, no_restart=False)
    # Nobody calls the new incarnation: it recovers by itself.
    wait_until(lambda: stored_events(system, "redriven") == [handle.id], "an eager recovery")
    assert handle.status().state in ("queued", "running")  # waits out the restart
    gate.touch()
    assert handle.result(timeout=60) == StrictDone(key="k", replica=0)
    history = wait_until(
        lambda: len(handle.status().attempts) == 3 and handle.status().attempts, "the late one"
    )
    assert sorted((a.number, a.outcome) for a in history) == [
        (1, "interrupted"), (1, "late:succeeded"), (2, "succeeded"),
    ], [a.detail for a in history]  # fmt: skip


def test_a_replica_blocked_past_its_grace_is_restarted(system: System, tmp_path: Path) -> None:
    supervisor = system.supervise(clock=FakeClock())
    system.agent(Worker, name="workers", replicas=1)
    marker = tmp_path / "blocked-once"
    deadline = Deadlines(running=timedelta(seconds=5), grace=timedelta(seconds=2))
    handle = supervisor.submit(
        Job(key="w", mode="block_once", gate=str(marker)), to="workers", expect=StrictDone,
        deadline=deadline, retry=AGAIN,
    )  # fmt: skip
    wait_until(marker.exists, "the handler blocks its replica")
    ray.get(supervisor.actor.advance_clock.remote(5.0))  # the deadline: cancelled, in vain
    ray.get(supervisor.actor.advance_clock.remote(2.0))  # the grace: restarted
    assert handle.result(timeout=60) == StrictDone(key="w", replica=0)
    assert supervisor.status()["restarts"] == {"workers:0": 1}
    assert [e["subject"] for e in supervisor.events("wedged")] == ["workers:0"]


def test_submit_checks_its_arguments(system: System) -> None:
    system.agent(Worker, name="workers", replicas=2)
    supervisor = system.supervisor
    for bad in ({"to": ""}, {"to": "workers:7"}, {"to": "workers:x"}, {"expect": dict}):
        with pytest.raises(ConfigurationError):
            supervisor.submit(Job(key="x"), **{"to": "workers", **bad})  # type: ignore[arg-type]
    assert supervisor.submit(Job(key="y"), to="workers:1").result(timeout=60).key == "y"  # type: ignore[attr-defined]


# -- the liveness property on Ray: a seeded random mix, a supervisor kill --------------------

MODES = ("ok", "ok", "raise", "bad", "hang", "die", "stubborn")
PHASES = Deadlines(
    queued=timedelta(seconds=20), running=timedelta(seconds=4), grace=timedelta(seconds=2)
)
ATTEMPTS = 2
# Each attempt ends within queued + running + grace (26 s); the subtask within ATTEMPTS of
# them; a supervisor restart, a replica restart and the tick add at most BOUND_S.
BOUND_S = 30.0
LIMIT_S = ATTEMPTS * (20 + 4 + 2) + BOUND_S


@pytest.mark.parametrize(("seed", "agent"), [(1, Worker), (2, PairWorker)])
def test_a_random_mix_ends_every_subtask_once_in_bounded_time(
    system: System, tmp_path: Path, seed: int, agent: type[Worker]
) -> None:
    rng = random.Random(seed)
    system.resource(Inventory, name="inventory")
    system.agent(agent, name="workers", replicas=3)
    supervisor = system.supervisor
    supervisor.configure_group("workers", RestartIntensity(max_restarts=100))
    gates = [tmp_path / f"gate{i}" for i in range(10)]
    started = time.monotonic()
    retry = RetryPolicy(max_attempts=ATTEMPTS, initial_backoff=timedelta(0))
    jobs = [
        Job(key=f"k{i}", mode=rng.choice(MODES), gate=str(gates[i]), writes=1) for i in range(10)
    ]
    handles = [
        supervisor.submit(job, to="workers", expect=StrictDone, deadline=PHASES, retry=retry)
        for job in jobs
    ]
    wait_until(lambda: sum(h.status().state == "running" for h in handles) >= 2, "work runs")
    ray.kill(supervisor.actor, no_restart=False)
    time.sleep(rng.uniform(0, 3))  # not a wait: late answers come at a random moment
    for gate in gates:
        gate.touch()
    ended = {}
    for handle in handles:
        try:
            handle.result(timeout=max(1.0, LIMIT_S - (time.monotonic() - started)))
            ended[handle.id] = "done"
        except SubtaskFailedError as error:
            ended[handle.id] = f"failed:{error.reason}"
    assert time.monotonic() - started <= LIMIT_S
    statuses = {h.id: h.status() for h in handles}
    assert {sid: s.state for sid, s in statuses.items()} == {
        sid: e.split(":")[0] for sid, e in ended.items()
    }  # exactly one terminal status each, the one the handle saw
    for status in statuses.values():
        numbers = [a.number for a in status.attempts if not a.outcome.startswith("late:")]
        assert len(numbers) == len(set(numbers)), status  # unique attempt numbers
    keys = [r.idem_key for r in system.log("inventory").records()]
    assert len(keys) == len(set(keys))  # no write applied twice
    assert {k.split(":")[0] for k in keys} <= set(ended)
