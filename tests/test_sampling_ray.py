"""End-to-end sampling on a real supervisor: the chosen final outputs of a stage are
compared with the ground truth; each verdict (agree, disagree, error) is a ``sample``
event; the choice is the policy's, by subtask id."""

from __future__ import annotations

from typing import Any

import pytest
from supervised_agents import Done, Job, Worker
from waiting import wait_until

from actors import System
from policies import SamplingPolicy

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
