"""The values that cross between the supervisor, its handles and its collaborators."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import BaseModel

from policies import Deadlines, OnFailure, Provenance, Retry, RetryBudget, RetryBudgetState
from runtime import (
    AttemptRecord,
    BudgetExceededError,
    Clock,
    Envelope,
    FailureReason,
    HandlerOutputError,
    ModelOutputError,
    SubtaskFailedError,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class SubtaskSpec:
    """Everything the supervisor needs to run a subtask, stored as is.

    Attributes:
        subtask_id: the subtask's id; every attempt runs under an envelope whose
            ``task_id`` is this id, so the idempotency keys of its writes are the same
            in every attempt.
        message: the task, a pydantic model.
        to: an agent name (any of its replicas) or one replica, ``"name:i"``.
        expect: the output model the result must validate as; None accepts any output
            of the handler.
        deadlines: bounds by phase. Default ``Deadlines()``.
        on_failure: the plan for a failed attempt. Default ``Retry()``.
        envelope: the subtask's envelope (trace, parent span, sender, constraints).
        parent: the task id of the task that delegated it, or None from a driver.
        stage: the pipeline stage it belongs to; submitting it signals the stage.
        next_stage: the stage its handoff record names.
        run: the scope of the retry budget its retries draw on: the subtasks submitted
            with the same run share one budget. Default None: its trace id (every
            submission of one ``System`` from the driver, or one agent task's subtasks).
        retry_budget: the budget of its run, if the run has none yet. Default None: the
            one configured on the supervisor, else the budget actor's, else
            ``RetryBudget()``.
        requires: the weakest provenance of input the submitter accepts (on top of the
            stage's own requirement). Default None.
    """

    subtask_id: str
    message: BaseModel
    to: str
    expect: type[BaseModel] | None = None
    deadlines: Deadlines = field(default_factory=Deadlines)
    on_failure: OnFailure = field(default_factory=Retry)
    envelope: Envelope
    parent: str | None = None
    stage: str | None = None
    next_stage: str | None = None
    run: str | None = None
    retry_budget: RetryBudget | None = None
    requires: Provenance | None = None

    @property
    def budget_scope(self) -> str:
        """The run whose retry budget its retries draw on."""
        return self.run or self.envelope.trace_id


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a subtask ended: its output, or its typed failure; ``provenance`` is the mark
    the supervisor believed of the output (UNVERIFIED_AGENT unless a declared verifier
    made or passed it)."""

    subtask_id: str
    output: BaseModel | None = None
    error: SubtaskFailedError | None = None
    provenance: Provenance = Provenance.UNVERIFIED_AGENT

    def unwrap(self) -> BaseModel:
        """The output.

        Raises:
            SubtaskFailedError: the subtask failed.
        """
        if self.error is not None:
            raise self.error
        assert self.output is not None
        return self.output


@dataclass(frozen=True, slots=True, kw_only=True)
class SubtaskStatus:
    """Where a subtask stands.

    Attributes:
        subtask_id: the subtask.
        state: ``"queued"``, ``"running"``, ``"retrying"``, ``"escalated"``, ``"done"``
            or ``"failed"``; ``"unknown"`` for an id the supervisor never saw.
        target: where its next or current attempt goes.
        reason: the failure reason once failed (or the reason of the escalation).
        detail: what the reason means here; it names what stopped the retries (e.g.
            ``[retry_budget_exhausted]``: the run's retry budget refused one).
        attempts: its attempt history so far.
        heartbeat_at: the supervisor clock's instant of the running attempt's last
            heartbeat, or None.
    """

    subtask_id: str
    state: str
    target: str = ""
    reason: str | None = None
    attempts: tuple[AttemptRecord, ...] = ()
    heartbeat_at: float | None = None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class ReplicaInfo:
    """A live agent replica: ``name`` is ``"group:i"``."""

    name: str
    capacity: int
    epoch: int


class Dispatcher(Protocol):
    """How the supervisor reaches agents (Ray actors in production, fakes in tests)."""

    async def replicas(self, group: str) -> list[ReplicaInfo]:
        """The live replicas of ``group``."""
        ...

    def send(
        self, replica: str, message: BaseModel, envelope: Envelope
    ) -> tuple[Awaitable[Any], Callable[[], None]]:
        """Start the task on ``replica``: its result (raises ``AgentDiedError`` if the
        replica dies) and a function that cancels it."""
        ...

    def follow(self, replica: str, span_id: str) -> Awaitable[Any]:
        """The result of attempt ``span_id`` that an earlier supervisor started on
        ``replica`` (raises ``ConfigurationError`` if the replica does not know it)."""
        ...

    async def restart(self, replica: str) -> ReplicaInfo:
        """Stop ``replica`` for good, whatever it runs, and start it anew under its name."""
        ...


class RetryBudgetHook(Protocol):
    """The run's retry budget, as the supervisor uses it: the one hook through which
    every retry it makes is drawn (the budget actor's ``try_retry`` when it runs)."""

    async def may_retry(self, run: str, agent: str) -> bool:
        """Withdraw one retry for ``run`` if its budget allows; whether it did."""
        ...

    def record_first_attempts(self, run: str, count: int) -> None:
        """Count first attempts of ``run`` (each one lets the run retry a bit more)."""
        ...


class LocalRetryBudget:
    """A retry budget kept inside the supervisor, used when no budget actor runs."""

    def __init__(self, clock: Clock, budget: RetryBudget | None = None) -> None:
        self._clock = clock
        self.budget = budget or RetryBudget()
        self._runs: dict[str, RetryBudgetState] = {}

    async def may_retry(self, run: str, agent: str) -> bool:
        return self.withdraw(run)

    def record_first_attempts(self, run: str, count: int) -> None:
        self.deposit(run, count)

    def withdraw(self, run: str, budget: RetryBudget | None = None) -> bool:
        """Withdraw one retry for ``run``; a new run gets ``budget`` (default: this one's)."""
        allowed, self._runs[run] = self._state(run, budget).try_withdraw(self._clock.monotonic())
        return allowed

    def deposit(self, run: str, count: int, budget: RetryBudget | None = None) -> None:
        """Count ``count`` first attempts of ``run``; a new run gets ``budget``."""
        state = self._state(run, budget)
        self._runs[run] = state.deposit(self._clock.monotonic(), max(0, count))

    def _state(self, run: str, budget: RetryBudget | None) -> RetryBudgetState:
        return self._runs.get(run) or RetryBudgetState(budget=budget or self.budget)


class AgentDiedError(Exception):
    """Internal: the replica's actor died while running the attempt."""


def classify(error: BaseException) -> tuple[FailureReason, str | None, str]:
    """The failure reason, error type name and detail of an attempt that raised."""
    if isinstance(error, AgentDiedError):
        return FailureReason.AGENT_DIED, None, str(error)
    if isinstance(error, asyncio.CancelledError):
        return FailureReason.CANCELLED, None, "cancelled"
    kind = _original_type(error)
    if isinstance(error, BudgetExceededError):
        return FailureReason.BUDGET, kind, str(error)
    if isinstance(error, HandlerOutputError | ModelOutputError):
        return FailureReason.SCHEMA, kind, str(error)
    return FailureReason.EXCEPTION, kind, str(error).splitlines()[-1] if str(error) else kind


def _original_type(error: BaseException) -> str:
    # Ray raises a subclass of both RayTaskError and the original class; name the original.
    for cls in type(error).__mro__:
        if not cls.__name__.startswith("RayTaskError") and cls.__module__ != "ray.exceptions":
            return cls.__name__
    return type(error).__name__
