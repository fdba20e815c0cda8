"""What follows a failed attempt: the subtask's plan (``policies.decide``) says retry it,
reroute it, abandon it or escalate it, given the restart intensity of the agent group that
failed and the run's retry budget, from which every retry is drawn.

The planner only decides; ``AttemptEngine`` (``attempts.py``) carries the decision out.
"""

from __future__ import annotations

import random
from typing import Any

from policies import (
    FailureAction,
    RerouteTo,
    RestartIntensity,
    RestartTracker,
    RetryAfter,
    RetryBudget,
    decide,
)
from runtime import Clock, FailureReason

from .state import Live
from .store import SubtaskStore
from .types import LocalRetryBudget, RetryBudgetHook, SubtaskSpec

# Failures no plan follows: the subtask fails at once. A budget refusal is final because
# every agent of the run draws on the same caps: another attempt would be refused too.
_FINAL = (FailureReason.CANCELLED, FailureReason.REJECTED, FailureReason.BUDGET)


class FailurePlanner:
    """Restart intensity per agent group, the groups that exceeded it, and the retry budget.

    Args:
        store: where a group that exceeds its restart intensity is recorded (an event).
        clock: the instants of restarts.
        retry_budget: the run's retry budget.
        rng: the jitter of backoffs.
    """

    def __init__(
        self,
        store: SubtaskStore,
        *,
        clock: Clock,
        retry_budget: RetryBudgetHook,
        rng: random.Random,
    ) -> None:
        self.failed_groups: set[str] = set()
        self._store = store
        self._clock = clock
        self._budget = retry_budget
        self._rng = rng
        self._intensity: dict[str, RestartIntensity] = {}
        self._trackers: dict[str, RestartTracker] = {}
        self._configured = LocalRetryBudget(clock)
        self.retry_budget: RetryBudget | None = None

    def configure_group(self, group: str, intensity: RestartIntensity) -> None:
        """Set the restart intensity of an agent group (default ``RestartIntensity()``)."""
        self._intensity[group] = intensity
        self._trackers.pop(group, None)
        self.failed_groups.discard(group)

    def configure_retry_budget(self, budget: RetryBudget | None) -> None:
        """The retry budget of runs whose subtasks name none; None leaves them to the
        budget actor (when it runs) or ``RetryBudget()``."""
        self.retry_budget = budget

    def first_attempt(self, spec: SubtaskSpec) -> None:
        """A subtask was submitted: its first attempt lets its run retry more."""
        budget = spec.retry_budget or self.retry_budget
        if budget is not None:
            self._configured.deposit(spec.budget_scope, 1, budget)
        else:
            self._budget.record_first_attempts(spec.budget_scope, 1)

    async def _may_retry(self, spec: SubtaskSpec, group: str) -> bool:
        # A budget given where subtasks are submitted wins over the budget actor's.
        budget = spec.retry_budget or self.retry_budget
        if budget is not None:
            return self._configured.withdraw(spec.budget_scope, budget)
        return await self._budget.may_retry(spec.budget_scope, group)

    def restarted(self, group: str, reason: FailureReason) -> None:
        """An attempt that ran on a replica of ``group`` failed: one restart of the group,
        unless the run's caps refused it (not the agent's fault)."""
        if reason is not FailureReason.BUDGET:
            self._trackers[group] = self._tracker(group).record(self._clock.monotonic())

    def may_restart(self, group: str) -> bool:
        """Count a restart of one of ``group``'s replicas; whether the group's restart
        intensity allows it (if not, the group has failed: recorded once, as an event)."""
        now = self._clock.monotonic()
        self._trackers[group] = self._tracker(group).record(now)
        exceeded = self._trackers[group].exceeded(now)
        if exceeded:
            self._group_failed(group, "wedged")
        return not exceeded

    def _group_failed(self, group: str, reason: str) -> None:
        if group not in self.failed_groups:
            self.failed_groups.add(group)
            self._store.stage_event(
                self._clock.now().timestamp(), "group_failed", group, {"reason": reason}
            )

    @staticmethod
    def is_final(live: Live, reason: FailureReason) -> bool:
        """Whether the subtask fails at once, without asking its plan: the reason is final,
        or it was escalated already."""
        return reason in _FINAL or live.escalated

    async def decide(
        self, live: Live, reason: FailureReason, kind: str | None, group: str
    ) -> FailureAction:
        """What follows the failed attempt of ``live`` on ``group``; a retry or a reroute
        is drawn from the run's retry budget, and its refusal asks the plan again."""
        exceeded = self._tracker(group).exceeded(self._clock.monotonic())
        if exceeded:
            self._group_failed(group, reason.value)
        inputs: dict[str, Any] = {
            "attempts": live.attempts, "reason": reason.value, "error_type": kind,
            "intensity_exceeded": exceeded, "rng_value": self._rng.random(),
        }  # fmt: skip
        action = decide(live.spec.on_failure, budget_allows=True, **inputs)
        if isinstance(action, RetryAfter | RerouteTo) and not await self._may_retry(
            live.spec, group
        ):
            action = decide(live.spec.on_failure, budget_allows=False, **inputs)
        return action

    def _tracker(self, group: str) -> RestartTracker:
        found = self._trackers.get(group)
        if found is None:
            found = RestartTracker(intensity=self._intensity.get(group, RestartIntensity()))
        return found
