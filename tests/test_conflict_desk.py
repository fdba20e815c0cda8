"""The resource's conflict desk without Ray: which results climb, a re-sent write joins or
reads its conflict, and the ladder's own failure never costs another write its result."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

from ladder_script import Script

from actors._conflicts.desk import ConflictDesk
from actors._conflicts.store import ConflictStore
from actors._resource.calls import WriteCall, WriteResult
from policies import ConflictAction, ConflictLevel, ConflictPolicy, ConflictRule, ConflictSide
from runtime import ConflictError, ConflictLostError, SystemClock, encode

REJECT = ConflictPolicy(rules=(ConflictRule(action=ConflictAction.REJECT),))


def call(key: str = "") -> WriteCall:
    return WriteCall("revise", encode([["d1", "x"], {}]), "research", 1, key or uuid.uuid4().hex,
                     "a" * 32, expected_version=0)  # fmt: skip


def desk(tmp_path: Path, policy: ConflictPolicy, script: Script) -> ConflictDesk:
    applied: list[WriteCall] = []

    async def apply(forced: WriteCall) -> WriteResult[Any]:
        applied.append(forced)
        return WriteResult(10 + len(applied), "merged")

    return ConflictDesk(
        "drafts", policy, ConflictStore(tmp_path / "drafts.sqlite"), script, apply,
        lambda c: c.writer, lambda: "editorial", SystemClock(),
    )  # fmt: skip


CONFLICT: WriteResult[Any] = WriteResult(5, error=ConflictError("drafts", 0, 5))


def test_only_conflicts_climb_and_a_policy_without_levels_changes_nothing(
    tmp_path: Path,
) -> None:
    ok: WriteResult[Any] = WriteResult(4, "fine")
    calls, results = [call(), call()], [ok, CONFLICT]
    plain = desk(tmp_path, ConflictPolicy(), Script())
    assert asyncio.run(plain.settle(calls, results)) == results
    settled = asyncio.run(desk(tmp_path, REJECT, Script()).settle(calls, results))
    assert settled[0] == ok
    assert isinstance(settled[1].error, ConflictLostError) and settled[1].error.level == 1


def test_a_resent_write_joins_its_climbing_conflict_and_then_reads_its_outcome(
    tmp_path: Path,
) -> None:
    script = Script(ruling=(ConflictSide.CHALLENGER, ConflictLevel.ARBITER))
    the_desk = desk(tmp_path, ConflictPolicy(arbiter="chief"), script)
    same = call("k-1")

    async def twice() -> list[WriteResult[Any]]:
        return list(
            await asyncio.gather(the_desk.one(same, CONFLICT), the_desk.one(same, CONFLICT))
        )

    first, second = asyncio.run(twice())
    assert first == second == WriteResult(11, "merged")
    assert script.asked == ["arbiter"]  # asked once for both
    later = asyncio.run(the_desk.one(same, CONFLICT))
    assert (later.version, later.value, later.duplicate) == (11, "merged", True)
    assert script.asked == ["arbiter"]
    (record,) = the_desk.store.records()
    assert (record.level, record.winner, record.outcome) == (3, "challenger", "applied")


def test_the_ladders_own_failure_leaves_the_write_refused_and_the_others_answered(
    tmp_path: Path,
) -> None:
    the_desk = desk(tmp_path, REJECT, Script())
    the_desk.store.close()  # its store is gone: opening the conflict fails
    ok: WriteResult[Any] = WriteResult(4, "fine")
    settled = asyncio.run(the_desk.settle([call(), call()], [ok, CONFLICT]))
    assert settled == [ok, CONFLICT]
