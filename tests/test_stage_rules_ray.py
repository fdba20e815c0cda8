"""Stage rules on a real local Ray: a stage's verifier runs on every output before it is
released (a fabricated figure is rejected, the retry's true one released as VERIFIED), the
output's mark reaches the driver and a downstream stage requiring VERIFIED refuses an
unverified one, a forged spec sent straight to the supervisor actor is refused, an agent
asks a verifier itself, and a tool call marks what a handler makes TOOL."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
import ray
from provenance_for_tests import (
    Ask,
    AsksTheVerifier,
    Auditor,
    Drafter,
    Fabricates,
    Growth,
    Publisher,
    Stats,
    UsesATool,
)

from actors import System
from actors._supervisor.spec import make_spec
from policies import Provenance, RetryPolicy
from runtime import Envelope, ProvenanceError, ScriptedModel, new_task_id

pytestmark = [pytest.mark.ray, pytest.mark.timeout(300)]

TWICE = RetryPolicy(max_attempts=2, initial_backoff=timedelta(0), max_backoff=timedelta(0))


def test_a_stage_s_verifier_holds_every_output_and_marks_what_it_passed(system: System) -> None:
    system.resource(Stats, name="stats").set("q3", 4.2)  # the primary source
    system.agent(Drafter, name="drafter", model=ScriptedModel(default_reply=Fabricates()))
    system.agent(Auditor, name="auditor")
    system.agent(Publisher, name="publisher")
    supervisor = system.supervisor
    supervisor.declare_stage("draft", verifier="auditor", verify_within=timedelta(seconds=60))
    supervisor.declare_stage("publish", requires=Provenance.VERIFIED)

    drafted = supervisor.submit(Ask(key="q3"), to="drafter", expect=Growth, stage="draft",
                                retry=TWICE)  # fmt: skip
    assert drafted.result(timeout=120) == Growth(q3=4.2)  # 7.3 never left the stage
    assert drafted.provenance() is Provenance.VERIFIED
    history = drafted.status().attempts
    assert [(a.outcome, a.error_type) for a in history] == [
        ("unverified", "rejected"),
        ("succeeded", None),
    ]
    assert "q3: claimed 7.3, the source has 4.2" in history[0].detail
    verifications = [h for h in supervisor.handoffs() if h["stage"] == "verify:draft"]
    assert [h["status"] for h in verifications] == ["done", "done"]

    rough = supervisor.submit(Ask(key="q3"), to="drafter", expect=Growth, stage="rough")
    assert rough.result(timeout=120) == Growth(q3=4.2)
    assert rough.provenance() is Provenance.UNVERIFIED_AGENT  # nobody checked it

    def publish(mark: Provenance) -> Growth:
        env = Envelope(task_id=new_task_id(), provenance=mark)
        handle = supervisor.submit(Growth(q3=4.2), to="publisher", stage="publish", envelope=env)
        return handle.result(timeout=120)  # type: ignore[return-value]

    with pytest.raises(ProvenanceError, match="stage 'publish': requires provenance verified"):
        publish(rough.provenance())
    assert publish(drafted.provenance()) == Growth(q3=4.2)


def test_a_forged_spec_sent_straight_to_the_supervisor_is_refused(system: System) -> None:
    system.agent(Publisher, name="publisher")
    system.supervisor.declare_stage("publish", requires=Provenance.VERIFIED)
    actor = ray.get_actor("supervisor", namespace=system.namespace)
    for mark in Provenance:
        env = Envelope(task_id=new_task_id(), sender="mallory", provenance=mark)
        spec = make_spec(Growth(q3=99.0), to="publisher", expect=Growth, deadline=None,
                         retry=None, on_failure=None, envelope=env, stage="publish")  # fmt: skip
        with pytest.raises(ProvenanceError) as refused:
            ray.get(actor.run.remote(replace(spec, requires=None)), timeout=60)
        assert refused.value.actual == "unverified_agent"
        status = ray.get(actor.status.remote(spec.subtask_id), timeout=60)
        assert status.state == "unknown"  # nothing was stored or run
    assert system.supervisor.handoffs() == []


def test_an_agent_asks_a_verifier_and_a_tool_call_marks_its_output(system: System) -> None:
    system.resource(Stats, name="stats").set("q3", 4.2)
    system.agent(Auditor, name="auditor")
    assert system.supervisor is not None  # started on first use
    asked = system.agent(AsksTheVerifier, name="asker").ask(Ask(key="q3"), timeout=120)
    assert (asked.verified, asked.detail) == (False, "q3: claimed 7.3, the source has 4.2")
    assert asked.derived == "unverified_agent"  # it used an unverified verdict's subtask
    used = system.agent(UsesATool, name="tooler").ask(Ask(key="q3"), timeout=120)
    assert (used.detail, used.derived) == ("system", "tool")
