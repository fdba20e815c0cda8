"""The inline path of a leased call (``MeteredModel.complete``): a call like the last one
takes a slot of the allowance it used, with no budget-actor call; whatever it skips
(constraints to prepend, a closed lease, a bigger bound, a cancelled call) still holds.
Against the budget's real logic (``BudgetCore`` on a real SQLite file) in one process."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from waiting import until

from actors._budget.local_link import CoreLink
from actors._budget.meter import Meter
from actors._resource.constraints import MODEL_PREAMBLE, carrying
from actors.lowlevel import BudgetCore, MeteredModel
from policies import BudgetPolicy, ConstraintSet, ForbidPath, ModelPrice, PriceTable
from runtime import Message, estimate_prompt_tokens
from runtime.testing import FakeClock, ScriptedModel

PRICES = PriceTable(models={"scripted": ModelPrice(prompt_per_1k=1.0, completion_per_1k=2.0)})
HELLO = [Message(role="user", content="hello")]
SPENT = ("r1", "a", "scripted")


def _metered(
    tmp_path: Path, inner: ScriptedModel | None = None, **fields: Any
) -> tuple[MeteredModel, CoreLink, Meter]:
    clock = FakeClock()
    policy = BudgetPolicy(prices=PRICES, breaker_refresh=timedelta(hours=1), **fields)
    link = CoreLink(BudgetCore(tmp_path, policy, clock=clock))
    meter = Meter(link, holder="a:0", clock=clock)  # type: ignore[arg-type]
    model = MeteredModel(inner or ScriptedModel(), meter, agent="a", run=lambda: "r1")
    return model, link, meter


@pytest.mark.timeout(60)
def test_calls_under_an_allowance_make_no_budget_call_and_every_token_is_settled(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        model, link, meter = _metered(tmp_path, lease_calls=64, max_lease_calls=64)
        await model.complete(HELLO, max_tokens=8)
        assert link.calls == ["breaker", "renew"]
        for _ in range(20):
            await model.complete(HELLO, max_tokens=8)
        assert link.calls == ["breaker", "renew"]  # 21 of 64 slots: none due yet
        lease = meter.leases[SPENT]
        assert lease.current is not None and lease.current.slots == 64 - 21
        await meter.flush()
        spent = link.core.book.spent[SPENT]
        prompt = 21 * estimate_prompt_tokens(HELLO)
        completion = 21 * 1  # "ok": one token
        assert spent["calls"] == 21
        assert (spent["prompt_tokens"], spent["completion_tokens"]) == (prompt, completion)
        assert spent["cost"] == pytest.approx((prompt * 1.0 + completion * 2.0) / 1000)

    asyncio.run(scenario())


@pytest.mark.timeout(60)
def test_a_bigger_call_takes_as_many_slots_as_cover_its_bound(tmp_path: Path) -> None:
    async def scenario() -> None:
        model, link, meter = _metered(tmp_path, lease_calls=8, max_lease_calls=8)
        await model.complete(HELLO, max_tokens=8)  # 8 slots of (6 prompt, 8 completion)
        lease = meter.leases[SPENT]
        assert lease.current is not None and lease.current.slots == 7
        await model.complete(HELLO, max_tokens=20)  # 20 completion tokens: three slots
        assert lease.current.slots == 4
        long = [Message(role="user", content="x" * 48)]  # 16 prompt tokens: three slots
        await model.complete(long, max_tokens=8)
        assert lease.current.slots == 1
        # Below half: the next one is drawn ahead, for the bound of the call that found it
        # due (8 slots of 16 prompt and 8 completion tokens).
        await until(lambda: lease.spare is not None, "the next allowance is drawn ahead")
        await model.complete(HELLO, max_tokens=64)  # 8 slots: the spare's, all of them
        assert lease.current is not None and lease.current.slots == 0
        await until(lambda: link.calls.count("renew") == 3, "and the next one again")
        await meter.flush()
        assert link.core.book.spent[SPENT]["calls"] == 4

    asyncio.run(scenario())


@pytest.mark.timeout(60)
def test_constraints_are_prepended_to_a_call_like_the_last_one(tmp_path: Path) -> None:
    async def scenario() -> None:
        inner = ScriptedModel()
        model, _, _ = _metered(tmp_path, inner)
        await model.complete(HELLO, max_tokens=8)
        await model.complete(HELLO, max_tokens=8)
        with carrying(ConstraintSet((ForbidPath(prefix="/prod"),))):
            await model.complete(HELLO, max_tokens=8)
        first, third = inner.calls[0].messages, inner.calls[2].messages
        assert first == tuple(HELLO)
        assert third[0].role == "system" and third[0].content.startswith(MODEL_PREAMBLE)
        assert third[1:] == tuple(HELLO)

    asyncio.run(scenario())


@pytest.mark.timeout(60)
def test_a_call_after_its_lease_was_released_draws_a_new_one(tmp_path: Path) -> None:
    async def scenario() -> None:
        model, link, meter = _metered(tmp_path, lease_calls=64, max_lease_calls=64)
        for _ in range(3):
            await model.complete(HELLO, max_tokens=8)
        meter.release("r1", "a")  # the handler ended: settled in the background
        await model.complete(HELLO, max_tokens=8)
        assert link.calls.count("renew") == 2
        await until(lambda: "settle" in link.calls, "the released lease is settled")
        await meter.flush()
        assert link.core.book.spent[SPENT]["calls"] == 4

    asyncio.run(scenario())


@pytest.mark.timeout(60)
def test_a_cancelled_call_is_counted_in_full_and_the_lease_still_settles(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        clock_model = ScriptedModel(latency=timedelta(seconds=30), clock=FakeClock())
        model, link, meter = _metered(tmp_path, clock_model)
        hanging = asyncio.ensure_future(model.complete(HELLO, max_tokens=8))
        await until(lambda: clock_model.call_count == 1, "the call reaches the model")
        hanging.cancel()
        with pytest.raises(asyncio.CancelledError):
            await hanging
        # It may have been billed: its whole bound is counted, and nothing waits for it.
        await asyncio.wait_for(meter.flush(), timeout=10)
        spent = link.core.book.spent[SPENT]
        assert spent["calls"] == 1
        assert (spent["prompt_tokens"], spent["completion_tokens"]) == (
            estimate_prompt_tokens(HELLO),
            8,
        )

    asyncio.run(scenario())
