"""Spend is settled, not forgotten (issue 10, findings 1, 3 and 4, in plain classes): an
unsettled grant is charged in full when it expires, a late settle corrects it, a killed
holder's grants are charged at once; leases are settled when a handler ends and when idle;
a breaker is half-open once its open period ends, whoever asks; a tokens dimension."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from waiting import until

from actors._budget.local_link import CoreLink
from actors._budget.meter import Meter
from actors.lowlevel import BudgetCore, MeteredModel, SpendContext
from policies import (
    BreakerPolicy,
    BreakerStatus,
    BudgetLimit,
    BudgetPolicy,
    Dimension,
    Scope,
    ScopeKind,
)
from runtime import BudgetExceededError, Message
from runtime.testing import FakeClock, ScriptedModel

HELLO = [Message(role="user", content="hello")]


def _cap(kind: ScopeKind, dim: Dimension, cap: float) -> BudgetLimit:
    return BudgetLimit(scope=Scope(kind=kind), dimension=dim, cap=cap)


def _metered(
    tmp_path: Path, run: str = "r1", **fields: Any
) -> tuple[MeteredModel, CoreLink, Meter]:
    clock = FakeClock()
    policy = BudgetPolicy(breaker_refresh=timedelta(hours=1), **fields)
    link = CoreLink(BudgetCore(tmp_path, policy, clock=clock))
    meter = Meter(link, holder="a:0", clock=clock)  # type: ignore[arg-type]
    return MeteredModel(ScriptedModel(), meter, agent="a", run=lambda: run), link, meter


# -- finding 1: an unsettled grant is charged in full, never handed out again ---------------


def test_a_strict_cap_holds_when_a_lease_expires_unsettled(tmp_path: Path) -> None:
    clock, cap = FakeClock(), 1000.0
    policy = BudgetPolicy(
        limits=(_cap(ScopeKind.CLUSTER, Dimension.PROMPT_TOKENS, cap),), lease_share=0.5
    )
    core = BudgetCore(tmp_path, policy, clock=clock)
    quiet = SpendContext(run="r", agent="quiet", model="m")
    grant = core.reserve(
        grant_id="q", context=quiet, need={"prompt_tokens": 10}, want={"prompt_tokens": 900}
    )
    consumed = grant.amounts["prompt_tokens"]  # spent all of it, then went idle for good
    clock.advance(timedelta(minutes=2))  # past the lease's 60 s
    assert core.expire_due() == 1
    busy, n = SpendContext(run="r", agent="busy", model="m"), 0
    with pytest.raises(BudgetExceededError):
        while True:  # another agent spends until refused
            core.reserve(grant_id=f"b{n}", context=busy, need={"prompt_tokens": 10})
            core.settle(grant_id=f"b{n}", context=busy, used={"prompt_tokens": 10})
            consumed, n = consumed + 10, n + 1
    assert consumed <= cap
    assert core.book.ledger(("cluster", "*", "*", "prompt_tokens")).committed == consumed


def test_a_late_settle_corrects_the_full_charge_to_the_token(tmp_path: Path) -> None:
    clock = FakeClock()
    policy = BudgetPolicy(limits=(_cap(ScopeKind.RUN, Dimension.TOKENS, 100),))
    core = BudgetCore(tmp_path, policy, clock=clock)
    ctx = SpendContext(run="r", agent="a", model="m")
    core.reserve(grant_id="g", context=ctx, need={"tokens": 60})
    clock.advance(timedelta(hours=0.5))
    core.expire_due()
    assert core.remaining(ctx, "tokens") == 40  # charged in full
    assert core.settle(grant_id="g", context=ctx, used={"tokens": 17}) == "late"
    assert core.remaining(ctx, "tokens") == 83
    assert core.book.spent[("r", "a", "m")] == {"tokens": 17}
    assert core.settle(grant_id="g", context=ctx, used={"tokens": 17}) == "repeat"


def test_a_killed_holders_grants_are_charged_at_once(tmp_path: Path) -> None:
    policy = BudgetPolicy(limits=(_cap(ScopeKind.CLUSTER, Dimension.CALLS, 10),))
    core = BudgetCore(tmp_path, policy, clock=FakeClock())
    for holder in ("workers:0", "workers:1", "workersx:0"):
        ctx = SpendContext(run="r", agent=holder.split(":")[0], model="m")
        core.reserve(grant_id=holder, context=ctx, need={"calls": 2}, holder=holder)
    assert sorted(core.charge_holder("workers")) == ["workers:0", "workers:1"]
    ledger = core.book.ledger(("cluster", "*", "*", "calls"))
    assert (ledger.committed, ledger.outstanding) == (4, 2)
    assert list(core.book.grants) == ["workersx:0"]


def test_a_handlers_leases_are_settled_when_it_ends(tmp_path: Path) -> None:
    async def scenario() -> None:
        model, link, meter = _metered(tmp_path)
        for _ in range(10):
            await model.complete(HELLO, max_tokens=8)
        meter.release("r1", "a")  # the handler ended
        assert meter.leases == {}  # no lease is kept for the run
        await until(lambda: not meter.closing, "the leases are settled")
        spent = link.core.book.spent[("r1", "a", "scripted")]
        assert spent["calls"] == 10
        assert spent["tokens"] == spent["prompt_tokens"] + spent["completion_tokens"]
        assert link.core.book.grants == {}
        await model.complete(HELLO, max_tokens=8)  # a new lease for the next handler
        assert list(meter.leases) == [("r1", "a", "scripted")]
        assert meter.leases["r1", "a", "scripted"].calls_per_draw == 64

    asyncio.run(scenario())


def test_an_idle_lease_is_settled_by_the_meters_timer(tmp_path: Path) -> None:
    async def scenario() -> None:
        model, link, meter = _metered(tmp_path, settle_idle=timedelta(milliseconds=20))
        for _ in range(3):
            await model.complete(HELLO, max_tokens=8)
        await until(lambda: not meter.leases and not meter.closing, "the idle lease settles")
        assert link.core.book.spent[("r1", "a", "scripted")]["calls"] == 3
        assert link.core.book.grants == {}

    asyncio.run(scenario())


# -- findings 3 and 4: breakers, one view whoever asks -------------------------------------


def _open_breaker(tmp_path: Path, clock: FakeClock) -> BudgetCore:
    breaker = BreakerPolicy(failure_threshold=1, open_for=timedelta(seconds=0.5))
    core = BudgetCore(tmp_path, BudgetPolicy(breaker=breaker), clock=clock)
    core.report("tool", ok=False, fingerprint="f", agent="a")
    return core


def test_a_retry_is_admitted_once_the_open_period_ends_without_a_probe(tmp_path: Path) -> None:
    clock = FakeClock()
    core = _open_breaker(tmp_path, clock)
    refused = core.try_retry("r", dependency="tool")
    assert (refused.reason, refused.retry_after) == ("circuit_open", 0.5)
    clock.advance(timedelta(seconds=0.5))  # the agent honoured retry_after
    assert core.try_retry("r", dependency="tool").reason == "ok"
    assert core.breaker("tool").status is BreakerStatus.HALF_OPEN
    probe = core.admit("tool")
    assert (probe.allowed, probe.probe) == (True, True)


def test_the_breaker_view_is_consistent(tmp_path: Path) -> None:
    clock = FakeClock()
    core = _open_breaker(tmp_path, clock)
    view = core.breaker("tool")
    assert (view.status, view.allowed, view.retry_after) == (BreakerStatus.OPEN, False, 0.5)
    clock.advance(timedelta(seconds=0.6))
    view = core.breaker("tool")
    assert (view.status, view.allowed, view.retry_after) == (BreakerStatus.HALF_OPEN, True, None)
    core.admit("tool")  # the one probe of the round (which began at 0.5 s) is out
    view = core.breaker("tool")
    assert (view.status, view.allowed) == (BreakerStatus.HALF_OPEN, False)
    assert view.retry_after == pytest.approx(0.4)
    assert core.try_retry("r", dependency="tool").reason == "circuit_open"


# -- finding 4: a total-tokens dimension ----------------------------------------------------


def test_a_tokens_cap_bounds_prompt_and_completion_together(tmp_path: Path) -> None:
    async def scenario() -> None:
        cap = _cap(ScopeKind.RUN, Dimension.TOKENS, 100)
        model, link, meter = _metered(tmp_path, limits=(cap,), lease_calls=2)
        made = 0
        with pytest.raises(BudgetExceededError) as refused:
            for _ in range(20):
                await model.complete(HELLO, max_tokens=8)
                made += 1
        assert refused.value.dimension == "tokens"
        await meter.flush()
        spent = link.core.book.spent[("r1", "a", "scripted")]
        assert spent["tokens"] == spent["prompt_tokens"] + spent["completion_tokens"] <= 100
        assert spent["calls"] == made > 0

    asyncio.run(scenario())
