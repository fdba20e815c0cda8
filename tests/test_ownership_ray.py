"""Ownership on a real Ray: the owner's replicas write, forged and stale writers do not,
ownership survives a resource restart and the kill switch, and a transfer racing writes
splits them cleanly at the version it took effect."""

from __future__ import annotations

import pytest
import ray
from ownership_for_tests import Claim, Drafts, Editor, HandOff, Revise
from waiting import wait_until

from actors import AgentGroup, System
from actors._resource.calls import unpack_results
from actors._resource.ownership import OwnershipChange, pack_change
from runtime import InvalidArgumentError, NotOwnerError, UnauthorizedWriterError, encode

WRITERS = ["editorial", "research", "publishing", "system"]
pytestmark = [pytest.mark.ray, pytest.mark.timeout(240)]


def start(system: System, *agents: str) -> dict[str, AgentGroup]:
    system.resource(Drafts, name="drafts", writers=WRITERS)
    return {
        name: system.agent(Editor, name=name, replicas=2 if name == "editorial" else 1)
        for name in agents
    }


def test_only_the_owners_replicas_write_and_the_refusals_are_logged(system: System) -> None:
    editorial, research = start(system, "editorial", "research").values()
    record = system.ownership.own("drafts:d1", by="editorial")
    assert (record.owner, record.by) == ("editorial", "system")
    both = [editorial.call(Revise(draft_id="d1", text="e"), replica=i) for i in (0, 1)]
    assert sorted(r for o in ray.get(both) for r in o.results) == ["ok:1", "ok:2"]
    assert research.ask(Revise(draft_id="d1", text="half")).results == ["NotOwnerError"]
    with pytest.raises(NotOwnerError):  # the driver is not the owner either
        system.get_resource("drafts").revise("d1", "system text")
    refusals = [r for r in system.log("drafts").rejections() if r.reason == "not_owner"]
    assert [r.writer for r in refusals] == ["research", "system"]
    assert all("owned by 'editorial'" in r.detail for r in refusals)
    assert system.get_resource("drafts").draft("d1")["text"].startswith("e#")


def test_a_forged_writer_name_does_not_pass(system: System) -> None:
    start(system)
    system.ownership.own("drafts:d1", by="editorial")
    actor = ray.get_actor("resource:drafts", namespace=system.namespace)
    fields = ["revise", encode([["d1", "forged"], {}]), "editorial", 1, "k1", "a" * 32, None]
    forged = [[*fields, "", [], b"", "unverified_agent"]]
    blob = ray.get(actor.submit.remote(encode(forged)))
    (result,) = unpack_results(blob)
    assert isinstance(result.error, UnauthorizedWriterError)
    change = OwnershipChange("transfer", "d1", "research", "", "k2", "editorial", 1, "", "", "")
    with pytest.raises(UnauthorizedWriterError):
        ray.get(actor.change_owner.remote(pack_change(change)))
    for bad in (b"junk", "not bytes", encode(["own"])):
        with pytest.raises(InvalidArgumentError):
            ray.get(actor.change_owner.remote(bad))
    for bad_call in (
        actor.owner.remote(["d1"]), actor.ownership_history.remote("d1", 0),
        actor.conflicts.remote("ten"),
    ):  # fmt: skip
        with pytest.raises(InvalidArgumentError):
            ray.get(bad_call)
    assert system.ownership.owner("drafts:d1") == "editorial"


def test_ownership_survives_a_resource_kill_and_the_kill_switch(system: System) -> None:
    (research,) = start(system, "research").values()
    system.ownership.own("drafts:d1", by="editorial")
    ray.kill(ray.get_actor("resource:drafts", namespace=system.namespace), no_restart=False)
    assert system.ownership.owner("drafts:d1") == "editorial"
    assert research.ask(Revise(draft_id="d1", text="x")).results == ["NotOwnerError"]
    system.kill("editorial")
    assert system.ownership.owner("drafts:d1") == "editorial"  # kept by the agent's name
    assert research.ask(Revise(draft_id="d1", text="x")).results == ["NotOwnerError"]
    restarted = system.agent(Editor, name="editorial")  # a new epoch, a new token
    assert restarted.ask(Revise(draft_id="d1", text="back")).results == ["ok:1"]


def test_the_owner_hands_over_from_inside_its_handler(system: System) -> None:
    editorial, publishing = start(system, "editorial", "publishing").values()
    assert editorial.ask(Claim(entity="drafts:d1")).results == ["ok:editorial", "owner:editorial"]
    assert publishing.ask(Claim(entity="drafts:d1")).results == ["NotOwnerError"]
    assert publishing.ask(HandOff(entity="drafts:d1", to="publishing")).results == ["NotOwnerError"]
    (moved,) = editorial.ask(HandOff(entity="drafts:d1", to="publishing", note="rev 1")).results
    assert moved.startswith("ok:publishing:t-")
    assert publishing.ask(Revise(draft_id="d1", text="p")).results == ["ok:1"]
    assert editorial.ask(Revise(draft_id="d1", text="e")).results == ["NotOwnerError"]
    history = system.ownership.history("drafts:d1")
    assert [(h.action, h.previous, h.owner, h.by, h.handoff) for h in history] == [
        ("own", "", "editorial", "editorial", ""),
        ("transfer", "editorial", "publishing", "editorial", "rev 1"),
    ]
    assert history[1].task_id == moved.split(":")[2]


def test_a_transfer_racing_writes_splits_them_at_its_version(system: System) -> None:
    (editorial,) = start(system, "editorial").values()
    system.ownership.own("drafts:d1", by="editorial")
    writing = [editorial.call(Revise(draft_id="d1", text="e", count=15), replica=i) for i in (0, 1)]
    wait_until(lambda: system.get_resource("drafts").draft("d1"), "a first revision")
    moved = system.ownership.transfer("drafts:d1", to="publishing", handoff="race")
    outcomes = [r for o in ray.get(writing) for r in o.results]
    applied = [r for r in outcomes if r.startswith("ok:")]
    assert set(outcomes) - set(applied) <= {"NotOwnerError"}
    records = [r for r in system.log("drafts").audit() if r.op == "revise"]
    assert len(records) == len(applied)
    assert all(r.writer == "editorial" and r.version <= moved.version for r in records)
    assert system.get_resource("drafts").draft("d1")["rev"] == len(applied)
