"""Spend is settled, not forgotten, on a real Ray (issue 10, findings 1, 2 and 4): an
agent's leases are settled when its handler ends; the kill switch charges a killed agent's
grants at once; the budget actor starts on first use from inside an agent; the typed
status, the durable log and ``agentcast budget`` read the books."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
import ray
from budget_agents_for_tests import (
    Answer,
    Ask,
    Asker,
    Hold,
    Holder,
    PatientRetrier,
    RetryTool,
    ToolUser,
    UseTool,
)
from waiting import wait_until

from actors import BudgetStatus, System
from actors._cli.main import main
from policies import BreakerPolicy, BudgetLimit, BudgetPolicy, Dimension, Scope, ScopeKind
from runtime.testing import ScriptedModel

pytestmark = pytest.mark.ray


def _system(tmp_path: Path, policy: BudgetPolicy | None = None) -> System:
    return System.start(
        tmp_path / "storage", namespace=f"test-{uuid.uuid4().hex[:12]}", budgets=policy
    )


def test_the_last_allowance_is_settled_when_the_handler_ends(
    ray_session: None, tmp_path: Path
) -> None:
    system = _system(tmp_path)  # default metering: leases
    try:
        group = system.agent(Asker, name="asker", model=ScriptedModel())
        answers: list[Answer] = [group.ask(Ask(prompt="hello")) for _ in range(10)]

        def settled() -> BudgetStatus | None:
            status = system.budget.status()
            spend = status.spend(run=system.trace_id, agent="asker", target="scripted")
            return status if spend.get("calls") == 10 and status.open_grants == 0 else None

        status = wait_until(settled, "the asker's leases are settled", 30)
        spend = status.spend(run=system.trace_id, agent="asker", target="scripted")
        prompt = sum(a.prompt_tokens for a in answers)
        completion = sum(a.completion_tokens for a in answers)
        assert (spend["prompt_tokens"], spend["completion_tokens"]) == (prompt, completion)
        assert spend["tokens"] == prompt + completion
    finally:
        system.shutdown()


def test_the_kill_switch_charges_the_killed_agents_grants_at_once(
    ray_session: None, tmp_path: Path
) -> None:
    cap = BudgetLimit(scope=Scope(kind=ScopeKind.CLUSTER), dimension=Dimension.CALLS, cap=100)
    system = _system(tmp_path, BudgetPolicy(limits=(cap,), lease_calls=4))
    try:
        group = system.agent(Holder, name="holders", model=ScriptedModel())
        group.call(Hold(prompt="hi"))  # never answers: it holds its lease
        wait_until(lambda: system.budget.status().open_grants == 1, "a lease is held")
        held = system.budget.status().ledger(scope="cluster", dimension="calls").outstanding
        assert held >= 1
        system.kill("holders")
        status = system.budget.status()  # at once: not when the lease's 60 s run out
        assert status.open_grants == 0
        ledger = status.ledger(scope="cluster", dimension="calls")
        assert (ledger.committed, ledger.outstanding) == (held, 0)
    finally:
        system.shutdown()


def test_an_agent_starts_the_budget_actor_on_first_use(ray_session: None, tmp_path: Path) -> None:
    system = _system(tmp_path)
    try:
        group = system.agent(ToolUser, name="tools")  # no model: the budget is not started
        outcome = group.ask(UseTool(tool="search"))
        assert (outcome.ok, outcome.error) == (True, "")
        failed = group.ask(UseTool(tool="search", fail=True))
        assert failed.error == "RuntimeError"
        assert system.budget.status().retries == {"ok": 1}
    finally:
        system.shutdown()
    with pytest.raises(ValueError):  # the agent's budget actor went with the system
        ray.get_actor("budget", namespace=system.namespace)


def test_the_status_and_the_log_read_from_the_terminal(
    ray_session: None, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    cap = BudgetLimit(scope=Scope(kind=ScopeKind.RUN), dimension=Dimension.TOKENS, cap=1000)
    system = _system(tmp_path, BudgetPolicy(limits=(cap,)))
    try:
        system.agent(Asker, name="asker", model=ScriptedModel()).ask(Ask(prompt="hello"))
        wait_until(lambda: system.budget.status().open_grants == 0, "settled")
        events = system.budget.events()
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        assert [e.kind for e in events][:2] == ["declare", "grant"]
        assert events[-1].kind == "settle"
        assert system.budget.events(after=events[-2].seq) == [events[-1]]
        common = ["--namespace", system.namespace, "--storage", str(system.root)]
        assert main(["budget", *common]) == 0
        out = capfd.readouterr().out
        assert f"cap run:* tokens spent by {system.trace_id}: " in out
        assert f"spent run {system.trace_id} agent asker on scripted: calls 1" in out
        assert main(["budget", *common, "--events", "--json", "--limit", "1"]) == 0
        (event,) = json.loads(capfd.readouterr().out)  # one document: the list of events
        assert event["kind"] == "declare"
    finally:
        system.shutdown()


def test_a_retry_honouring_retry_after_is_admitted_when_the_open_period_ends(
    ray_session: None, tmp_path: Path
) -> None:
    breaker = BreakerPolicy(failure_threshold=1, open_for=timedelta(seconds=2))
    system = _system(tmp_path, BudgetPolicy(breaker=breaker))
    try:
        patient = system.agent(PatientRetrier, name="patient")
        system.budget.report("tool:search", ok=False, fingerprint="f", agent="other:0")
        waited = patient.ask(RetryTool(tool="tool:search"))
        # Refused once with retry_after (under 2 s), admitted when it asks again after
        # waiting that long, though no one probed the tool meanwhile.
        assert (waited.allowed, waited.asked) == (True, 2)
        assert 0.0 < waited.waited_s <= 2.0
    finally:
        system.shutdown()


def test_an_expired_grant_is_charged_in_full_on_the_budget_actors_timer(
    ray_session: None, tmp_path: Path
) -> None:
    cap = BudgetLimit(scope=Scope(kind=ScopeKind.CLUSTER), dimension=Dimension.CALLS, cap=100)
    policy = BudgetPolicy(
        limits=(cap,), lease_calls=4, lease_ttl=timedelta(seconds=1),
        settle_idle=timedelta(minutes=5),  # the agent's own timer stays out of the way
    )  # fmt: skip
    system = _system(tmp_path, policy)
    try:
        group = system.agent(Holder, name="holders", model=ScriptedModel())
        group.call(Hold(prompt="hi"))  # holds its lease, never settles, never calls again
        wait_until(lambda: system.budget.status().open_grants == 1, "a lease is held")
        held = system.budget.status().ledger(scope="cluster", dimension="calls").outstanding
        # Nobody reserves meanwhile: the actor's own timer charges it once it expires.
        status = wait_until(
            lambda: (s := system.budget.status()).open_grants == 0 and s, "the lease expires", 30
        )
        ledger = status.ledger(scope="cluster", dimension="calls")
        assert (ledger.committed, ledger.outstanding) == (held, 0)
    finally:
        system.shutdown()
