"""The supervisor's engine as a plain class: subtasks, attempts, deadlines, failure plans.

Every subtask ends ``done`` with an output that validated as its ``expect``, or ``failed``
with a typed reason and its attempt history: nothing disappears. The Ray actor
(``_supervisor_host``) only forwards calls and runs ``tick`` on a timer, so all of this is
tested without Ray, with a fake clock and a fake dispatcher.

Time is the injected clock's: deadlines and backoffs are due at ``clock.monotonic()``
instants and fire on the next ``tick`` at or after them.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import pickle
import random
from collections.abc import Awaitable, Coroutine
from dataclasses import dataclass, field, replace
from typing import Any

from pydantic import BaseModel, ValidationError
from ray import cloudpickle

from policies import (
    AbandonTask,
    EscalateTo,
    FailureAction,
    RerouteTo,
    RestartIntensity,
    RestartTracker,
    RetryAfter,
    decide,
    next_expiry,
)
from runtime import (
    AttemptRecord,
    Clock,
    ConfigurationError,
    FailureReason,
    SubtaskFailedError,
    new_span_id,
)

from ._subtask_store import SubtaskStore, history
from ._supervisor_metrics import NoMetrics, SupervisorMetrics
from ._supervisor_pool import Pool, group_of
from ._supervisor_types import (
    Dispatcher,
    LocalRetryBudget,
    Outcome,
    RetryBudgetHook,
    SubtaskSpec,
    SubtaskStatus,
    classify,
)

_log = logging.getLogger(__name__)
_FINAL = (FailureReason.CANCELLED, FailureReason.REJECTED)
_PHASES = (FailureReason.QUEUE_TIMEOUT, FailureReason.DEADLINE, FailureReason.HEARTBEAT_TIMEOUT)


@dataclass(slots=True)
class Attempt:
    number: int
    target: str
    queued_at: float
    replica: str | None = None
    started_at: float | None = None
    heartbeat_at: float | None = None
    span_id: str = ""
    over: bool = False
    cancel: Any = None


@dataclass(slots=True)
class Live:
    spec: SubtaskSpec
    target: str
    history: list[AttemptRecord]
    attempts: int = 0
    state: str = "queued"
    current: Attempt | None = None
    waiters: list[asyncio.Future[Outcome]] = field(default_factory=list)
    failed_on: set[str] = field(default_factory=set)
    escalated: bool = False


class SubtaskEngine:
    """Holds every unfinished subtask in memory and its whole story in ``store``."""

    def __init__(
        self,
        store: SubtaskStore,
        dispatcher: Dispatcher,
        *,
        clock: Clock,
        retry_budget: RetryBudgetHook | None = None,
        metrics: SupervisorMetrics | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.pool = Pool()
        self.live: dict[str, Live] = {}
        self.intensity: dict[str, RestartIntensity] = {}
        self.failed_groups: set[str] = set()
        self.metrics = metrics or NoMetrics()
        self._dispatcher = dispatcher
        self._budget: RetryBudgetHook = retry_budget or LocalRetryBudget(clock)
        self._rng = rng or random.Random()
        self._finishing: dict[str, asyncio.Future[Outcome]] = {}
        self._timers: list[tuple[float, int, str, int]] = []
        self._due: list[tuple[float, int, str]] = []
        self._seq = itertools.count()
        self._trackers: dict[str, RestartTracker] = {}
        self._discovering: set[str] = set()
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- submitting and waiting ------------------------------------------------------

    async def run(self, spec: SubtaskSpec) -> Outcome:
        """Submit ``spec`` (or join it if known) and wait for its outcome."""
        await self.submit(spec)
        return await self.wait(spec.subtask_id)

    async def submit(self, spec: SubtaskSpec) -> None:
        """Store the subtask, then start its first attempt. A known id is left as is.

        Raises:
            StorageError: it could not be stored; it was not started.
        """
        sid = spec.subtask_id
        if sid in self.live or sid in self._finishing or self.store.subtask(sid) is not None:
            return
        live = Live(spec=spec, target=spec.to, history=[])
        self.live[sid] = live
        self.store.stage_new({
            "id": sid, "trace_id": spec.envelope.trace_id, "parent": spec.parent,
            "target": spec.to, "state": "queued", "spec": dumps(spec),
            "created": self.clock.now().timestamp(),
        })  # fmt: skip
        self.signal_stage(spec.stage)
        self._budget.record_first_attempts(spec.envelope.trace_id, 1)
        try:
            await self.store.commit()
        except Exception:
            del self.live[sid]
            raise
        if self.live.get(sid) is live:
            self._start_attempt(live)

    async def wait(self, subtask_id: str) -> Outcome:
        """The subtask's outcome, once it is final and stored.

        Raises:
            ConfigurationError: no subtask has this id.
        """
        live = self.live.get(subtask_id)
        if live is not None:
            waiter: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
            live.waiters.append(waiter)
            return await waiter
        pending = self._finishing.get(subtask_id)
        if pending is not None:
            return await asyncio.shield(pending)
        row = self.store.subtask(subtask_id)
        if row is None:
            raise ConfigurationError(f"no subtask {subtask_id!r}")
        return outcome_of(row)

    def recover(self) -> int:
        """Load every unfinished subtask from storage and drive it again: its in-flight
        attempt runs anew under the same subtask id (so the same idempotency keys).

        Returns:
            How many subtasks were re-driven.
        """
        redriven = []
        for row in self.store.unfinished():
            spec: SubtaskSpec = cloudpickle.loads(row["spec"])
            past = list(history(row["attempts"]))
            live = Live(spec=spec, target=row["target"], history=past)
            live.attempts = sum(1 for a in past if not a.outcome.startswith("late:"))
            live.failed_on = {a.replica for a in past if a.replica}
            self.live[spec.subtask_id] = live
            if row["state"] == "escalated":
                live.state = "escalated"
                continue
            redriven.append(live)
            self.store.stage_event(
                self._wall(), "redriven", spec.subtask_id, {"attempt": live.attempts + 1}
            )
        self.store.commit_now()
        for live in redriven:
            self._start_attempt(live)
        return len(redriven)

    # -- attempts --------------------------------------------------------------------

    def _start_attempt(self, live: Live) -> None:
        live.attempts += 1
        attempt = Attempt(
            number=live.attempts, target=live.target, queued_at=self.clock.monotonic()
        )
        live.current, live.state = attempt, "queued"
        self.pool.enqueue(live.target, live.spec.subtask_id)
        self._arm(live, attempt)
        self._pump(live.target)

    def _pump(self, target: str) -> None:
        group = group_of(target)
        if not self.pool.known(group):
            self._discover(group)
            return
        for subtask_id, replica in self.pool.next_assignments(target, self._avoided):
            self._dispatch(self.live[subtask_id], replica)

    def _avoided(self, subtask_id: str) -> frozenset[str]:
        return frozenset(self.live[subtask_id].failed_on)

    def _discover(self, group: str) -> None:
        if group not in self._discovering:
            self._discovering.add(group)
            self.spawn(self._discover_now(group))

    async def _discover_now(self, group: str) -> None:
        try:
            infos = await self._dispatcher.replicas(group)
        except Exception as error:
            _log.warning("discovering agent %s failed: %s", group, error)
            infos = []
        self._discovering.discard(group)
        self.pool.add(group, infos)
        targets = [t for t in self.pool.queues if group_of(t) == group]
        if self.pool.known(group):
            for target in targets:
                self._pump(target)
            return
        for target in targets:
            for subtask_id in list(self.pool.queues[target]):
                live = self.live[subtask_id]
                assert live.current is not None
                self.expire(
                    live, live.current, FailureReason.NO_AGENT, f"no live replica of {target}"
                )

    def _dispatch(self, live: Live, replica: str) -> None:
        attempt = live.current
        assert attempt is not None
        now = self.clock.monotonic()
        attempt.replica, attempt.started_at, attempt.span_id = replica, now, new_span_id()
        live.state = "running"
        self.metrics.queued_ms((now - attempt.queued_at) * 1000)
        envelope = replace(
            live.spec.envelope, span_id=attempt.span_id, parent_span_id=live.spec.envelope.span_id
        )
        try:
            result, attempt.cancel = self._dispatcher.send(replica, live.spec.message, envelope)
        except Exception as error:
            self.pool.remove(replica)
            self.expire(live, attempt, FailureReason.AGENT_DIED, str(error))
            return
        self._arm(live, attempt)
        self.spawn(self._await_attempt(live, attempt, result))

    async def _await_attempt(self, live: Live, attempt: Attempt, result: Awaitable[Any]) -> None:
        error: BaseException | None = None
        output: Any = None
        try:
            output = await result
        except BaseException as raised:  # the agent's error, its death or a cancellation
            error = raised
        assert attempt.replica is not None
        self.metrics.ran_ms((self.clock.monotonic() - (attempt.started_at or 0.0)) * 1000)
        self._release(attempt.replica)
        if attempt.over:
            self._late(live, attempt, error)
            return
        if error is None:
            checked, problem = validate(live.spec.expect, output)
            if checked is not None:
                self._succeed(live, attempt, checked)
                return
            reason, kind, detail = FailureReason.SCHEMA, None, problem
        else:
            reason, kind, detail = classify(error)
        if reason is FailureReason.AGENT_DIED:
            self.pool.remove(attempt.replica)
        attempt.over = True
        self.failed(live, attempt, reason, kind, detail)

    def _release(self, replica: str) -> None:
        self.pool.release(replica)
        self._pump(replica)
        self._pump(group_of(replica))

    def _succeed(self, live: Live, attempt: Attempt, output: BaseModel) -> None:
        attempt.over = True
        live.history.append(self._record(live, attempt, "succeeded"))
        self.metrics.attempt(group_of(attempt.replica or attempt.target), "succeeded")
        self.finish(live, output=output)

    def _late(self, live: Live, attempt: Attempt, error: BaseException | None) -> None:
        outcome = "succeeded" if error is None else classify(error)[0].value
        record = self._record(live, attempt, f"late:{outcome}", str(error or ""))
        self.metrics.late_result()
        if self.live.get(live.spec.subtask_id) is live:
            live.history.append(record)
        self.store.stage_late(live.spec.subtask_id, record)
        self.store.stage_event(self._wall(), "late_result", live.spec.subtask_id, record.to_dict())
        self.spawn(self.store.commit())

    # -- failures --------------------------------------------------------------------

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
            due = self.clock.monotonic() + delay
            heapq.heappush(self._due, (due, next(self._seq), live.spec.subtask_id))

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

    # -- finishing -------------------------------------------------------------------

    def finish(
        self, live: Live, *, output: BaseModel | None = None, reason: str = "", detail: str = ""
    ) -> None:
        """Make the outcome final: store it with its handoff record, then tell waiters."""
        sid, spec = live.spec.subtask_id, live.spec
        self.live.pop(sid, None)
        state = "done" if output is not None else "failed"
        attempts = tuple(live.history)
        error = None if output is not None else SubtaskFailedError(sid, reason, detail, attempts)
        at = self._wall()
        self.store.stage_finish(
            {"id": sid, "state": state, "reason": reason or None, "detail": detail,
             "output": None if output is None else dumps(output),
             "attempts": attempts, "at": at},
            {"subtask_id": sid, "status": state, "stage": spec.stage,
             "output_ref": f"supervisor.sqlite:subtasks/{sid}" if output is not None else None,
             "next_stage": spec.next_stage, "trace_id": spec.envelope.trace_id, "at": at},
        )  # fmt: skip
        self.metrics.finished(state, reason or "ok")
        self.on_finished(spec)
        done: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._finishing[sid] = done
        self.spawn(self._publish(live, Outcome(sid, output, error), done))

    def on_finished(self, spec: SubtaskSpec) -> None:
        """Hook for what follows a finished subtask (the pipeline arms its next stage)."""

    def signal_stage(self, stage: str | None) -> None:
        """Hook: a subtask of ``stage`` was submitted."""

    async def _publish(self, live: Live, outcome: Outcome, done: asyncio.Future[Outcome]) -> None:
        try:
            await self.store.commit()
        except Exception as error:
            for waiter in (*live.waiters, done):
                if not waiter.done():
                    waiter.set_exception(error)
        else:
            for waiter in (*live.waiters, done):
                if not waiter.done():
                    waiter.set_result(outcome)
        self._finishing.pop(outcome.subtask_id, None)

    # -- timers ----------------------------------------------------------------------

    def tick(self) -> None:
        """Fail attempts past a deadline and start retries that are due, as of now."""
        now = self.clock.monotonic()
        while self._timers and self._timers[0][0] <= now:
            _, _, sid, number = heapq.heappop(self._timers)
            live = self.live.get(sid)
            attempt = None if live is None else live.current
            if live is None or attempt is None or attempt.number != number or attempt.over:
                continue
            self._check_expiry(live, attempt, now)
        while self._due and self._due[0][0] <= now:
            _, _, sid = heapq.heappop(self._due)
            live = self.live.get(sid)
            if live is not None and live.state == "retrying":
                self._start_attempt(live)
        if len(self._timers) > 2 * len(self.live) + 64:
            self._compact_timers()

    def _check_expiry(self, live: Live, attempt: Attempt, now: float) -> None:
        expiry = next_expiry(
            live.spec.deadlines, queued_at=attempt.queued_at, started_at=attempt.started_at,
            last_heartbeat_at=attempt.heartbeat_at,
        )  # fmt: skip
        if expiry is None:
            return
        if expiry.at > now:
            heapq.heappush(
                self._timers, (expiry.at, next(self._seq), live.spec.subtask_id, attempt.number)
            )
            return
        self.expire(
            live, attempt, FailureReason(expiry.reason.value), f"missed {expiry.reason.value}"
        )

    def _arm(self, live: Live, attempt: Attempt) -> None:
        expiry = next_expiry(
            live.spec.deadlines, queued_at=attempt.queued_at, started_at=attempt.started_at
        )
        if expiry is not None:
            entry = (expiry.at, next(self._seq), live.spec.subtask_id, attempt.number)
            heapq.heappush(self._timers, entry)

    def _compact_timers(self) -> None:
        kept = []
        for entry in self._timers:
            live = self.live.get(entry[2])
            if live is not None and live.current is not None and live.current.number == entry[3]:
                kept.append(entry)
        heapq.heapify(kept)
        self._timers = kept

    # -- small helpers ---------------------------------------------------------------

    def heartbeat(self, subtask_id: str, span_id: str) -> bool:
        """Note a heartbeat of the running attempt with ``span_id``; False if it is not
        the current attempt (a superseded attempt's heartbeat keeps nothing alive)."""
        live = self.live.get(subtask_id)
        attempt = None if live is None else live.current
        if attempt is None or attempt.over or attempt.span_id != span_id:
            return False
        attempt.heartbeat_at = self.clock.monotonic()
        return True

    def status_of(self, subtask_id: str) -> SubtaskStatus:
        """Where the subtask stands, from memory or from storage."""
        live = self.live.get(subtask_id)
        if live is not None:
            return SubtaskStatus(
                subtask_id=subtask_id, state=live.state, target=live.target,
                attempts=tuple(live.history),
                heartbeat_at=None if live.current is None else live.current.heartbeat_at,
            )  # fmt: skip
        row = self.store.subtask(subtask_id)
        if row is None:
            return SubtaskStatus(subtask_id=subtask_id, state="unknown")
        return SubtaskStatus(
            subtask_id=subtask_id, state=row["state"], target=row["target"],
            reason=row["reason"], attempts=history(row["attempts"]),
        )  # fmt: skip

    def _tracker(self, group: str) -> RestartTracker:
        found = self._trackers.get(group)
        if found is None:
            found = RestartTracker(intensity=self.intensity.get(group, RestartIntensity()))
        return found

    def _record(
        self, live: Live, attempt: Attempt, outcome: str, detail: str = "", kind: str | None = None
    ) -> AttemptRecord:
        return AttemptRecord(
            attempt_id=f"{live.spec.subtask_id}:{attempt.number}", number=attempt.number,
            replica=attempt.replica, outcome=outcome, detail=detail[:2000], error_type=kind,
            at=self._wall(),
        )  # fmt: skip

    def _wall(self) -> float:
        return self.clock.now().timestamp()

    def spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        """Run ``work`` in the background, keeping a reference until it ends."""
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            _log.error("supervisor task failed", exc_info=task.exception())


def dumps(value: Any) -> bytes:
    """Pickle ``value``: plainly when it can be loaded elsewhere (several times faster),
    by value (cloudpickle) when it holds classes defined in ``__main__``."""
    try:
        data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError):
        return bytes(cloudpickle.dumps(value))  # type: ignore[no-untyped-call]
    by_value = b"__main__" in data
    return bytes(cloudpickle.dumps(value)) if by_value else data  # type: ignore[no-untyped-call]


def validate(expect: type[BaseModel] | None, output: Any) -> tuple[BaseModel | None, str]:
    """``output`` checked against ``expect``: (the model, "") or (None, why not)."""
    if output is None:
        return None, "no output"
    if expect is None:
        return (output, "") if isinstance(output, BaseModel) else (None, "not a model")
    data = output.model_dump() if isinstance(output, BaseModel) else output
    try:
        return expect.model_validate(data), ""
    except ValidationError as error:
        return None, f"output does not validate as {expect.__name__}: {error}"


def outcome_of(row: Any) -> Outcome:
    """The outcome stored in a finished subtask's row."""
    if row["state"] == "done":
        return Outcome(row["id"], cloudpickle.loads(row["output"]))
    error = SubtaskFailedError(
        row["id"], row["reason"] or "", row["detail"] or "", history(row["attempts"])
    )
    return Outcome(row["id"], None, error)
