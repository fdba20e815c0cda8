"""Stage rules on the supervisor's plain class (fake clock, fake agents, real SQLite): a
stage's provenance requirement holds against specs sent straight to the actor, an agent's
derived mark is believed only up to its ceiling, and a stage's verifier runs on every
output before it is released, a rejection, a crash or a timeout of the verifier being a
typed failure that the stage's plan follows."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import test_supervisor_core as kit
from pydantic import BaseModel
from waiting import settle

from actors import Claim, Verdict, VerifyClaims
from actors._agent.derived import Produced
from actors._supervisor.spec import StageRule
from actors._supervisor.store import SubtaskStore
from policies import Deadlines, Provenance, RetryPolicy
from runtime import ConfigurationError, Envelope, ProvenanceError, new_task_id
from runtime.testing import FakeClock

GOOD = kit.GOOD
VERIFIED_ONLY = StageRule(requires=Provenance.VERIFIED)
CHECKED = StageRule(verifier="v", verify_within=timedelta(seconds=5))
ONCE = RetryPolicy(max_attempts=1)


class Figure(BaseModel):
    name: str
    value: float


def from_agent(mark: Provenance, **kwargs: object) -> kit.SubtaskSpec:
    """A spec as an agent could forge it: its own name as sender, any mark."""
    s = kit.spec(**kwargs)  # type: ignore[arg-type]
    return replace(s, envelope=replace(s.envelope, sender="mallory", provenance=mark))


def test_a_stage_requirement_refuses_forged_specs_sent_straight_to_the_actor(
    tmp_path: Path,
) -> None:
    async def body() -> None:
        agents = kit.FakeAgents({"r": 1})
        core = kit.make_core(tmp_path, agents, FakeClock())
        core.declare_stage("publish", None, VERIFIED_ONLY)
        for mark in Provenance:  # a forged mark gains nothing: an agent is believed at the bottom
            forged = from_agent(mark, stage="publish")
            with pytest.raises(ProvenanceError) as refused:
                await core.run(forged)
            assert (refused.value.required, refused.value.actual) == (
                "verified",
                "unverified_agent",
            )
            assert core.store.subtask(forged.subtask_id) is None  # nothing submitted
        assert agents.calls == []
        driver = kit.spec(stage="publish")  # the driver's SYSTEM input passes
        task = await kit.started(core, driver)
        agents.calls[0].future.set_result(GOOD)
        await settle()
        assert task.result().unwrap() == GOOD

    kit.run(body)


def test_a_submit_may_tighten_the_stage_requirement_never_loosen_it(tmp_path: Path) -> None:
    async def body() -> None:
        core = kit.make_core(tmp_path, kit.FakeAgents({"r": 1}), FakeClock())
        core.declare_stage("review", None, StageRule(requires=Provenance.TOOL))
        tool = Envelope(task_id=new_task_id(), provenance=Provenance.TOOL)
        loose = replace(kit.spec(stage="review"), envelope=tool)
        await kit.started(core, loose)  # TOOL meets the stage's TOOL
        tighter = replace(kit.spec(stage="review"), envelope=replace(tool, task_id=new_task_id()))
        tighter = replace(tighter, requires=Provenance.VERIFIED)
        with pytest.raises(ProvenanceError, match="requires provenance verified"):
            await core.run(tighter)
        agent_input = from_agent(Provenance.UNVERIFIED_AGENT, stage="review")
        with pytest.raises(ProvenanceError, match="requires provenance tool"):
            await core.run(replace(agent_input, requires=None))  # no requires: still the stage's

    kit.run(body)


@pytest.mark.parametrize(
    ("group", "claimed", "believed"),
    [
        ("r", Provenance.HUMAN, Provenance.UNVERIFIED_AGENT),  # an ordinary agent
        ("v", Provenance.HUMAN, Provenance.VERIFIED),  # a declared verifier: capped
        ("v", Provenance.TOOL, Provenance.TOOL),  # believed as low as it says
        ("v", "trusted-by-me", Provenance.UNVERIFIED_AGENT),  # malformed: the bottom mark
    ],
)
def test_an_output_s_mark_is_believed_up_to_its_agent_s_ceiling(
    tmp_path: Path, group: str, claimed: Provenance | str, believed: Provenance
) -> None:
    async def body() -> None:
        agents = kit.FakeAgents({"r": 1, "v": 1})
        core = kit.make_core(tmp_path, agents, FakeClock())
        core.declare_stage("draft", None, StageRule(verifier="v"))
        task = await kit.started(core, kit.spec(to=group))
        produced = Produced(GOOD, claimed, ("tool:search",))  # type: ignore[arg-type]
        agents.calls[0].future.set_result(produced)
        await settle()
        outcome = task.result()
        assert (outcome.output, outcome.provenance) == (GOOD, believed)
        stored = await core.wait(outcome.subtask_id)  # from storage
        assert stored.provenance is believed

    kit.run(body)


def test_a_verified_output_is_released_as_verified(tmp_path: Path) -> None:
    async def body() -> None:
        agents = kit.FakeAgents({"r": 1, "v": 1})
        core = kit.make_core(tmp_path, agents, FakeClock())
        core.declare_stage("draft", None, CHECKED)
        s = kit.spec(stage="draft")
        task = await kit.started(core, s)
        agents.calls[0].future.set_result(Produced(GOOD, Provenance.UNVERIFIED_AGENT))
        await settle()
        assert not task.done()  # held while the verifier checks it
        check = agents.calls[1]
        assert check.replica == "v:0"
        assert check.envelope.task_id == f"{s.subtask_id}.verify.1"
        assert check.message == VerifyClaims(
            stage="draft",
            claims=[
                Claim(name="summary", value="ok", claimed_by="r:0"),
                Claim(name="sources", value=["a"], claimed_by="r:0"),
            ],
        )
        check.future.set_result(Verdict(stage="draft", verified=True, checked=["summary"]))
        await settle()
        assert (task.result().output, task.result().provenance) == (GOOD, Provenance.VERIFIED)
        stages = [(h["stage"], h["status"]) for h in core.store.handoffs()]
        assert sorted(stages, key=str) == [("draft", "done"), ("verify:draft", "done")]

    kit.run(body)


def test_a_rejected_verdict_fails_the_attempt_and_the_stage_retries(tmp_path: Path) -> None:
    async def body() -> None:
        agents = kit.FakeAgents({"r": 2, "v": 1})
        core = kit.make_core(tmp_path, agents, FakeClock())
        core.declare_stage("draft", None, CHECKED)
        task = await kit.started(core, kit.spec(stage="draft"))
        agents.calls[0].future.set_result(GOOD)
        await settle()
        verdict = Verdict(stage="draft", verified=False, rejected=["summary"], detail="made up")
        agents.calls[1].future.set_result(verdict)
        await settle()
        assert agents.calls[2].replica.startswith("r:")  # the stage's plan: retried
        agents.calls[2].future.set_result(GOOD)
        await settle()
        agents.calls[3].future.set_result(Verdict(stage="draft", verified=True))
        await settle()
        outcome = task.result()
        assert outcome.provenance is Provenance.VERIFIED
        history = core.status_of(outcome.subtask_id).attempts
        assert [(a.outcome, a.error_type) for a in history] == [
            ("unverified", "rejected"),
            ("succeeded", None),
        ]
        assert "rejected: made up" in history[0].detail

    kit.run(body)


def test_a_crashing_verifier_is_a_typed_failure_never_a_release(tmp_path: Path) -> None:
    async def body() -> None:
        agents = kit.FakeAgents({"r": 1, "v": 1})
        core = kit.make_core(tmp_path, agents, FakeClock())
        core.declare_stage("draft", None, CHECKED)
        task = await kit.started(core, kit.spec(stage="draft", retry=ONCE))
        agents.calls[0].future.set_result(GOOD)
        await settle()
        agents.calls[1].future.set_exception(ValueError("verifier blew up"))
        await settle()
        error = kit.failure(task)
        assert (error.reason, error.attempts[0].error_type) == ("unverified", "verifier")
        assert "verifier failed (exception" in error.detail and "blew up" in error.detail
        assert len(agents.calls) == 2  # the verification is not retried on its own

    kit.run(body)


def test_a_verifier_past_its_deadline_fails_the_attempt(tmp_path: Path) -> None:
    async def body() -> None:
        agents = kit.FakeAgents({"r": 1, "v": 1})
        clock = FakeClock()
        core = kit.make_core(tmp_path, agents, clock)
        core.declare_stage("draft", None, CHECKED)
        task = await kit.started(core, kit.spec(stage="draft", retry=ONCE))
        agents.calls[0].future.set_result(GOOD)
        await settle()
        clock.advance(6)  # the verification's 5 s pass, the stage's own deadline does not
        core.tick()
        await settle()
        error = kit.failure(task)
        assert error.reason == "unverified" and "verifier failed (deadline" in error.detail
        assert agents.calls[1].future.cancelled()  # the verifier's attempt was stopped

    kit.run(body)


def test_the_stage_s_own_deadline_keeps_running_while_it_is_verified(tmp_path: Path) -> None:
    async def body() -> None:
        agents = kit.FakeAgents({"r": 1, "v": 1})
        clock = FakeClock()
        core = kit.make_core(tmp_path, agents, clock)
        core.declare_stage("draft", None, StageRule(verifier="v"))  # 60 s to verify
        deadline = Deadlines(running=timedelta(seconds=3))
        s = kit.spec(stage="draft", retry=ONCE, deadline=deadline)
        task = await kit.started(core, s)
        agents.calls[0].future.set_result(GOOD)
        await settle()
        clock.advance(4)
        core.tick()
        await settle()
        assert kit.failure(task).reason == "deadline"
        agents.calls[1].future.set_result(Verdict(stage="draft", verified=True))
        await settle()
        assert (await core.wait(s.subtask_id)).error is not None  # never released after all

    kit.run(body)


@pytest.mark.parametrize(
    "bad",
    [
        {"requires": "verified"},
        {"verifier": ""},
        {"verifier": 3},
        {"verifier": "v", "verify_within": timedelta(0)},
    ],
)
def test_a_malformed_stage_rule_is_a_configuration_error(bad: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        StageRule(**bad)


def test_a_stage_s_rule_holds_after_the_supervisor_restarts(tmp_path: Path) -> None:
    async def body() -> None:
        agents = kit.FakeAgents({"r": 1, "v": 1})
        first = SubtaskStore(tmp_path)
        first.settings.begin("start-1", None)
        kit.SupervisorCore(first, agents, clock=FakeClock()).declare_stage(
            "publish", None, StageRule(requires=Provenance.VERIFIED, verifier="v")
        )
        first.close()
        store = SubtaskStore(tmp_path)  # the restarted actor: same start, same storage
        again = kit.SupervisorCore(store, agents, clock=FakeClock())
        again.apply(store.settings.begin("start-1", None))
        with pytest.raises(ProvenanceError):
            await again.run(from_agent(Provenance.HUMAN, stage="publish"))
        task = await kit.started(again, kit.spec(stage="publish"))
        agents.calls[0].future.set_result(GOOD)
        await settle()
        assert agents.calls[1].replica == "v:0"  # its output goes to the verifier first
        agents.calls[1].future.set_result(Verdict(stage="publish", verified=True))
        await settle()
        assert task.result().provenance is Provenance.VERIFIED

    kit.run(body)
