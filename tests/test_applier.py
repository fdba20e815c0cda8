"""The serial applier: arrival order, group batches, a failed batch fails every caller."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from runtime import SerialApplier, apply_each


def test_items_are_applied_in_order_and_arrivals_form_one_batch() -> None:
    batches: list[list[int]] = []

    def apply(items: list[int]) -> list[tuple[bool, Any]]:
        batches.append(items)
        return [(True, item * 10) for item in items]

    async def scenario() -> list[Any]:
        applier: SerialApplier[int] = SerialApplier(apply, fits=lambda taken, item: len(taken) < 3)
        return await asyncio.gather(*(applier.submit(i) for i in range(7)))

    assert asyncio.run(scenario()) == [i * 10 for i in range(7)]
    assert [i for batch in batches for i in batch] == list(range(7))
    # All 7 queue up before the applier first runs; each batch takes what fits (3 at most).
    assert batches == [[0, 1, 2], [3, 4, 5], [6]]


def test_a_failed_batch_fails_each_of_its_callers_and_the_next_batch_runs() -> None:
    def apply(items: list[str]) -> list[tuple[bool, Any]]:
        if "bad" in items:
            raise OSError("disk")
        return [(True, item) if item != "refused" else (False, ValueError(item)) for item in items]

    async def scenario() -> None:
        applier: SerialApplier[str] = SerialApplier(apply)
        first = await asyncio.gather(
            applier.submit("a"), applier.submit("bad"), return_exceptions=True
        )
        assert all(isinstance(r, OSError) for r in first)
        with pytest.raises(ValueError):
            await applier.submit("refused")
        assert await applier.submit("ok") == "ok"

    asyncio.run(scenario())


def test_apply_each_gives_every_op_its_own_outcome_in_order() -> None:
    seen: list[int] = []

    def boom(target: list[int]) -> int:
        raise ValueError("boom")

    outcomes = apply_each([lambda t: t.append(1) or 1, boom, lambda t: t.append(3) or 3], seen)
    assert [ok for ok, _ in outcomes] == [True, False, True]
    assert (outcomes[0][1], outcomes[2][1], str(outcomes[1][1])) == (1, 3, "boom")
    assert seen == [1, 3]  # the op after a failure still ran
