"""The supervisor and the budget actor on a real local Ray: a model call refused by the
budget fails its subtask with reason budget at once, and supervisor retries are drawn from
the run's retry budget in the budget actor."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from budget_agents_for_tests import Ask, Asker
from supervised_agents import Job, StrictDone, Worker

from actors import System
from policies import (
    BudgetLimit,
    BudgetPolicy,
    Dimension,
    Metering,
    RetryBudget,
    RetryPolicy,
    Scope,
    ScopeKind,
)
from runtime import SubtaskFailedError
from runtime.testing import ScriptedModel

pytestmark = pytest.mark.ray

RETRY_NOW = RetryPolicy(max_attempts=4, initial_backoff=timedelta(0), max_backoff=timedelta(0))


def _start(tmp_path: Path, policy: BudgetPolicy) -> System:
    return System.start(
        tmp_path / "storage", namespace=f"test-{uuid.uuid4().hex[:12]}", budgets=policy
    )


@pytest.fixture
def capped(ray_session: None, tmp_path: Path) -> Iterator[System]:
    cap = BudgetLimit(scope=Scope(kind=ScopeKind.RUN), dimension=Dimension.PROMPT_TOKENS, cap=1)
    system = _start(tmp_path, BudgetPolicy(limits=(cap,), metering=Metering.PER_CALL))
    yield system
    system.shutdown()


@pytest.fixture
def no_retries(ray_session: None, tmp_path: Path) -> Iterator[System]:
    budget = RetryBudget(ratio=0.0, min_retries_per_window=0, window=timedelta(minutes=10))
    system = _start(tmp_path, BudgetPolicy(retry_budget=budget))
    yield system
    system.shutdown()


def test_a_model_call_over_budget_fails_the_subtask_with_reason_budget_once(
    capped: System,
) -> None:
    model = ScriptedModel(default_reply="never sent")
    capped.agent(Asker, name="askers", replicas=2, model=model)
    handle = capped.supervisor.submit(
        Ask(prompt="a question long enough to need more than one token"),
        to="askers", retry=RETRY_NOW,
    )  # fmt: skip
    with pytest.raises(SubtaskFailedError) as caught:
        handle.result(timeout=60)
    failure = caught.value
    assert failure.reason == "budget"
    (attempt,) = failure.attempts  # not retried: every agent of the run shares the cap
    assert (attempt.outcome, attempt.error_type) == ("budget", "BudgetExceededError")
    assert "prompt_tokens" in failure.detail
    status = capped.budget.status()
    assert status.spent == () and status.open_grants == 0  # the model was not called
    assert capped.supervisor.handoffs()[0]["status"] == "failed"


def test_supervisor_retries_draw_on_the_runs_retry_budget_in_the_budget_actor(
    no_retries: System,
) -> None:
    no_retries.budget.status()  # running before the supervisor needs it
    no_retries.agent(Worker, name="workers", replicas=2)
    handle = no_retries.supervisor.submit(
        Job(key="r", mode="raise"), to="workers", expect=StrictDone, retry=RETRY_NOW
    )
    with pytest.raises(SubtaskFailedError) as caught:
        handle.result(timeout=60)
    failure = caught.value
    assert failure.reason == "exception"
    assert "retry_budget_exhausted" in failure.detail  # the failure says why it stopped
    assert [a.outcome for a in failure.attempts] == ["exception"]
    # The refusal was the budget actor's (a budget kept in the supervisor allows 10).
    assert no_retries.budget.status().retries == {"retry_budget": 1}


def test_a_budget_actor_started_after_the_supervisor_is_asked_at_the_next_retry(
    no_retries: System,
) -> None:
    no_retries.agent(Worker, name="workers", replicas=2)
    first = no_retries.supervisor.submit(Job(key="a"), to="workers", expect=StrictDone)
    assert first.result(timeout=60) == StrictDone(key="a", replica=first.result().replica)  # type: ignore[attr-defined]
    no_retries.budget.status()  # only now does the budget actor run
    handle = no_retries.supervisor.submit(
        Job(key="r", mode="raise"), to="workers", expect=StrictDone, retry=RETRY_NOW
    )
    with pytest.raises(SubtaskFailedError, match="retry_budget_exhausted"):
        handle.result(timeout=60)
    assert no_retries.budget.status().retries == {"retry_budget": 1}
