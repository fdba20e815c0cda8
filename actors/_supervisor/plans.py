"""What follows a failed attempt: the subtask's plan (``policies.decide``) retries it,
reroutes it, abandons it or escalates it, drawing every retry from the run's retry budget.
"""

from __future__ import annotations

from typing import Any

from policies import AbandonTask, EscalateTo, FailureAction, RerouteTo, RetryAfter, decide
from runtime import FailureReason

from .book import SubtaskBook
from .pool import group_of
from .state import Attempt, Live

# Failures no plan follows: the subtask fails at once. A budget refusal is final because
# every agent of the run draws on the same caps: another attempt would be refused too.
_FINAL = (FailureReason.CANCELLED, FailureReason.REJECTED, FailureReason.BUDGET)
_PHASES = (FailureReason.QUEUE_TIMEOUT, FailureReason.DEADLINE, FailureReason.HEARTBEAT_TIMEOUT)


class FailurePlans(SubtaskBook):
    """Fails attempts and follows each subtask's plan; the engine starts the attempts."""

    def _start_attempt(self, live: Live) -> None:
        raise NotImplementedError

    def expire(self, live: Live, attempt: Attempt, reason: FailureReason, detail: str) -> None:
        """Fail the attempt now, whatever it is doing; a result it sends later is late."""
        attempt.over = True
        if attempt.replica is None:
            self.pool.dequeue(attempt.target, live.spec.subtask_id)
        if reason in _PHASES:
            self.metrics.deadline_miss(reason.value)
        self.failed(live, attempt, reason, None, detail)

    def failed(
        self, live: Live, attempt: Attempt, reason: FailureReason, kind: str | None, detail: str
    ) -> None:
        """Record the attempt's failure now, then follow the subtask's plan."""
        live.history.append(self._record(live, attempt, reason.value, detail, kind))
        live.current, live.state = None, "deciding"
        group = group_of(attempt.replica or attempt.target)
        self.metrics.attempt(group, reason.value)
        if attempt.replica is not None:
            live.failed_on.add(attempt.replica)
            if reason is not FailureReason.BUDGET:  # the run's caps refused, not the agent
                self._trackers[group] = self._tracker(group).record(self.clock.monotonic())
        if reason in _FINAL or live.escalated:
            self.finish(live, reason=reason.value, detail=detail)
            return
        self.spawn(self._follow_plan(live, reason, kind, detail, group))

    async def _follow_plan(
        self, live: Live, reason: FailureReason, kind: str | None, detail: str, group: str
    ) -> None:
        action = await self._decide(live, reason, kind, group)
        if self.live.get(live.spec.subtask_id) is not live or live.state != "deciding":
            return  # cancelled while deciding
        self._apply(live, action, reason, detail)

    async def _decide(
        self, live: Live, reason: FailureReason, kind: str | None, group: str
    ) -> FailureAction:
        exceeded = self._tracker(group).exceeded(self.clock.monotonic())
        if exceeded and group not in self.failed_groups:
            self.failed_groups.add(group)
            self.store.stage_event(self._wall(), "group_failed", group, {"reason": reason.value})
        inputs: dict[str, Any] = {
            "attempts": live.attempts, "reason": reason.value, "error_type": kind,
            "intensity_exceeded": exceeded, "rng_value": self._rng.random(),
        }  # fmt: skip
        action = decide(live.spec.on_failure, budget_allows=True, **inputs)
        if isinstance(action, RetryAfter | RerouteTo) and not await self._budget.may_retry(
            live.spec.envelope.trace_id, group
        ):
            action = decide(live.spec.on_failure, budget_allows=False, **inputs)
        return action

    def _apply(self, live: Live, action: FailureAction, reason: FailureReason, detail: str) -> None:
        if isinstance(action, AbandonTask):
            self.finish(live, reason=reason.value, detail=f"{detail} [{action.because.value}]")
        elif isinstance(action, EscalateTo):
            self._escalate(live, action, reason, detail)
        else:
            to = action.to if isinstance(action, RerouteTo) else live.target
            self._schedule(live, to, action.delay.total_seconds())

    def _schedule(self, live: Live, target: str, delay: float) -> None:
        live.target, live.state = target, "retrying"
        self.store.stage_progress(live.spec.subtask_id, "retrying", target, live.history)
        self.spawn(self.store.commit())
        if delay <= 0:
            self._start_attempt(live)
        else:
            self.timers.retry_at(self.clock.monotonic() + delay, live.spec.subtask_id)

    def _escalate(self, live: Live, action: EscalateTo, reason: FailureReason, detail: str) -> None:
        live.escalated = True
        if action.to != "human":
            self._schedule(live, action.to, 0.0)
            return
        sid = live.spec.subtask_id
        live.state = "escalated"
        self.store.stage_escalation({
            "subtask_id": sid, "handler": action.to, "reason": reason.value,
            "detail": f"{detail} [{action.because.value}]", "state": "open", "at": self._wall(),
        })  # fmt: skip
        self.store.stage_progress(sid, "escalated", live.target, live.history)
        self.spawn(self.store.commit())
