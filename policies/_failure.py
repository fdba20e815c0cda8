"""What the supervisor does with a failed attempt: retry, reroute, abandon or escalate.

An ``OnFailure`` value is the plan a subtask is submitted with; ``decide`` turns it, the
failure at hand and the state of the shared limits into one ``FailureAction``.

Attempts are counted per subtask across the whole plan. With::

    Retry(
        policy=RetryPolicy(max_attempts=3),
        then=Reroute(to="b", policy=RetryPolicy(max_attempts=5)),
    )

attempts 2 and 3 are retries in place and attempts 4 and 5 go to ``"b"``; after the fifth
failure the subtask is abandoned (the ``then`` of ``Reroute`` defaults to ``Abandon()``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum

from ._retry import RetryPolicy, backoff, should_retry


@dataclass(frozen=True, slots=True, kw_only=True)
class Abandon:
    """Give the subtask up: its handle resolves to a typed failure."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Escalate:
    """Hand the failed subtask to a named handler.

    Attributes:
        to: the handler, an agent or role name, or ``"human"`` (the default) for an operator.
    """

    to: str = "human"

    def __post_init__(self) -> None:
        if not self.to:
            raise ValueError("Escalate.to must not be empty")


@dataclass(frozen=True, slots=True, kw_only=True)
class Reroute:
    """Send the next attempts to another replica or role.

    A reroute is a retry elsewhere: it follows ``policy`` and draws on the retry budget, but
    the failing group's restart intensity does not stop it (leaving that group is the point).

    Attributes:
        to: the replica (``"orders:2"``) or role (``"orders-fallback"``) to send to; required.
        policy: attempts, backoff and non-retryable failures of the rerouted attempts.
            Default ``RetryPolicy()``.
        then: what to do once rerouting is no longer allowed. Default ``Abandon()``.
    """

    to: str
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    then: Abandon | Escalate = Abandon()

    def __post_init__(self) -> None:
        if not self.to:
            raise ValueError("Reroute.to must not be empty")


@dataclass(frozen=True, slots=True, kw_only=True)
class Retry:
    """Retry in place, with backoff, then fall back.

    Attributes:
        policy: attempts, backoff and non-retryable failures. Default ``RetryPolicy()``.
        then: what to do once retrying is no longer allowed. Default ``Abandon()``.
    """

    policy: RetryPolicy = field(default_factory=RetryPolicy)
    then: Reroute | Abandon | Escalate = Abandon()


OnFailure = Retry | Reroute | Abandon | Escalate
"""The plan for a failed attempt."""


class StopCause(StrEnum):
    """Why a subtask is abandoned or escalated rather than tried again.

    PLAN: the plan itself says so (``Abandon()`` or ``Escalate()`` with nothing before it).
    ATTEMPTS_EXHAUSTED: ``max_attempts`` are used up.
    NON_RETRYABLE: the failure reason or error type is listed as non-retryable.
    RETRY_BUDGET_EXHAUSTED: the run's retry budget refused another retry.
    RESTART_INTENSITY_EXCEEDED: the group restarted too often to retry in place.
    """

    PLAN = "plan"
    ATTEMPTS_EXHAUSTED = "attempts_exhausted"
    NON_RETRYABLE = "non_retryable"
    RETRY_BUDGET_EXHAUSTED = "retry_budget_exhausted"
    RESTART_INTENSITY_EXCEEDED = "restart_intensity_exceeded"


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryAfter:
    """Run the next attempt on the same target after ``delay``."""

    delay: timedelta


@dataclass(frozen=True, slots=True, kw_only=True)
class RerouteTo:
    """Run the next attempt on ``to`` after ``delay``."""

    to: str
    delay: timedelta


@dataclass(frozen=True, slots=True, kw_only=True)
class AbandonTask:
    """Fail the subtask for good; ``because`` says why it was not tried again."""

    because: StopCause


@dataclass(frozen=True, slots=True, kw_only=True)
class EscalateTo:
    """Hand the subtask to ``to``; ``because`` says why it was not tried again."""

    to: str
    because: StopCause


FailureAction = RetryAfter | RerouteTo | AbandonTask | EscalateTo
"""What ``decide`` tells the supervisor to do."""


# long: the docstring is the decision table, with its order of refusals; the code is six lines.
def decide(
    on_failure: OnFailure,
    *,
    attempts: int,
    reason: str,
    error_type: str | None = None,
    intensity_exceeded: bool,
    budget_allows: bool,
    rng_value: float = 0.5,
) -> FailureAction:
    """The action for a subtask whose latest attempt just failed.

    ``Retry`` retries while its policy allows (``should_retry``), the retry budget allows
    and the group's restart intensity is not exceeded; ``Reroute`` likewise, except that
    the intensity does not matter. When they may not, their ``then`` is decided with the
    same inputs, and the cause of the last refusal is carried to the final ``AbandonTask``
    or ``EscalateTo``. A refusal is the first of, in order: non-retryable, attempts
    exhausted, restart intensity exceeded, retry budget exhausted.

    ``budget_allows`` is whether the run's retry budget would grant one more retry; the
    caller withdraws from it only when the action is ``RetryAfter`` or ``RerouteTo``.

    Args:
        on_failure: the plan of the subtask.
        attempts: attempts made so far, the failed one included (1 after the first).
        reason: the failure reason of the latest attempt.
        error_type: the name of its exception's type, when it raised.
        intensity_exceeded: whether the group that ran it exceeded its restart intensity.
        budget_allows: whether the run's retry budget allows one more retry.
        rng_value: a uniform draw in [0, 1) for the backoff jitter; the default 0.5 gives
            the un-jittered delay.

    Returns:
        The action.

    Raises:
        ValueError: ``attempts`` is below 1 or ``rng_value`` is outside [0, 1).
    """
    if attempts < 1:
        raise ValueError(f"attempts must be at least 1, got {attempts}")
    if not 0.0 <= rng_value < 1.0:
        raise ValueError(f"rng_value must be in [0, 1), got {rng_value}")
    return _decide(
        on_failure, None, attempts, reason, error_type, intensity_exceeded, budget_allows, rng_value
    )


def _decide(
    plan: OnFailure,
    cause: StopCause | None,
    attempts: int,
    reason: str,
    error_type: str | None,
    intensity_exceeded: bool,
    budget_allows: bool,
    rng_value: float,
) -> FailureAction:
    if isinstance(plan, Abandon):
        return AbandonTask(because=cause or StopCause.PLAN)
    if isinstance(plan, Escalate):
        return EscalateTo(to=plan.to, because=cause or StopCause.PLAN)
    in_place = isinstance(plan, Retry)
    refusal = _refusal(
        plan.policy, attempts, reason, error_type, in_place and intensity_exceeded, budget_allows
    )
    if refusal is None:
        delay = backoff(plan.policy, attempts, rng_value)
        return (
            RetryAfter(delay=delay)
            if isinstance(plan, Retry)
            else RerouteTo(to=plan.to, delay=delay)
        )
    return _decide(
        plan.then,
        refusal,
        attempts,
        reason,
        error_type,
        intensity_exceeded,
        budget_allows,
        rng_value,
    )


def _refusal(
    policy: RetryPolicy,
    attempts: int,
    reason: str,
    error_type: str | None,
    intensity_exceeded: bool,
    budget_allows: bool,
) -> StopCause | None:
    if reason in policy.non_retryable or (
        error_type is not None and error_type in policy.non_retryable
    ):
        return StopCause.NON_RETRYABLE
    if not should_retry(policy, attempts, reason, error_type):
        return StopCause.ATTEMPTS_EXHAUSTED
    if intensity_exceeded:
        return StopCause.RESTART_INTENSITY_EXCEEDED
    if not budget_allows:
        return StopCause.RETRY_BUDGET_EXHAUSTED
    return None
