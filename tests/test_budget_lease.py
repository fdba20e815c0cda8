"""Leased metering in one process, against the budget's real logic (``BudgetCore`` on a real
SQLite file) behind a link whose answers the test releases: the next allowance is drawn
ahead of need, a call waits only when no allowance covers it, and a strict cap holds with
allowances drawn ahead counted as outstanding."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from waiting import until

from actors._budget.local_link import answer_and_commit
from actors._budget.meter import Meter
from actors.lowlevel import BudgetCore, MeteredModel
from policies import BudgetLimit, BudgetPolicy, Dimension, ModelPrice, PriceTable, Scope, ScopeKind
from runtime import BudgetExceededError, Message
from runtime.testing import FakeClock, ScriptedModel

PRICES = PriceTable(models={"scripted": ModelPrice(prompt_per_1k=1.0, completion_per_1k=2.0)})
HELLO = [Message(role="user", content="hello")]


class GatedLink:
    """A ``BudgetLink`` over a ``BudgetCore``: each call waits until ``gate`` is set, then
    runs and commits like the budget actor would."""

    def __init__(self, core: BudgetCore) -> None:
        self.core = core
        self.known_policy = core.policy
        self.gate = asyncio.Event()
        self.gate.set()
        self.calls: list[str] = []
        self.waiting = 0

    async def policy(self) -> BudgetPolicy:
        return self.core.policy

    async def call(self, method: str, *args: Any) -> Any:
        self.calls.append(method)
        self.waiting += 1
        await self.gate.wait()
        self.waiting -= 1
        return answer_and_commit(self.core, method, *args)


def _metered(tmp_path: Path, **fields: Any) -> tuple[MeteredModel, GatedLink, Meter]:
    clock = FakeClock()
    policy = BudgetPolicy(prices=PRICES, breaker_refresh=timedelta(hours=1), **fields)
    link = GatedLink(BudgetCore(tmp_path, policy, clock=clock))
    meter = Meter(link, holder="a:0", clock=clock)  # type: ignore[arg-type]
    return MeteredModel(ScriptedModel(), meter, agent="a", run=lambda: "r1"), link, meter


def test_the_next_allowance_is_drawn_ahead_and_calls_wait_only_when_none_covers_them(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        model, link, meter = _metered(tmp_path, lease_calls=8, max_lease_calls=64)
        await model.complete(HELLO, max_tokens=8)  # the first allowance: 8 calls
        assert link.calls == ["breaker", "renew"]
        link.gate.clear()  # from now on the budget actor does not answer
        for _ in range(4):  # down to 3 of 8 left: below half, the next one is drawn
            await model.complete(HELLO, max_tokens=8)
        lease = meter.leases[("r1", "a", "scripted")]
        drawing = lease.drawing
        assert drawing is not None
        for _ in range(3):  # the rest of the allowance, while the draw is unanswered
            await model.complete(HELLO, max_tokens=8)
        assert model.inner.call_count == 8  # type: ignore[attr-defined]
        assert not drawing.done()
        waiting = asyncio.ensure_future(model.complete(HELLO, max_tokens=8))
        # Nothing covers the ninth call: it waits for the draw in flight, and since that
        # draw was made ahead of need yet came too late, later draws are four times larger.
        await until(lambda: lease.calls_per_draw != 8, "the next draw is sized up")
        assert lease.calls_per_draw == 32
        assert not waiting.done()
        assert model.inner.call_count == 8  # type: ignore[attr-defined]
        link.gate.set()
        await waiting
        assert model.inner.call_count == 9  # type: ignore[attr-defined]
        assert link.calls.count("renew") == 2

    asyncio.run(scenario())


def test_a_strict_cap_holds_with_allowances_drawn_ahead(tmp_path: Path) -> None:
    async def scenario() -> None:
        cap = BudgetLimit(scope=Scope(kind=ScopeKind.RUN), dimension=Dimension.CALLS, cap=50)
        model, link, meter = _metered(tmp_path, limits=(cap,), lease_calls=4, lease_share=0.5)
        core, made = link.core, 0
        key = ("run", "*", "r1", "calls")
        with pytest.raises(BudgetExceededError):
            for _ in range(51):  # the 51st call, if not before, is over the cap
                await model.complete(HELLO, max_tokens=8)
                made += 1
                ledger = core.book.ledger(key)
                assert ledger.committed + ledger.outstanding <= 50
                assert made <= ledger.committed + ledger.outstanding
        assert made == 50  # the agent's own drained allowances were settled to make room
        await meter.flush()
        ledger = core.book.ledger(key)
        assert (ledger.committed, ledger.outstanding) == (50, 0)
        assert core.book.spent[("r1", "a", "scripted")]["calls"] == 50

    asyncio.run(scenario())
