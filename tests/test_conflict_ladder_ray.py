"""The conflict ladder on a real Ray: a conflict settled at each of the four levels, by
a rule, a negotiation between the two agents, an arbiter agent, and a human answering
the supervisor's escalation queue, each recorded with its level."""

from __future__ import annotations

import pytest
import ray
from ownership_for_tests import Attempt, Drafts, Party
from waiting import wait_until

from actors import Ruling, System, Write
from actors._conflicts.levels import arbitration_id
from policies import (
    ConflictAction,
    ConflictLevel,
    ConflictPolicy,
    ConflictRule,
    ConflictSide,
    ResourcePolicy,
)

pytestmark = [pytest.mark.ray, pytest.mark.timeout(300)]


def ladder(**fields: object) -> ResourcePolicy:
    return ResourcePolicy(conflicts=ConflictPolicy(**fields))  # type: ignore[arg-type]


def test_a_rule_merges_and_a_resent_write_gets_the_same_outcome(system: System) -> None:
    merge = ConflictRule(action=ConflictAction.MERGE, merge_op="merge_revise")
    drafts = system.resource(Drafts, name="drafts", policy=ladder(rules=(merge,)))
    drafts.revise("d1", "first")
    stale = Write(op="revise", args=["d1", "second"], expected_version=0, key="k-stale")
    merged = drafts.write(stale)
    assert (merged.error, merged.version, merged.value) == (None, 2, 2)
    assert drafts.draft("d1")["text"] == "first+second"
    again = drafts.write(stale)
    assert (again.version, again.value, again.duplicate) == (2, 2, True)
    assert [r.op for r in system.log("drafts").audit()] == ["revise", "merge_revise"]
    (record,) = system.conflicts.records("drafts")
    assert (record.conflict_id, record.level, record.winner, record.outcome, record.version) == (
        "k-stale", 1, "challenger", "applied", 2,
    )  # fmt: skip
    summary = system.conflicts.summary()
    assert (summary.total, summary.open, summary.by_level, summary.share) == (
        1,
        0,
        {1: 1},
        {1: 1.0},
    )


def test_negotiation_then_the_arbiter_settle_what_the_rules_do_not(system: System) -> None:
    system.supervisor  # noqa: B018 -- levels 2-4 are supervised subtasks
    system.resource(Drafts, name="talks", policy=ladder(negotiation_rounds=2))
    system.resource(Drafts, name="ruled", policy=ladder(negotiation_rounds=1, arbiter="chief"))
    editorial, research, stubborn = (
        system.agent(Party, name=n) for n in ("editorial", "research", "stubborn")
    )
    system.agent(Party, name="chief")
    for resource in ("talks", "ruled"):
        assert editorial.ask(Attempt(resource=resource, draft_id="d1", text="e")).results == [
            "ok:1:1"
        ]
    # research yields in round 1: the incumbent's state stands
    lost = research.ask(Attempt(resource="talks", draft_id="d1", text="r", expected=0))
    assert lost.results == ["ConflictLostError:2"]
    # neither yields: the arbiter rules for the challenger, whose write is applied
    won = stubborn.ask(Attempt(resource="ruled", draft_id="d1", text="s", expected=0))
    assert won.results == ["ok:2:2"]
    assert system.get_resource("ruled").draft("d1")["text"] == "s"
    (talks,) = system.conflicts.records("talks")
    (ruled,) = system.conflicts.records("ruled")
    assert (talks.level, talks.winner, talks.challenger, talks.incumbent) == (
        ConflictLevel.NEGOTIATION, "incumbent", "research", "editorial",
    )  # fmt: skip
    assert (ruled.level, ruled.winner, ruled.outcome) == (
        ConflictLevel.ARBITER,
        "challenger",
        "applied",
    )
    assert "'chief' ruled" in ruled.detail
    assert system.conflicts.summary().by_level == {2: 1, 3: 1}


def test_an_arbiter_that_cannot_rule_escalates_to_a_human_across_a_resource_restart(
    system: System,
) -> None:
    system.supervisor  # noqa: B018
    system.resource(Drafts, name="drafts", policy=ladder(arbiter="dunce"))
    editorial, stubborn = (system.agent(Party, name=n) for n in ("editorial", "stubborn"))
    system.agent(Party, name="dunce")
    assert editorial.ask(Attempt(resource="drafts", draft_id="d1", text="e")).results == ["ok:1:1"]
    waiting = stubborn.call(Attempt(resource="drafts", draft_id="d1", text="s", expected=0))
    (open_,) = wait_until(
        lambda: system.conflicts.summary().open and system.supervisor.escalations(),
        "an escalation",
        120,
    )
    (record,) = system.conflicts.records("drafts")
    assert open_["subtask_id"] == arbitration_id(record.conflict_id)
    assert record.settled is None
    # the resource dies while the human thinks: the agent's handle re-sends the write with
    # its key, and the new incarnation joins the same arbitration instead of asking again
    ray.kill(ray.get_actor("resource:drafts", namespace=system.namespace), no_restart=False)
    wait_until(lambda: system.get_resource("drafts").status()["incarnation"] == 2, "a restart")
    system.supervisor.answer(
        open_["subtask_id"], Ruling(winner=ConflictSide.INCUMBENT, reason="keep")
    )
    assert ray.get(waiting, timeout=120).results == ["ConflictLostError:4"]
    (record,) = system.conflicts.records("drafts")
    assert (record.level, record.winner, record.outcome) == (
        ConflictLevel.HUMAN,
        "incumbent",
        "rejected",
    )
    assert system.get_resource("drafts").draft("d1")["text"] == "e"
    assert "a human ruled: keep" in record.detail
    assert len(system.supervisor.escalations(include_answered=True)) == 1
    assert system.conflicts.summary().by_level == {4: 1}
