"""The conflict ladder as a plain class: the order of the levels and what each verdict does.

Which levels are climbed is the policy's (``policies.ConflictPolicy``); how a level
reaches the agents is a ``Levels`` (supervised subtasks on Ray, scripted in tests); how
a winning write is applied is ``apply`` (the resource's own applier). The ladder only
decides: the first level with a verdict settles the conflict, and the challenger's write
(or a merge) is applied only on a verdict for it, once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from policies import (
    ConflictLevel,
    ConflictPolicy,
    ConflictSide,
    ConflictVerdict,
    negotiation_verdict,
    rule_verdicts,
)
from runtime import ConflictError

from .._resource.calls import WriteResult, describe_error


@dataclass(frozen=True, slots=True)
class Conflict:
    """A refused write and the two parties, as the ladder sees it."""

    conflict_id: str
    resource: str
    op: str
    challenger: str
    incumbent: str
    expected: int | None
    current: int
    trace_id: str
    args: list[Any]
    kwargs: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Settlement:
    """How a conflict ended.

    Attributes:
        level: the level that settled it (``NONE``: none could; the write lost).
        winner: the side that won, or None when no level settled it.
        outcome: ``"applied"`` (the challenger's write or a merge committed),
            ``"rejected"`` (the incumbent's state stands) or ``"failed"`` (the winning
            write was itself refused: ``result`` holds why).
        detail: why, for the record.
        result: the applied write's result, or None when nothing was applied.
    """

    level: ConflictLevel
    winner: ConflictSide | None
    outcome: str
    detail: str
    result: WriteResult[Any] | None = None


class Levels(Protocol):
    """How levels 2 to 4 reach the agents."""

    async def negotiate(self, conflict: Conflict, round: int) -> tuple[bool, bool]:
        """One round: whether the challenger and the incumbent yield. Raises if a party
        cannot take part (no handler, a missed deadline): the conflict goes up."""
        ...

    async def arbitrate(self, conflict: Conflict) -> tuple[ConflictSide, ConflictLevel, str]:
        """The winner, the level that ruled (``ARBITER``, or ``HUMAN`` after an
        escalation) and why. Raises if nobody ruled."""
        ...


Apply = Callable[[str | None], Awaitable[WriteResult[Any]]]
"""Apply the challenger's write without its version check (None), or a merge ``@write``
with its arguments (the merge's name)."""


class Ladder:
    """Climbs one conflict. Never raises for what a level does: a level that fails
    sends the conflict up, and the top without a verdict settles it at ``NONE``."""

    def __init__(self, policy: ConflictPolicy, levels: Levels, apply: Apply) -> None:
        self._policy = policy
        self._levels = levels
        self._apply = apply
        self._failed: list[str] = []  # why a level could not settle, for the record

    async def climb(self, conflict: Conflict) -> Settlement:
        for level in (self._rules, self._negotiate, self._arbitrate):
            settled = await level(conflict)
            if settled is not None:
                return settled
        why = "; ".join(["no level settled it", *self._failed])
        return Settlement(ConflictLevel.NONE, None, "rejected", why)

    async def _rules(self, conflict: Conflict) -> Settlement | None:
        c = conflict
        for verdict in rule_verdicts(self._policy, c.op, c.challenger, c.incumbent):
            if verdict.merge_op is None:
                return await self._settle(ConflictLevel.RULES, verdict)
            merged = await self._apply(verdict.merge_op)
            if not isinstance(merged.error, ConflictError):  # else the next rule
                return _applied(ConflictLevel.RULES, verdict, merged)
        return None

    async def _negotiate(self, conflict: Conflict) -> Settlement | None:
        if conflict.incumbent in ("", conflict.challenger):
            return None  # nobody to negotiate with
        for round in range(1, self._policy.negotiation_rounds + 1):
            try:
                yields = await self._levels.negotiate(conflict, round)
            except Exception as error:
                self._failed.append(f"negotiation round {round}: {describe_error(error)}")
                return None
            verdict = negotiation_verdict(*yields)
            if verdict is not None:
                why = f"round {round}: {verdict.why}"
                return await self._settle(ConflictLevel.NEGOTIATION, verdict, why)
        return None

    async def _arbitrate(self, conflict: Conflict) -> Settlement | None:
        if self._policy.arbiter is None:
            return None
        try:
            winner, level, why = await self._levels.arbitrate(conflict)
        except Exception as error:
            self._failed.append(f"arbitration: {describe_error(error)}")
            return None
        return await self._settle(level, ConflictVerdict(winner, why))

    async def _settle(
        self, level: ConflictLevel, verdict: ConflictVerdict, why: str | None = None
    ) -> Settlement:
        if why is not None:
            verdict = ConflictVerdict(verdict.winner, why)
        if verdict.winner is ConflictSide.INCUMBENT:
            return Settlement(level, verdict.winner, "rejected", verdict.why)
        return _applied(level, verdict, await self._apply(None))


def _applied(
    level: ConflictLevel, verdict: ConflictVerdict, result: WriteResult[Any]
) -> Settlement:
    if result.error is None:
        return Settlement(level, verdict.winner, "applied", verdict.why, result)
    why = f"{verdict.why}; the write was refused: {describe_error(result.error)}"
    return Settlement(level, verdict.winner, "failed", why, result)
