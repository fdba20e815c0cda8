"""The conflict ladder of a resource: who settles a refused write's conflict, in order.

A write refused with ``ConflictError`` (its ``expected_version`` is stale, or its operation
raised one) climbs the levels its resource's ``ConflictPolicy`` declares:

1. automatic rules (``ConflictRule``), evaluated in order, deterministically;
2. negotiation between the two agents, for at most ``negotiation_rounds`` rounds;
3. an arbiter agent, run as a supervised subtask held to a deadline and an output schema;
4. a human, through the supervisor's escalation queue, when the arbiter cannot rule.

The functions here are the pure decisions; ``actors`` runs the levels.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import IntEnum, StrEnum


class ConflictLevel(IntEnum):
    """A rung of the ladder. ``NONE``: no level settled the conflict (the write loses)."""

    NONE = 0
    RULES = 1
    NEGOTIATION = 2
    ARBITER = 3
    HUMAN = 4


class ConflictSide(StrEnum):
    """The two parties: the writer refused, and the writer of the state it conflicts with."""

    CHALLENGER = "challenger"
    INCUMBENT = "incumbent"


class ConflictAction(StrEnum):
    """What an automatic rule does.

    MERGE: apply the rule's ``merge_op`` (a ``@write`` of the resource) with the refused
    write's arguments instead; if it too raises ``ConflictError`` the next rule is tried.
    PRIORITY: the party ranked higher in ``ConflictPolicy.priority`` wins; unranked or
    equal parties fall through to the next rule.
    REJECT: the incumbent wins: the refused write stays refused.
    OVERWRITE: the challenger wins: its write is applied without the version check.
    """

    MERGE = "merge"
    PRIORITY = "priority"
    REJECT = "reject"
    OVERWRITE = "overwrite"


@dataclass(frozen=True, slots=True, kw_only=True)
class ConflictRule:
    """One automatic rule (level 1).

    Attributes:
        action: what the rule does; required.
        op: the ``@write`` operation it applies to; ``"*"`` (the default) for every one.
        merge_op: for ``MERGE``, the ``@write`` that merges; required there, else None.
    """

    action: ConflictAction
    op: str = "*"
    merge_op: str | None = None

    def __post_init__(self) -> None:
        if (self.action is ConflictAction.MERGE) != (self.merge_op is not None):
            raise ValueError("ConflictRule.merge_op is required for MERGE and only for it")
        if not self.op or self.merge_op == "":
            raise ValueError("ConflictRule.op and merge_op must not be empty")


@dataclass(frozen=True, slots=True, kw_only=True)
class ConflictPolicy:
    """The ladder of one resource. The default climbs nothing: a conflict is the caller's.

    Attributes:
        rules: level 1, tried in order. Default none.
        priority: agent names, highest first, for ``PRIORITY`` rules. Default none.
        negotiation_rounds: level 2's bound; 0 (the default) skips negotiation.
        negotiation_deadline: how long each agent has to answer one round. Default 30 s.
        arbiter: the agent that rules at level 3; None (the default) skips levels 3 and 4.
        arbitration_deadline: how long the arbiter has to rule. Default 60 s.
        escalate: whether a conflict the arbiter cannot rule goes to a human (level 4).
            Default True.
    """

    rules: tuple[ConflictRule, ...] = ()
    priority: tuple[str, ...] = ()
    negotiation_rounds: int = 0
    negotiation_deadline: timedelta = timedelta(seconds=30)
    arbiter: str | None = None
    arbitration_deadline: timedelta = timedelta(seconds=60)
    escalate: bool = True

    def __post_init__(self) -> None:
        if self.negotiation_rounds < 0:
            raise ValueError("ConflictPolicy.negotiation_rounds must not be negative")
        for name in ("negotiation_deadline", "arbitration_deadline"):
            if getattr(self, name) <= timedelta(0):
                raise ValueError(f"ConflictPolicy.{name} must be positive")
        if len(set(self.priority)) != len(self.priority):
            raise ValueError("ConflictPolicy.priority names an agent twice")
        if self.arbiter == "":
            raise ValueError("ConflictPolicy.arbiter must not be empty")

    @property
    def climbs(self) -> bool:
        """Whether any level is declared: else a conflict goes straight back to its caller."""
        return bool(self.rules) or self.negotiation_rounds > 0 or self.arbiter is not None


@dataclass(frozen=True, slots=True)
class ConflictVerdict:
    """A decision: who wins, or (``merge_op``) a merge to try; ``why`` for the record."""

    winner: ConflictSide
    why: str
    merge_op: str | None = None


def rule_verdicts(
    policy: ConflictPolicy, op: str, challenger: str, incumbent: str
) -> list[ConflictVerdict]:
    """ConflictLevel 1: what the rules for ``op`` decide, in order. A merge verdict is tried and
    falls through if the merge conflicts too; the first other verdict is final; an empty
    list (or only failed merges) sends the conflict up."""
    found: list[ConflictVerdict] = []
    for index, rule in enumerate(policy.rules):
        if rule.op not in ("*", op):
            continue
        where = f"rule {index} ({rule.action.value})"
        if rule.action is ConflictAction.MERGE:
            found.append(
                ConflictVerdict(
                    ConflictSide.CHALLENGER, f"{where}: merged by {rule.merge_op}", rule.merge_op
                )
            )
            continue
        if rule.action is ConflictAction.PRIORITY:
            winner = _ranked(policy.priority, challenger, incumbent)
            if winner is None:
                continue
            found.append(ConflictVerdict(winner, f"{where}: {challenger!r} vs {incumbent!r}"))
        else:
            winner = (
                ConflictSide.INCUMBENT
                if rule.action is ConflictAction.REJECT
                else ConflictSide.CHALLENGER
            )
            found.append(ConflictVerdict(winner, where))
        break
    return found


def _ranked(priority: tuple[str, ...], challenger: str, incumbent: str) -> ConflictSide | None:
    rank = {name: i for i, name in enumerate(priority)}
    mine, theirs = rank.get(challenger), rank.get(incumbent)
    if mine == theirs:  # both unranked, or the same agent
        return None
    if theirs is None or (mine is not None and mine < theirs):
        return ConflictSide.CHALLENGER
    return ConflictSide.INCUMBENT


def negotiation_verdict(challenger_yields: bool, incumbent_yields: bool) -> ConflictVerdict | None:
    """ConflictLevel 2, one round: the party that does not yield wins; if both yield the state
    stays as it is (the incumbent wins); if neither does, another round (None)."""
    if challenger_yields and incumbent_yields:
        return ConflictVerdict(ConflictSide.INCUMBENT, "both yielded: the state stands")
    if challenger_yields:
        return ConflictVerdict(ConflictSide.INCUMBENT, "the challenger yielded")
    if incumbent_yields:
        return ConflictVerdict(ConflictSide.CHALLENGER, "the incumbent yielded")
    return None
