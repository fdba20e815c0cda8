"""The conflict ladder as plain code: the rules, a negotiation round, the order of the
levels, and what each verdict applies; policies from code and from YAML."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ladder_script import Script

from actors._conflicts.ladder import Conflict, Ladder, Settlement
from actors._conflicts.messages import ConflictSummary
from policies import (
    ConflictAction,
    ConflictLevel,
    ConflictPolicy,
    ConflictRule,
    ConflictSide,
    PolicyValueError,
    ResourcePolicy,
    UnknownPolicyKeyError,
    load_policies,
    negotiation_verdict,
    rule_verdicts,
)
from runtime import NotOwnerError

CHALLENGER, INCUMBENT = ConflictSide.CHALLENGER, ConflictSide.INCUMBENT
CONFLICT = Conflict("k1", "drafts", "revise", "research", "editorial", 3, 5, "a" * 32, [], {})


def climb(policy: ConflictPolicy, script: Script, conflict: Conflict = CONFLICT) -> Settlement:
    return asyncio.run(Ladder(policy, script, script.apply).climb(conflict))


def test_rules_are_tried_in_order_and_priority_falls_through_when_unranked() -> None:
    policy = ConflictPolicy(
        rules=(
            ConflictRule(action=ConflictAction.PRIORITY),
            ConflictRule(action=ConflictAction.REJECT, op="publish"),
            ConflictRule(action=ConflictAction.OVERWRITE),
        ),
        priority=("editorial",),
    )
    assert [v.winner for v in rule_verdicts(policy, "revise", "editorial", "research")] == [
        CHALLENGER
    ]
    assert [v.winner for v in rule_verdicts(policy, "revise", "research", "editorial")] == [
        INCUMBENT
    ]
    assert [v.winner for v in rule_verdicts(policy, "publish", "a", "b")] == [INCUMBENT]
    assert [v.winner for v in rule_verdicts(policy, "revise", "a", "b")] == [CHALLENGER]
    assert rule_verdicts(ConflictPolicy(), "revise", "a", "b") == []


def test_a_negotiation_round_is_won_by_who_does_not_yield() -> None:
    assert negotiation_verdict(False, False) is None
    assert negotiation_verdict(True, False).winner is INCUMBENT  # type: ignore[union-attr]
    assert negotiation_verdict(False, True).winner is CHALLENGER  # type: ignore[union-attr]
    assert negotiation_verdict(True, True).winner is INCUMBENT  # type: ignore[union-attr]


def test_a_merge_that_conflicts_again_falls_to_the_next_rule() -> None:
    policy = ConflictPolicy(
        rules=(
            ConflictRule(action=ConflictAction.MERGE, merge_op="merge_revise"),
            ConflictRule(action=ConflictAction.REJECT),
        )
    )
    merged = climb(policy, Script())
    assert (merged.level, merged.outcome, merged.result and merged.result.version) == (
        ConflictLevel.RULES, "applied", 7,
    )  # fmt: skip
    script = Script(merges_conflict=True)
    rejected = climb(policy, script)
    assert (rejected.level, rejected.winner, rejected.outcome) == (
        ConflictLevel.RULES, INCUMBENT, "rejected",
    )  # fmt: skip
    assert script.applied == ["merge_revise"]


def test_each_level_settles_when_the_ones_below_cannot() -> None:
    full = ConflictPolicy(negotiation_rounds=2, arbiter="chief")
    negotiated = climb(full, Script(rounds=[(False, False), (False, True)]))
    assert (negotiated.level, negotiated.winner, negotiated.outcome) == (
        ConflictLevel.NEGOTIATION, CHALLENGER, "applied",
    )  # fmt: skip
    script = Script(rounds=[None], ruling=(INCUMBENT, ConflictLevel.ARBITER))
    ruled = climb(full, script)
    assert (ruled.level, ruled.outcome, script.asked) == (
        ConflictLevel.ARBITER, "rejected", ["round 1", "arbiter"],
    )  # fmt: skip
    human = climb(full, Script(ruling=(CHALLENGER, ConflictLevel.HUMAN)))
    assert (human.level, human.outcome) == (ConflictLevel.HUMAN, "applied")
    nobody = climb(full, Script())
    assert (nobody.level, nobody.winner, nobody.outcome) == (ConflictLevel.NONE, None, "rejected")


def test_no_negotiation_with_oneself_and_a_refused_winning_write_is_failed() -> None:
    script = Script(rounds=[(False, True)], apply_error=NotOwnerError("drafts", "d1", "x", "y"))
    alone = Conflict("k", "drafts", "revise", "a", "a", 1, 2, "a" * 32, [], {})
    overwrite = (ConflictRule(action=ConflictAction.OVERWRITE),)
    settled = climb(ConflictPolicy(negotiation_rounds=1, rules=overwrite), script, alone)
    assert (settled.level, settled.outcome, script.asked) == (ConflictLevel.RULES, "failed", [])
    assert isinstance(settled.result and settled.result.error, NotOwnerError)


RULES = st.lists(
    st.sampled_from([
        ConflictRule(action=ConflictAction.MERGE, merge_op="merge"),
        ConflictRule(action=ConflictAction.PRIORITY),
        ConflictRule(action=ConflictAction.REJECT, op="publish"),
        ConflictRule(action=ConflictAction.OVERWRITE, op="revise"),
    ]),
    max_size=3,
)  # fmt: skip
ROUNDS = st.lists(st.one_of(st.none(), st.tuples(st.booleans(), st.booleans())), max_size=4)
RULING = st.one_of(
    st.none(),
    st.tuples(
        st.sampled_from(list(ConflictSide)),
        st.sampled_from([ConflictLevel.ARBITER, ConflictLevel.HUMAN]),
    ),
)


@settings(max_examples=300, deadline=None)
@given(
    rules=RULES, rounds_allowed=st.integers(0, 3), arbiter=st.booleans(), rounds=ROUNDS,
    ruling=RULING, merges_conflict=st.booleans(), op=st.sampled_from(["revise", "publish"]),
    parties=st.sampled_from([("a", "b"), ("b", "a"), ("a", "a"), ("a", "")]),
)  # fmt: skip
def test_the_ladder_settles_once_at_the_lowest_level_that_can(
    rules: list[ConflictRule], rounds_allowed: int, arbiter: bool, rounds: list[Any],
    ruling: Any, merges_conflict: bool, op: str, parties: tuple[str, str],
) -> None:  # fmt: skip
    policy = ConflictPolicy(
        rules=tuple(rules), priority=("a", "b"), negotiation_rounds=rounds_allowed,
        arbiter="chief" if arbiter else None,
    )  # fmt: skip
    script = Script(rounds=rounds, ruling=ruling, merges_conflict=merges_conflict)
    conflict = Conflict("k", "r", op, parties[0], parties[1], 1, 2, "a" * 32, [], {})
    settled = climb(policy, script, conflict)
    succeeded = [m for m in script.applied if not (m is not None and merges_conflict)]
    # the challenger's write (or a merge) commits once, exactly when the verdict is for it
    assert len(succeeded) == (1 if settled.outcome == "applied" else 0)
    assert (settled.outcome == "applied") == (settled.winner is CHALLENGER)
    # a level is reached only when every level below it had no verdict
    rules_decide = any(
        v.merge_op is None or not merges_conflict
        for v in rule_verdicts(policy, op, parties[0], parties[1])
    )
    assert (settled.level is ConflictLevel.RULES) == rules_decide
    if settled.level > ConflictLevel.RULES:
        assert "arbiter" not in script.asked or settled.level >= ConflictLevel.ARBITER
    if settled.level in (ConflictLevel.ARBITER, ConflictLevel.HUMAN):
        assert ruling is not None and settled.level is ruling[1] and arbiter
    if settled.level is ConflictLevel.NEGOTIATION:
        assert rounds_allowed > 0 and parties[1] not in ("", parties[0])
    if settled.level is ConflictLevel.NONE:
        assert settled.outcome == "rejected" and (ruling is None or not arbiter)
    assert len([a for a in script.asked if a.startswith("round")]) <= rounds_allowed


def test_the_summary_shares_settled_conflicts_per_level() -> None:
    summary = ConflictSummary.of([(1, "applied", 6), (1, "rejected", 3), (3, "applied", 1),
                                  (None, None, 2)])  # fmt: skip
    assert (summary.total, summary.open, summary.by_level) == (12, 2, {1: 9, 3: 1})
    assert summary.share == {1: 0.9, 3: 0.1}
    assert summary.outcomes == {"applied": 7, "rejected": 3}


def test_policies_check_their_values() -> None:
    with pytest.raises(ValueError, match="merge_op"):
        ConflictRule(action=ConflictAction.MERGE)
    with pytest.raises(ValueError, match="merge_op"):
        ConflictRule(action=ConflictAction.REJECT, merge_op="m")
    with pytest.raises(ValueError, match="negative"):
        ConflictPolicy(negotiation_rounds=-1)
    with pytest.raises(ValueError, match="twice"):
        ConflictPolicy(priority=("a", "a"))
    with pytest.raises(ValueError, match="positive"):
        ConflictPolicy(arbitration_deadline=timedelta(0))
    assert not ConflictPolicy().climbs
    assert ResourcePolicy().conflicts == ConflictPolicy()


def test_a_policy_file_declares_each_resources_ladder() -> None:
    loaded = load_policies(
        """
        conflicts:
          drafts:
            rules: [{action: merge, op: revise, merge_op: merge_revise}, {action: priority}]
            priority: [editorial, research]
            negotiation_rounds: 2
            negotiation_deadline: 10s
            arbiter: chief
            arbitration_deadline: 1m
            escalate: false
        """
    )
    assert loaded.conflicts == {
        "drafts": ConflictPolicy(
            rules=(
                ConflictRule(action=ConflictAction.MERGE, op="revise", merge_op="merge_revise"),
                ConflictRule(action=ConflictAction.PRIORITY),
            ),
            priority=("editorial", "research"),
            negotiation_rounds=2,
            negotiation_deadline=timedelta(seconds=10),
            arbiter="chief",
            arbitration_deadline=timedelta(minutes=1),
            escalate=False,
        )
    }
    with pytest.raises(UnknownPolicyKeyError, match=r"conflicts\.drafts\.rounds"):
        load_policies("conflicts: {drafts: {rounds: 2}}")
    with pytest.raises(PolicyValueError, match=r"conflicts.drafts.rules\[0\].action"):
        load_policies("conflicts: {drafts: {rules: [{action: shout}]}}")
    with pytest.raises(PolicyValueError, match=r"conflicts\.drafts\.rules"):
        load_policies("conflicts: {drafts: {rules: [{action: merge}]}}")
