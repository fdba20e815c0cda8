"""The budget actor on a real local Ray: metering through ``self.model``, typed refusals,
breakers opened for every agent."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import ray
from budget_agents_for_tests import (
    Answer,
    Ask,
    Asker,
    Banker,
    SettleNow,
    Spend,
    Spent,
    TryAsk,
    TryAsker,
)
from waiting import wait_until

from actors import BudgetStatus, System
from actors._budget.store import BudgetStore
from policies import (
    BreakerPolicy,
    BreakerStatus,
    BudgetLimit,
    BudgetPolicy,
    Dimension,
    Metering,
    ModelPrice,
    PriceTable,
    Scope,
    ScopeKind,
)
from runtime import BudgetExceededError, ModelUnavailableError
from runtime.testing import ScriptedModel, ScriptedRule

pytestmark = pytest.mark.ray

PRICES = PriceTable(models={"scripted": ModelPrice(prompt_per_1k=1.0, completion_per_1k=2.0)})


def _system(tmp_path: Path, policy: BudgetPolicy) -> System:
    return System.start(
        tmp_path / "storage", namespace=f"test-{uuid.uuid4().hex[:12]}", budgets=policy
    )


@pytest.fixture
def per_call(ray_session: None, tmp_path: Path) -> Iterator[System]:
    cap = BudgetLimit(scope=Scope(kind=ScopeKind.RUN), dimension=Dimension.CALLS, cap=3)
    policy = BudgetPolicy(limits=(cap,), prices=PRICES, metering=Metering.PER_CALL)
    system = _system(tmp_path, policy)
    yield system
    system.shutdown()


def test_every_call_is_settled_by_agent_model_and_run_and_the_cap_refuses(
    per_call: System,
) -> None:
    group = per_call.agent(Asker, name="asker", model=ScriptedModel(default_reply="x" * 8))
    answers = [group.ask(Ask(prompt="hello there", max_tokens=16)) for _ in range(3)]
    assert all(isinstance(a, Answer) for a in answers)
    with pytest.raises(BudgetExceededError) as refused:
        group.ask(Ask(prompt="hello there"))
    assert refused.value.dimension == "calls"
    assert refused.value.scope == f"run:{per_call.trace_id}"
    status = per_call.budget.status()
    spent = status.spend(run=per_call.trace_id, agent="asker", target="scripted")
    prompt = sum(a.prompt_tokens for a in answers)
    completion = sum(a.completion_tokens for a in answers)
    assert spent["calls"] == 3
    assert spent["prompt_tokens"] == prompt
    assert spent["completion_tokens"] == completion
    assert spent["cost"] == pytest.approx((prompt * 1.0 + completion * 2.0) / 1000)
    assert status.open_grants == 0


def test_leases_keep_a_strict_cap_across_replicas(ray_session: None, tmp_path: Path) -> None:
    cap = BudgetLimit(scope=Scope(kind=ScopeKind.CLUSTER), dimension=Dimension.CALLS, cap=10)
    system = _system(tmp_path, BudgetPolicy(limits=(cap,), lease_share=0.5))
    try:
        group = system.agent(TryAsker, name="askers", replicas=3, model=ScriptedModel())
        outcomes = [group.ask(TryAsk(prompt="go")) for _ in range(30)]
        made = sum(1 for o in outcomes if o.ok)
        assert 1 <= made <= 10
        assert {o.error for o in outcomes if not o.ok} == {"BudgetExceededError"}
        ledger = system.budget.status().ledger(scope="cluster", dimension="calls")
        (cap_, committed, outstanding) = (ledger.cap, ledger.committed, ledger.outstanding)
        assert cap_ == 10
        assert committed + outstanding <= cap_
        assert committed <= made  # leases still held are not settled yet
        # Once every replica settles what it holds, the ledger holds exactly the calls made.
        ray.get([group.call(SettleNow(), replica=i) for i in range(3)])
        ledger = system.budget.status().ledger(scope="cluster", dimension="calls")
        assert (ledger.cap, ledger.committed, ledger.outstanding) == (10, made, 0)
    finally:
        system.shutdown()


def test_an_open_breaker_refuses_every_agent_without_calling(
    ray_session: None, tmp_path: Path
) -> None:
    policy = BudgetPolicy(
        breaker=BreakerPolicy(failure_threshold=5, open_for=timedelta(minutes=5)),
        block_after_agents=2,
        breaker_refresh=timedelta(0),
    )
    system = _system(tmp_path, policy)
    try:
        down = ScriptedRule(pattern="search", error=ModelUnavailableError("down", status=503))
        model = ScriptedModel(rules=[down])
        group = system.agent(TryAsker, name="askers", replicas=3, model=model)
        first = [group.call(TryAsk(prompt="search now"), replica=i) for i in (0, 1)]
        failed = ray.get(first)
        assert [o.error for o in failed] == ["ModelUnavailableError"] * 2
        # Two agents saw the same fingerprint: the breaker is open for the whole cluster.
        assert system.budget.breaker("scripted:scripted").status is BreakerStatus.OPEN
        third = ray.get(group.call(TryAsk(prompt="other"), replica=2))
        assert third.error == "CircuitOpenError"
        assert third.model_calls == 0
        # The error registry holds the failure once, seen by two agents.
        incidents = [
            (i.dependency, i.reports, list(i.agents)) for i in system.budget.status().incidents
        ]
        assert incidents == [("scripted:scripted", 2, ["askers:0", "askers:1"])]
    finally:
        system.shutdown()


def test_an_open_breaker_stays_open_when_the_budget_actor_restarts(
    ray_session: None, tmp_path: Path
) -> None:
    breaker = BreakerPolicy(failure_threshold=5, open_for=timedelta(minutes=5))
    system = _system(tmp_path, BudgetPolicy(breaker=breaker, block_after_agents=2))
    try:
        budget, endpoint = system.budget, "scripted:scripted"
        for agent in ("askers:0", "askers:1"):
            budget.report(endpoint, ok=False, fingerprint="f1", agent=agent)
        assert budget.breaker(endpoint).status is BreakerStatus.OPEN
        before = budget.status().incarnation
        ray.kill(budget.actor, no_restart=False)

        def restarted() -> BudgetStatus | None:
            status = budget.status()
            return status if status.incarnation > before else None  # a new actor's

        status = wait_until(restarted, "the restarted budget actor answers")
        assert status.breakers[endpoint].status is BreakerStatus.OPEN
        incidents = {
            i.fingerprint: (i.dependency, i.reports, list(i.agents)) for i in status.incidents
        }
        assert incidents == {"f1": (endpoint, 2, ["askers:0", "askers:1"])}
        group = system.agent(TryAsker, name="askers", model=ScriptedModel())
        outcome = group.ask(TryAsk(prompt="hello"))
        assert (outcome.error, outcome.model_calls) == ("CircuitOpenError", 0)
    finally:
        system.shutdown()


def test_bank_no_cap_is_crossed_and_totals_reconcile_while_the_actor_is_killed(
    ray_session: None, tmp_path: Path
) -> None:
    cap = 150.0
    limit = BudgetLimit(scope=Scope(kind=ScopeKind.CLUSTER), dimension=Dimension.COST, cap=cap)
    system = _system(tmp_path, BudgetPolicy(limits=(limit,)))
    try:
        budget = system.budget
        budget.status()
        bankers = system.agent(Banker, name="bankers", replicas=6)
        refs = [bankers.call(Spend(run="bank", calls=60, amount=1.0), replica=i) for i in range(6)]
        kills = 0
        for threshold in (40, 150, 260):
            if not _wait_for_events(system.root, threshold, refs):
                break
            ray.kill(budget.actor, no_restart=False)
            kills += 1
            budget.status()  # waits until the restarted actor answers
        records: list[Spent] = ray.get(refs)
        assert kills >= 2
        assert sum(r.unavailable for r in records) == 0
        committed, by_agent = _replay_and_check(system.root, cap)
        assert sum(r.settled for r in records) == pytest.approx(committed)
        assert committed <= cap
        assert sum(r.refused for r in records) > 0  # the cap was reached
        assert by_agent == pytest.approx(
            {f"bankers:{i}": records[i].settled for i in range(6) if records[i].settled}
        )
    finally:
        system.shutdown()


def _wait_for_events(root: Path, count: int, refs: list[ray.ObjectRef]) -> bool:
    """Wait until the budget log holds ``count`` events; False if the work ends first.

    Raises:
        AssertionError: neither within 120 s.
    """

    def logged_or_ended() -> str | None:
        conn = sqlite3.connect(root / "budget.sqlite")
        try:
            (n,) = conn.execute("SELECT COUNT(*) FROM events").fetchone()
        finally:
            conn.close()
        if n >= count:
            return "logged"
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0.01)
        return "ended" if len(ready) == len(refs) else None

    return wait_until(logged_or_ended, f"{count} budget events or the end", 120) == "logged"


def _replay_and_check(root: Path, cap: float) -> tuple[float, dict[str, float]]:
    """Replay the durable log on its own: committed + reserved <= cap after every event."""
    store = BudgetStore(root)
    committed = outstanding = 0.0
    grants: dict[str, tuple[str, float]] = {}
    by_agent: dict[str, float] = {}
    try:
        for event in store.events():
            data = event.data
            if event.kind == "grant":
                grants[data["id"]] = (data["ctx"]["agent"], data["amounts"]["cost"])
                outstanding += data["amounts"]["cost"]
            elif event.kind == "settle":
                agent, granted = grants.pop(data["id"])
                used = data["used"]["cost"]
                assert used <= granted
                outstanding -= granted
                committed += used
                by_agent[agent] = by_agent.get(agent, 0.0) + used
            else:
                assert event.kind == "declare", event
            assert committed + outstanding <= cap + 1e-9, event
    finally:
        store.close()
    assert not grants  # every grant handed out was settled
    return committed, by_agent
