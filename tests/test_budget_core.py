"""The budget actor's logic as a plain class: caps, leases, expiry, recovery, retry budgets,
breakers and the error registry, on a real SQLite file and a fake clock."""

from __future__ import annotations

import math
import random
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.lowlevel import BudgetCore, SpendContext
from policies import (
    BreakerPolicy,
    BreakerStatus,
    BudgetLimit,
    BudgetPolicy,
    Dimension,
    LeaseMode,
    RetryBudget,
    Scope,
    ScopeKind,
)
from runtime import BudgetExceededError, ConfigurationError, Location
from runtime.testing import FakeClock

RUN = SpendContext(run="r1", agent="a", model="m")


def _cap(kind: ScopeKind, dim: Dimension, cap: float, key: str = "*") -> BudgetLimit:
    return BudgetLimit(scope=Scope(kind=kind, key=key), dimension=dim, cap=cap)


def _core(store_root: Location, clock: FakeClock, **fields: object) -> BudgetCore:
    return BudgetCore(store_root, BudgetPolicy(**fields), clock=clock)  # type: ignore[arg-type]


def test_reserve_settle_and_refuse_at_the_cap(store_root: Location) -> None:
    core = _core(store_root, FakeClock(), limits=(_cap(ScopeKind.RUN, Dimension.CALLS, 2),))
    for i in range(2):
        core.reserve(grant_id=f"g{i}", context=RUN, need={"calls": 1})
    with pytest.raises(BudgetExceededError) as refused:
        core.reserve(grant_id="g2", context=RUN, need={"calls": 1})
    assert (refused.value.scope, refused.value.available) == ("run:r1", 0.0)
    assert core.settle(grant_id="g0", context=RUN, used={"calls": 1}) == "settled"
    assert core.settle(grant_id="g0", context=RUN, used={"calls": 1}) == "repeat"
    # Another run has a cap of its own.
    core.reserve(grant_id="o", context=SpendContext(run="r2", agent="a"), need={"calls": 1})
    assert core.remaining(RUN, "calls") == 0.0


def test_a_repeated_reserve_returns_the_same_grant(store_root: Location) -> None:
    core = _core(store_root, FakeClock(), limits=(_cap(ScopeKind.CLUSTER, Dimension.CALLS, 5),))
    first = core.reserve(grant_id="g", context=RUN, need={"calls": 1}, want={"calls": 3})
    again = core.reserve(grant_id="g", context=RUN, need={"calls": 1}, want={"calls": 3})
    assert first.amounts == again.amounts
    assert core.remaining(RUN, "calls") == 5 - first.amounts["calls"]


def test_leases_take_a_share_of_what_remains_but_cover_the_call(store_root: Location) -> None:
    limits = (_cap(ScopeKind.CLUSTER, Dimension.PROMPT_TOKENS, 1000),)
    core = _core(store_root, FakeClock(), limits=limits, lease_share=0.1)
    grant = core.reserve(
        grant_id="g", context=RUN, need={"prompt_tokens": 50}, want={"prompt_tokens": 5000}
    )
    assert grant.amounts["prompt_tokens"] == 100
    grant = core.reserve(
        grant_id="h", context=RUN, need={"prompt_tokens": 500}, want={"prompt_tokens": 5000}
    )
    assert grant.amounts["prompt_tokens"] == 500


def test_an_unpriced_model_under_a_cost_cap_is_a_configuration_error(store_root: Location) -> None:
    core = _core(store_root, FakeClock(), limits=(_cap(ScopeKind.RUN, Dimension.COST, 1),))
    with pytest.raises(ConfigurationError):
        core.reserve(grant_id="g", context=RUN, need={"calls": 1, "prompt_tokens": 5})


def test_restart_keeps_spend_and_outstanding_grants(store_root: Location) -> None:
    clock = FakeClock()
    limits = (_cap(ScopeKind.RUN, Dimension.COST, 10),)
    core = _core(store_root, clock, limits=limits)
    core.reserve(grant_id="a", context=RUN, need={"cost": 4})
    core.reserve(grant_id="b", context=RUN, need={"cost": 4})
    core.settle(grant_id="a", context=RUN, used={"cost": 3})
    core.commit()
    core.close()
    again = _core(store_root, clock, limits=limits)
    assert again.remaining(RUN, "cost") == 3  # 10 - 3 spent - 4 still reserved
    with pytest.raises(BudgetExceededError):
        again.reserve(grant_id="c", context=RUN, need={"cost": 4})
    clock.advance(timedelta(minutes=11))  # the reservation's TTL is 10 minutes
    again.expire_due()
    assert again.remaining(RUN, "cost") == 3  # unsettled: charged in full
    assert again.settle(grant_id="b", context=RUN, used={"cost": 1}) == "late"
    assert again.remaining(RUN, "cost") == 6  # corrected to what was spent


def test_a_settle_after_expiry_is_charged_and_counted_late(store_root: Location) -> None:
    clock = FakeClock()
    core = _core(store_root, clock, limits=(_cap(ScopeKind.RUN, Dimension.CALLS, 1),))
    core.reserve(grant_id="g", context=RUN, need={"calls": 1})
    clock.advance(timedelta(hours=1))
    assert core.expire_due() == 1
    assert core.settle(grant_id="g", context=RUN, used={"calls": 1}) == "late"
    assert core.book.late_settles == 1
    assert core.remaining(RUN, "calls") == 0


def _drain(core: BudgetCore, agents: int) -> float:
    """Agents drawing leases of up to 64 calls in turn, each spending all of its lease and
    settling it before its next draw, until every one is refused: the calls they made."""
    spent, refused, n = 0.0, set(), 0
    held: dict[int, tuple[str, float]] = {}
    while len(refused) < agents:
        for agent in range(agents):
            if agent in refused:
                continue
            if agent in held:
                grant_id, used = held.pop(agent)
                core.settle(grant_id=grant_id, context=RUN, used={"calls": used})
            n += 1
            try:
                grant = core.reserve(
                    grant_id=f"g{n}", context=RUN, need={"calls": 1}, want={"calls": 64}
                )
            except BudgetExceededError:
                refused.add(agent)
                continue
            used = float(math.floor(grant.amounts["calls"]))  # whole calls only
            held[agent], spent = (grant.id, used), spent + used
    return spent


@pytest.mark.timeout(60)
@pytest.mark.parametrize("agents", [2, 8, 32])
def test_leases_under_a_calls_cap_spend_it_to_the_last_call(
    store_root: Location, agents: int
) -> None:
    # A share of what remains is fractional (0.1 of 25 calls); grants of fractional calls
    # left a residue in ``outstanding`` once all were settled, refusing the last call.
    limits = (_cap(ScopeKind.RUN, Dimension.CALLS, 800),)
    core = _core(store_root, FakeClock(), limits=limits, lease_share=0.1)
    assert _drain(core, agents) == 800
    ledger = core.book.ledger(("run", "*", RUN.run, "calls"))
    assert (ledger.committed, ledger.outstanding) == (800.0, 0.0)


@pytest.mark.timeout(60)
def test_cost_leases_settled_unused_give_back_the_whole_cap(store_root: Location) -> None:
    limits = (_cap(ScopeKind.RUN, Dimension.COST, 1.0),)
    core = _core(store_root, FakeClock(), limits=limits, lease_share=0.1)
    open_ids = []
    for n in range(40):  # each a tenth of what remains, with a price's inexact cost
        grant = core.reserve(
            grant_id=f"c{n}", context=RUN, need={"cost": 0.0013}, want={"cost": 1.0}
        )
        open_ids.append(grant.id)
    random.Random(198).shuffle(open_ids)  # an order that left a residue of 1.8e-16
    for grant_id in open_ids:
        core.settle(grant_id=grant_id, context=RUN, used={"cost": 0.0})
    ledger = core.book.ledger(("run", "*", RUN.run, "cost"))
    assert (ledger.committed, ledger.outstanding, core.remaining(RUN, "cost")) == (0.0, 0.0, 1.0)


_OPS = st.lists(
    st.tuples(
        st.sampled_from(["reserve", "lease", "settle", "tick", "restart"]),
        st.integers(1, 30),
        st.floats(0.0, 1.0),
    ),
    max_size=40,
)


@settings(max_examples=40, deadline=None)
@given(ops=_OPS, mode=st.sampled_from([LeaseMode.STRICT, LeaseMode.LOOSE]))
def test_committed_plus_outstanding_never_exceeds_the_cap(
    tmp_path_factory: pytest.TempPathFactory, ops: list[tuple[str, int, float]], mode: LeaseMode
) -> None:
    root, clock, cap = tmp_path_factory.mktemp("bank"), FakeClock(), 100.0
    limits = (_cap(ScopeKind.CLUSTER, Dimension.PROMPT_TOKENS, cap),)
    policy = BudgetPolicy(limits=limits, mode=mode, lease_ttl=timedelta(seconds=30))
    core, open_grants = BudgetCore(root, policy, clock=clock), {}
    worst = 30 if mode is LeaseMode.LOOSE else 0  # loose: less than one request over
    for n, (op, amount, fraction) in enumerate(ops):
        if op in ("reserve", "lease"):
            want = {"prompt_tokens": amount * 3.0} if op == "lease" else None
            try:
                grant = core.reserve(
                    grant_id=str(n), context=RUN, need={"prompt_tokens": float(amount)}, want=want
                )
                open_grants[grant.id] = grant.amounts["prompt_tokens"]
            except BudgetExceededError:
                pass
        elif op == "settle" and open_grants:
            grant_id, granted = open_grants.popitem()
            core.settle(grant_id=grant_id, context=RUN, used={"prompt_tokens": granted * fraction})
        elif op == "tick":
            clock.advance(amount)
            core.expire_due()
        elif op == "restart":
            core.commit()
            core.close()
            core = BudgetCore(root, policy, clock=clock)
        ledger = core.book.ledger(("cluster", "*", "*", "prompt_tokens"))
        assert ledger.committed + ledger.outstanding <= cap + worst
    core.commit()
    replayed = BudgetCore(root, policy, clock=clock)
    assert replayed.book.ledgers == core.book.ledgers
    assert replayed.book.grants.keys() == core.book.grants.keys()


def test_the_retry_budget_is_a_floor_plus_a_ratio_of_attempts(store_root: Location) -> None:
    clock = FakeClock()
    budget = RetryBudget(ratio=0.5, min_retries_per_window=1, window=timedelta(seconds=10))
    core = _core(store_root, clock, retry_budget=budget)
    assert core.try_retry("r1").allowed
    assert core.try_retry("r1").reason == "retry_budget"
    core.record_attempts("r1", 4)
    assert [core.try_retry("r1").allowed for _ in range(3)] == [True, True, False]
    assert core.try_retry("r2").allowed  # each run has its own
    clock.advance(timedelta(seconds=11))
    assert core.try_retry("r1").allowed


def test_a_retries_cap_refuses_and_is_durable(store_root: Location) -> None:
    limits = (_cap(ScopeKind.RUN, Dimension.RETRIES, 2),)
    core = _core(store_root, FakeClock(), limits=limits)
    assert [core.try_retry("r1").reason for _ in range(3)] == ["ok", "ok", "retries_cap"]
    core.commit()
    again = BudgetCore(store_root, BudgetPolicy(limits=limits), clock=FakeClock())
    assert again.try_retry("r1").reason == "retries_cap"


def test_breaker_opens_for_all_probes_and_closes(store_root: Location) -> None:
    clock = FakeClock()
    breaker = BreakerPolicy(failure_threshold=2, open_for=timedelta(seconds=30))
    core = _core(store_root, clock, breaker=breaker, block_after_agents=3)
    core.report("tool", ok=False, fingerprint="f1", agent="a")
    assert core.admit("tool").allowed
    core.report("tool", ok=False, fingerprint="f1", agent="a")
    refused = core.admit("tool")
    assert not refused.allowed and refused.retry_after == 30
    assert core.try_retry("r1", dependency="tool").reason == "circuit_open"
    clock.advance(timedelta(seconds=30))
    probe = core.admit("tool")
    assert probe.allowed and probe.probe
    assert not core.admit("tool").allowed  # one probe per round
    assert core.report("tool", ok=True).status is BreakerStatus.CLOSED
    assert core.incidents == {}


def test_one_fingerprint_from_many_agents_is_one_incident_and_opens_the_breaker(
    store_root: Location,
) -> None:
    core = _core(store_root, FakeClock(), block_after_agents=2)
    core.report("tool", ok=False, fingerprint="f1", agent="a")
    core.report("tool", ok=False, fingerprint="f1", agent="a")
    assert core.breaker("tool").status is BreakerStatus.CLOSED
    view = core.report("tool", ok=False, fingerprint="f1", agent="b")
    assert view.status is BreakerStatus.OPEN
    assert len(core.incidents) == 1
    assert core.incidents["f1"].reports == 3


def test_an_open_breaker_and_its_incidents_survive_a_restart(store_root: Location) -> None:
    clock = FakeClock()
    breaker = BreakerPolicy(failure_threshold=5, open_for=timedelta(seconds=30))
    core = _core(store_root, clock, breaker=breaker, block_after_agents=2)
    core.report("tool", ok=False, fingerprint="f1", agent="a")
    core.report("tool", ok=False, fingerprint="f1", agent="b")
    clock.advance(timedelta(seconds=10))
    core.commit()
    core.close()
    # A new process: its monotonic clock starts again from 0; the wall clock goes on.
    later = FakeClock(start=clock.now())
    again = _core(store_root, later, breaker=breaker, block_after_agents=2)
    view = again.admit("tool")
    assert (view.status, view.allowed, view.retry_after) == (BreakerStatus.OPEN, False, 20)
    assert again.incidents["f1"].agents == {"a", "b"}
    later.advance(timedelta(seconds=20))
    assert again.admit("tool").probe
    assert again.report("tool", ok=True).status is BreakerStatus.CLOSED
    again.commit()
    again.close()
    third = _core(store_root, FakeClock(start=later.now()), breaker=breaker)
    assert third.breaker("tool").status is BreakerStatus.CLOSED
    assert third.incidents == {}
