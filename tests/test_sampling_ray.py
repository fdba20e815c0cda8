"""End-to-end sampling on a real supervisor: the chosen final outputs of a stage are
compared with the ground truth; each verdict (agree, disagree, error) is a ``sample``
event; the choice is the policy's, by subtask id."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
import ray
from supervised_agents import Done, Job, Worker
from waiting import wait_until

from actors import System
from policies import SamplingPolicy
from runtime import InvalidArgumentError

pytestmark = pytest.mark.ray


def truth(job: Job) -> dict[str, Any]:
    """What a worker should answer: its key back (it has one replica, replica 0)."""
    if job.key.startswith("err"):
        raise LookupError(f"no ground truth for {job.key}")
    if job.key.startswith("wrong"):
        return {"key": job.key.upper(), "replica": 0}
    return {"key": job.key, "replica": 0}


@pytest.mark.timeout(240)
def test_every_chosen_output_gets_its_verdict(system: System) -> None:
    system.agent(Worker, name="workers")
    system.supervisor.sample("workers", truth, policy=SamplingPolicy(rate=1.0))
    for key in ("good", "wrong", "err"):
        system.supervisor.submit(Job(key=key), to="workers", expect=Done).result(timeout=120)
    events = wait_until(
        lambda: len(found := system.supervisor.events("sample")) == 3 and found,
        "three sample events",
        limit=120,
    )
    verdicts = {e["detail"]["verdict"] for e in events}
    assert verdicts == {"agree", "disagree", "error"}
    wrong = next(e for e in events if e["detail"]["verdict"] == "disagree")
    assert "WRONG" in wrong["detail"]["detail"]
    assert {e["detail"]["stage"] for e in events} == {"workers"}


@pytest.mark.timeout(240)
def test_only_the_chosen_subtasks_are_sampled(system: System) -> None:
    system.agent(Worker, name="workers")
    policy = SamplingPolicy(rate=0.5, salt="s")
    system.supervisor.sample("workers", truth, policy=policy)
    handles = [
        system.supervisor.submit(Job(key=f"k{i}"), to="workers", expect=Done) for i in range(12)
    ]
    for handle in handles:
        handle.result(timeout=120)
    chosen = {h.id for h in handles if policy.chosen(h.id)}
    sampled = wait_until(
        lambda: {e["subject"] for e in system.supervisor.events("sample")} == chosen and chosen,
        f"samples of exactly {len(chosen)} chosen subtasks",
        limit=120,
    )
    assert sampled == chosen


def slow_truth(job: Job) -> dict[str, Any]:
    if job.key == "slow":
        time.sleep(5)  # past the policy's timeout: the verdict is an error
    return {"key": job.key, "replica": 0}


@pytest.mark.timeout(240)
def test_a_ground_truth_past_its_timeout_is_an_error_and_holds_nothing_up(
    system: System,
) -> None:
    system.agent(Worker, name="workers")
    policy = SamplingPolicy(rate=1.0, timeout=timedelta(milliseconds=300))
    system.supervisor.sample("workers", slow_truth, policy=policy)
    handles = [
        system.supervisor.submit(Job(key=k), to="workers", expect=Done) for k in ("slow", "a")
    ]
    assert [h.result(timeout=120).key for h in handles] == ["slow", "a"]
    events = wait_until(
        lambda: len(found := system.supervisor.events("sample")) == 2 and found,
        "two sample events",
        limit=120,
    )
    verdicts = {e["subject"]: e["detail"]["verdict"] for e in events}
    assert verdicts == {handles[0].id: "error", handles[1].id: "agree"}
    slow = next(e for e in events if e["subject"] == handles[0].id)
    assert slow["detail"]["detail"].startswith("TimeoutError")


FORGED = [
    ("", truth, None, SamplingPolicy()),
    (42, truth, None, SamplingPolicy()),
    ("workers", "not callable", None, SamplingPolicy()),
    ("workers", truth, "not callable", SamplingPolicy()),
    ("workers", truth, None, {"rate": 1.0}),
]


@pytest.mark.timeout(120)
def test_forged_declarations_sent_to_the_actor_are_refused(system: System) -> None:
    actor = system.supervisor.actor
    for stage, judge, agree, policy in FORGED:
        with pytest.raises(InvalidArgumentError):
            ray.get(actor.declare_sampler.remote(stage, judge, agree, policy), timeout=60)
    assert ray.get(actor.audit.remote(), timeout=60)["samplers"] == {}
