"""Levels 2-4 of the conflict ladder and its applier, scripted, for tests without Ray."""

from __future__ import annotations

from typing import Any

from actors._conflicts.ladder import Conflict
from actors._resource.calls import WriteResult
from policies import ConflictLevel, ConflictSide
from runtime import ConflictError


class Script:
    """Levels 2-4 and the applier, scripted; records what was asked and applied."""

    def __init__(
        self,
        rounds: list[tuple[bool, bool] | None] | None = None,
        ruling: tuple[ConflictSide, ConflictLevel] | None = None,
        merges_conflict: bool = False,
        apply_error: Exception | None = None,
    ) -> None:
        self.rounds = rounds or []
        self.ruling = ruling
        self.merges_conflict = merges_conflict
        self.apply_error = apply_error
        self.asked: list[str] = []
        self.applied: list[str | None] = []

    async def negotiate(self, conflict: Conflict, round: int) -> tuple[bool, bool]:
        self.asked.append(f"round {round}")
        answer = self.rounds[round - 1] if round <= len(self.rounds) else (False, False)
        if answer is None:
            raise TimeoutError("a party missed its deadline")
        return answer

    async def arbitrate(self, conflict: Conflict) -> tuple[ConflictSide, ConflictLevel, str]:
        self.asked.append("arbiter")
        if self.ruling is None:
            raise RuntimeError("nobody ruled")
        return self.ruling[0], self.ruling[1], "ruled"

    async def apply(self, merge_op: str | None) -> WriteResult[Any]:
        self.applied.append(merge_op)
        if merge_op is not None and self.merges_conflict:
            return WriteResult(5, error=ConflictError("drafts", 5, 6))
        if self.apply_error is not None:
            return WriteResult(5, error=self.apply_error)
        return WriteResult(6 + len(self.applied), "value")
