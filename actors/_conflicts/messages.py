"""What the conflict ladder sends to agents and what it reports.

The runtime delivers ``Negotiate`` to each of the two agents (level 2) and ``Arbitrate``
to the arbiter (level 3) as supervised subtasks, so an agent takes part by declaring a
``@handler`` for them; a human answering an escalated arbitration (level 4) answers a
``Ruling``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from policies import ConflictSide


class Negotiate(BaseModel):
    """One round of a negotiation, sent to each party.

    Attributes:
        conflict_id: the conflict (the refused write's idempotency key).
        resource: where. op: the refused ``@write``. args, keywords: its arguments.
        round: from 1 to the policy's ``negotiation_rounds``.
        side: which party the receiver is. other: the other party's agent name.
        expected: the version the challenger expected (None if its op raised the
            conflict). current: the resource's version when it was refused.
    """

    conflict_id: str
    resource: str
    op: str
    args: list[Any]
    keywords: dict[str, Any]
    round: int
    side: ConflictSide
    other: str
    expected: int | None
    current: int


class Position(BaseModel):
    """A party's answer to one round: yield (let the other win) or insist."""

    yields: bool
    note: str = ""


class Arbitrate(BaseModel):
    """The conflict put to the arbiter (and, if it cannot rule, to a human)."""

    conflict_id: str
    resource: str
    op: str
    args: list[Any]
    keywords: dict[str, Any]
    challenger: str
    incumbent: str
    expected: int | None
    current: int


class Ruling(BaseModel):
    """Who wins, and why (kept in the conflict's record)."""

    winner: ConflictSide
    reason: str = ""


@dataclass(frozen=True, slots=True)
class ConflictRecord:
    """One conflict as the resource recorded it.

    Attributes:
        conflict_id: the refused write's idempotency key. op: its ``@write``.
        challenger: the refused writer. incumbent: the writer of the version it met.
        expected: the version it expected. current: the version it met.
        trace_id: its trace. opened: when (ISO 8601, UTC).
        settled: when, or None while the ladder climbs.
        level: the level that settled it (``ConflictLevel``; 0 none could), or None.
        winner: ``"challenger"``, ``"incumbent"`` or None. outcome: ``"applied"``,
            ``"rejected"`` or ``"failed"`` (the winning write was itself refused), or None.
        detail: why. version: the version the winning write committed as, or None.
    """

    conflict_id: str
    op: str
    challenger: str
    incumbent: str
    expected: int | None
    current: int
    trace_id: str
    opened: str
    settled: str | None
    level: int | None
    winner: str | None
    outcome: str | None
    detail: str
    version: int | None


@dataclass(frozen=True, slots=True)
class ConflictSummary:
    """How conflicts settle, for ``agentcast status``: if most do not settle at level 1,
    the rules are underspecified.

    Attributes:
        total: conflicts kept (``ResourceRetention.audit``). open: still climbing.
        by_level: settled conflicts per level (0: no level could, the write lost).
        share: each level's share of the settled conflicts (0.0 to 1.0).
        outcomes: settled conflicts per outcome.
    """

    total: int = 0
    open: int = 0
    by_level: dict[int, int] = field(default_factory=dict)
    share: dict[int, float] = field(default_factory=dict)
    outcomes: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, counts: list[tuple[int | None, str | None, int]]) -> ConflictSummary:
        """From ``(level, outcome, count)`` rows (level None: open)."""
        by_level: dict[int, int] = {}
        outcomes: dict[str, int] = {}
        open_ = 0
        for level, outcome, count in counts:
            if level is None or outcome is None:
                open_ += count
                continue
            by_level[level] = by_level.get(level, 0) + count
            outcomes[outcome] = outcomes.get(outcome, 0) + count
        settled = sum(by_level.values())
        share = {level: n / settled for level, n in sorted(by_level.items())}
        return cls(settled + open_, open_, dict(sorted(by_level.items())), share, outcomes)
