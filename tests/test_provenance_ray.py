"""Provenance on a real local Ray: a model-derived figure cannot be published by its
agent, a forged VERIFIED mark sent straight to the resource actor is refused, a stage
that requires VERIFIED refuses an agent's derived input, and the verifier run by the
supervisor catches a fabricated figure and publishes a true one, its verdict kept."""

from __future__ import annotations

import random
from typing import Any

import pytest
import ray
from provenance_for_tests import Ask, Checker, Delegator, Reports, Researcher, Stats
from resources_for_tests import Leaker, Whoami

from actors import Claim, System, Verdict
from actors._resource.calls import WriteCall, pack_calls, unpack_results
from policies import Provenance
from runtime import ProvenanceError, ScriptedModel, encode

pytestmark = [pytest.mark.ray, pytest.mark.timeout(300)]


def forged_publish(token: str, mark: Provenance) -> WriteCall:
    return WriteCall(
        "publish", encode([["q3", 99.0], {}]), "checker", 1, f"forged-{random.random()}",
        "f" * 32, None, token, provenance=mark,
    )  # fmt: skip


def submit(actor: Any, calls: list[WriteCall]) -> list[Any]:
    return unpack_results(ray.get(actor.submit.remote(pack_calls(calls)), timeout=60))


def test_a_forged_verified_mark_sent_straight_to_the_actor_is_refused(system: System) -> None:
    reports = system.resource(Reports, name="reports")
    leaked = system.agent(Leaker, name="mallory").ask(Whoami(), timeout=60)
    actor = ray.get_actor("resource:reports", namespace=system.namespace)
    results = submit(actor, [forged_publish(leaked.token, mark) for mark in Provenance])
    assert [type(r.error) for r in results] == [ProvenanceError] * len(Provenance)
    assert {(r.error.required, r.error.actual) for r in results} == {
        ("verified", "unverified_agent")
    }
    assert reports.read("get", "published:q3").value is None
    rejections = system.log("reports").rejections()
    assert [(r.reason, r.op, r.trace_id) for r in rejections] == [
        ("provenance", "publish", "f" * 32)
    ] * len(Provenance)


def test_derived_marks_and_the_verifier_on_real_actors(system: System) -> None:
    reports = system.resource(Reports, name="reports")
    stats = system.resource(Stats, name="stats")
    stats.set("q3", 4.2)  # the primary source, written by the system
    fabricated = ScriptedModel(default_reply="7.3")
    drafted = system.agent(Researcher, name="research", model=fabricated).ask(
        Ask(key="q3"), timeout=120
    )
    assert (drafted.figure, drafted.published, drafted.derived) == (7.3, False, "unverified_agent")
    assert "reports:publish: requires provenance verified" in drafted.refusal
    drafts = [(r.op, r.writer, r.provenance) for r in system.log("reports").records()]
    assert drafts == [("draft", "research", "unverified_agent")]
    assert reports.read("get", "draft:q3").provenance is Provenance.UNVERIFIED_AGENT

    system.agent(Checker, name="checker")
    caught = system.supervisor.verify(
        "publish", [Claim(name="q3", value=drafted.figure, claimed_by="research")],
        verifier="checker",
    ).result(timeout=120)  # fmt: skip
    assert isinstance(caught, Verdict)
    assert (caught.verified, caught.rejected) == (False, ["q3"])
    assert "claimed 7.3, the source has 4.2" in caught.detail
    assert reports.read("get", "published:q3").value is None

    handle = system.supervisor.verify("publish", [Claim(name="q3", value=4.2)], verifier="checker")
    passed = handle.result(timeout=120)
    assert (passed.verified, passed.checked) == (True, ["q3"])
    assert reports.read("get", "published:q3").value == 4.2
    published = [r for r in system.log("reports").records() if r.op == "publish"]
    assert [(r.writer, r.provenance) for r in published] == [("checker", "verified")]
    stages = [(h["stage"], h["status"]) for h in system.supervisor.handoffs()]
    assert stages == [("verify:publish", "done"), ("verify:publish", "done")]

    relayed = system.agent(Delegator, name="relay").ask(Ask(key="q3"), timeout=120)
    assert (relayed.figure, relayed.published) == (7.3, False)
    assert "stage 'research': requires provenance verified" in relayed.refusal
    assert relayed.derived == "unverified_agent"  # it read the draft
