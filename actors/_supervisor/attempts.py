"""The attempt engine: starts each attempt of a subtask on a free agent replica, awaits its
result, holds it to its phase deadlines, and carries out what the planner decides after a
failure. A result that comes after its attempt was failed or superseded is late: it is
recorded and discarded.

Time is the injected clock's: deadlines and backoffs are due at ``clock.monotonic()``
instants and fire on the next ``tick`` at or after them (``timers.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from dataclasses import replace
from typing import Any

from pydantic import BaseModel

from policies import AbandonTask, EscalateTo, FailureAction, Provenance, RerouteTo
from runtime import Clock, ConfigurationError, FailureReason, new_span_id

from .background import Background, shutting_down
from .metrics import Metrics
from .planner import FailurePlanner
from .pool import Pool, group_of
from .restarts import ReplicaRestarts
from .state import Attempt, Live, validate
from .table import SubtaskTable
from .timers import Timers
from .types import AgentDiedError, Dispatcher, classify
from .verification import OutputGate

_PHASES = (FailureReason.QUEUE_TIMEOUT, FailureReason.DEADLINE, FailureReason.HEARTBEAT_TIMEOUT)
_log = logging.getLogger(__name__)


class AttemptEngine:
    """Runs the attempts of the table's live subtasks on the pool's replicas."""

    def __init__(
        self,
        table: SubtaskTable,
        pool: Pool,
        timers: Timers,
        planner: FailurePlanner,
        dispatcher: Dispatcher,
        *,
        clock: Clock,
        metrics: Metrics,
        background: Background,
        gate: OutputGate,
    ) -> None:
        self.gate = gate
        self._table = table
        self._pool = pool
        self._timers = timers
        self._planner = planner
        self._dispatcher = dispatcher
        self._clock = clock
        self._metrics = metrics
        self._background = background
        self._discovering: set[str] = set()
        self.restarts = ReplicaRestarts(
            pool, planner, dispatcher, table.store, clock=clock, background=background,
            on_back=self._back, on_lost=self._lost,
        )  # fmt: skip

    # -- starting --------------------------------------------------------------------

    def prepare(self, live: Live) -> Attempt:
        """Number the subtask's next attempt and stage it as about to start, so that its
        number is durable with the next commit (a submit's commit, for a first one)."""
        live.attempts += 1
        attempt = Attempt(
            number=live.attempts, target=live.target, queued_at=self._clock.monotonic(),
            span_id=new_span_id(),
        )  # fmt: skip
        live.current, live.state = attempt, "queued"
        self._table.started(live, attempt)
        return attempt

    def watch(self, live: Live, attempt: Attempt) -> None:
        """Arm a prepared attempt's deadlines before it is queued: one due while its subtask
        is stored fires at that tick (a clock moved by hand may make no later one)."""
        self._timers.arm(live.spec.subtask_id, attempt, live.spec.deadlines)

    def start(self, live: Live, *, prepared: bool = False) -> None:
        """Queue the subtask's next attempt for its target and start what can start;
        ``prepared``: it is ``live.current``, prepared and committed already."""
        attempt = live.current if prepared else self.prepare(live)
        assert attempt is not None
        attempt.recorded = prepared
        self._pool.enqueue(live.target, live.spec.subtask_id)
        self._timers.arm(live.spec.subtask_id, attempt, live.spec.deadlines)
        self._pump(live.target)

    def _pump(self, target: str) -> None:
        if not self._pool.queues.get(target):
            return
        if not self._reachable(target):
            self._discover(group_of(target))  # it may have come (back) since
            return
        for subtask_id, replica in self._pool.next_assignments(target, self._avoided):
            self._dispatch(self._table.live[subtask_id], replica)

    def _reachable(self, target: str) -> bool:
        """Whether ``target`` has a replica to wait for: alive, or being restarted."""
        alive = target in self._pool.replicas if ":" in target else self._pool.known(target)
        return alive or self.restarts.waited_for(target)

    def _avoided(self, subtask_id: str) -> frozenset[str]:
        return frozenset(self._table.live[subtask_id].failed_on)

    def _discover(self, group: str) -> None:
        if group not in self._discovering:
            self._discovering.add(group)
            self._background.spawn(self._discover_now(group))

    async def _discover_now(self, group: str) -> None:
        """Look the group's replicas up; a queue whose target is not among them fails
        no_agent at once (each subtask then follows its plan)."""
        try:
            infos = await self._dispatcher.replicas(group)
        except Exception as error:
            _log.warning("discovering agent %s failed: %s", group, error)
            infos = []
        self._discovering.discard(group)
        self._pool.add(group, infos)
        for target in [t for t in self._pool.queues if group_of(t) == group]:
            if self._reachable(target):
                self._pump(target)
            else:
                self._fail_queue(target, f"no live replica of {target}")

    def _fail_queue(self, target: str, detail: str) -> None:
        for subtask_id in list(self._pool.queues.get(target, ())):
            live = self._table.live[subtask_id]
            assert live.current is not None
            self.expire(live, live.current, FailureReason.NO_AGENT, detail)

    def _dispatch(self, live: Live, replica: str) -> None:
        attempt = live.current
        assert attempt is not None
        now = self._clock.monotonic()
        attempt.replica, attempt.started_at = replica, now
        attempt.generation = self._pool.generation(replica) or 0
        live.state = "running"
        self._metrics.queued_ms((now - attempt.queued_at) * 1000)
        self._table.started(live, attempt)  # its replica, to follow it after a restart
        self._timers.arm(live.spec.subtask_id, attempt, live.spec.deadlines)
        if attempt.recorded:
            self._background.spawn(self._table.store.commit())
            self._send(live, attempt, replica)
        else:
            self._background.spawn(self._send_once_recorded(live, attempt, replica))

    async def _send_once_recorded(self, live: Live, attempt: Attempt, replica: str) -> None:
        """Send the attempt once its number is stored (so a supervisor that restarts
        numbers the next one after it), unless it ended meanwhile."""
        try:
            await self._table.store.commit()
        except Exception as error:  # the attempt still runs: liveness before history
            _log.warning("the start of %s was not stored: %s", live.spec.subtask_id, error)
        if attempt.over:
            attempt.returned = True
            self._release(replica, attempt.generation)
            return
        self._send(live, attempt, replica)

    def _send(self, live: Live, attempt: Attempt, replica: str) -> None:
        envelope = replace(
            live.spec.envelope, span_id=attempt.span_id, parent_span_id=live.spec.envelope.span_id
        )
        try:
            result, attempt.cancel = self._dispatcher.send(replica, live.spec.message, envelope)
        except Exception as error:
            attempt.returned = True
            self._pool.release(replica, attempt.generation)
            self._drop(replica, attempt.generation, str(error))
            self.expire(live, attempt, FailureReason.AGENT_DIED, str(error))
            return
        self._background.spawn(self._await_attempt(live, attempt, result))

    def follow(self, live: Live) -> None:
        """Record, as late, the result of the attempt that ran when an earlier supervisor
        stopped (its replica keeps it)."""
        gone = live.interrupted
        if gone is not None and gone.replica is not None:
            gone.over = True
            self._background.spawn(self._follow(live, gone, gone.replica))

    async def _follow(self, live: Live, gone: Attempt, replica: str) -> None:
        error: BaseException | None = None
        try:
            await self._dispatcher.follow(replica, gone.span_id)
        except ConfigurationError:
            return  # the replica does not know it: it never started, nothing to record
        except BaseException as raised:
            error = raised
        self._late(live, gone, error)

    # -- results ---------------------------------------------------------------------

    async def _await_attempt(self, live: Live, attempt: Attempt, result: Awaitable[Any]) -> None:
        error: BaseException | None = None
        output: Any = None
        try:
            output = await result
        except BaseException as raised:  # the agent's error, its death or a cancellation
            if shutting_down():
                raise
            error = raised
        assert attempt.replica is not None
        attempt.returned = True
        self._metrics.ran_ms((self._clock.monotonic() - (attempt.started_at or 0.0)) * 1000)
        if isinstance(error, AgentDiedError):
            self._drop(attempt.replica, attempt.generation, str(error))
        self._release(attempt.replica, attempt.generation)
        if attempt.over:
            self._late(live, attempt, error)
            return
        if error is None:
            output, mark = self.gate.rules.believed(attempt.replica, output)
            checked, problem = validate(live.spec.expect, output)
            if checked is not None:  # released now, or once its stage's verifier passed it
                self.gate.accept(live, attempt, checked, mark, self._succeed, self.failed)
                return
            reason, kind, detail = FailureReason.SCHEMA, None, problem
        else:
            reason, kind, detail = classify(error)
        attempt.over = True
        self.failed(live, attempt, reason, kind, detail)

    def _drop(self, replica: str, generation: int, why: str) -> None:
        """Forget a dead replica, and fail the attempts queued for it alone (no_agent):
        nothing else would ever start them. A replica being restarted is not dead."""
        if replica in self.restarts.restarting:
            return
        self._pool.remove(replica, generation)
        if replica not in self._pool.replicas:
            self._fail_queue(replica, f"replica {replica} is gone: {why}")

    def _lost(self, replica: str, generation: int, why: str) -> None:
        """A wedged replica not coming back: its group's queue, which waited for it, is
        failed no_agent now if no other replica takes it."""
        self._drop(replica, generation, why)
        self._pump(group_of(replica))

    def _back(self, replica: str) -> None:
        self._pump(replica)
        self._pump(group_of(replica))

    def _release(self, replica: str, generation: int) -> None:
        self._pool.release(replica, generation)
        self._pump(replica)
        self._pump(group_of(replica))

    def _succeed(self, live: Live, attempt: Attempt, output: BaseModel, mark: Provenance) -> None:
        attempt.over = True
        live.history.append(self._table.record(live, attempt, "succeeded"))
        self._metrics.attempt(group_of(attempt.replica or attempt.target), "succeeded")
        self._table.finish(live, output=output, provenance=mark)

    def _late(self, live: Live, attempt: Attempt, error: BaseException | None) -> None:
        outcome = "succeeded" if error is None else classify(error)[0].value
        self._metrics.late_result()
        self._table.late(
            live, self._table.record(live, attempt, f"late:{outcome}", str(error or ""))
        )

    # -- failures --------------------------------------------------------------------

    def expire(self, live: Live, attempt: Attempt, reason: FailureReason, detail: str) -> None:
        """Fail the attempt now, whatever it is doing: a running one is cancelled and must
        let go of its replica within its grace; a result it sends later is late."""
        self._stop(live, attempt)
        if reason in _PHASES:
            self._metrics.deadline_miss(reason.value)
        self.failed(live, attempt, reason, None, detail)

    def failed(
        self, live: Live, attempt: Attempt, reason: FailureReason, kind: str | None, detail: str
    ) -> None:
        """Record the attempt's failure now, then follow the subtask's plan."""
        live.history.append(self._table.record(live, attempt, reason.value, detail, kind))
        live.current, live.state = None, "deciding"
        group = group_of(attempt.replica or attempt.target)
        self._metrics.attempt(group, reason.value)
        if attempt.replica is not None:
            live.failed_on.add(attempt.replica)
            self._planner.restarted(group, reason)
        if self._planner.is_final(live, reason):
            self._table.finish(live, reason=reason.value, detail=detail)
            return
        self._background.spawn(self._follow_plan(live, reason, kind, detail, group))

    async def _follow_plan(
        self, live: Live, reason: FailureReason, kind: str | None, detail: str, group: str
    ) -> None:
        action = await self._planner.decide(live, reason, kind, group)
        if self._table.live.get(live.spec.subtask_id) is not live or live.state != "deciding":
            return  # cancelled while deciding
        self._carry_out(live, action, reason, detail)

    def _carry_out(
        self, live: Live, action: FailureAction, reason: FailureReason, detail: str
    ) -> None:
        if isinstance(action, AbandonTask):
            self._table.finish(
                live, reason=reason.value, detail=f"{detail} [{action.because.value}]"
            )
        elif isinstance(action, EscalateTo):
            live.escalated = True
            if action.to != "human":
                self._schedule(live, action.to, 0.0)
            else:
                why = f"{detail} [{action.because.value}]"
                self._table.escalate(live, action.to, reason.value, why)
        else:
            to = action.to if isinstance(action, RerouteTo) else live.target
            self._schedule(live, to, action.delay.total_seconds())

    def _schedule(self, live: Live, target: str, delay: float) -> None:
        self._table.retrying(live, target)
        if delay <= 0:
            self.start(live)
        else:
            self._timers.retry_at(self._clock.monotonic() + delay, live.spec.subtask_id)

    # -- the clock -------------------------------------------------------------------

    def tick(self, now: float) -> None:
        """Fail attempts past a deadline and start retries that are due at ``now``."""
        for subtask_id, number in self._timers.due_expiries(now):
            live = self._table.live.get(subtask_id)
            attempt = None if live is None else live.current
            if live is None or attempt is None or attempt.number != number or attempt.over:
                continue
            expiry = self._timers.passed(subtask_id, attempt, live.spec.deadlines, now)
            if expiry is not None:
                reason = FailureReason(expiry.reason.value)
                self.expire(live, attempt, reason, f"missed {expiry.reason.value}")
        self.restarts.tick(now)
        for subtask_id in self._timers.due_retries(now):
            live = self._table.live.get(subtask_id)
            if live is not None and live.state == "retrying":
                self.start(live)
        self._timers.compact(self._current, len(self._table.live))

    def _current(self, subtask_id: str, number: int) -> bool:
        live = self._table.live.get(subtask_id)
        return live is not None and live.current is not None and live.current.number == number

    def heartbeat(self, subtask_id: str, span_id: str) -> bool:
        """Note a heartbeat of the running attempt with ``span_id``; False if it is not
        the current attempt (a superseded attempt's heartbeat keeps nothing alive)."""
        live = self._table.live.get(subtask_id)
        attempt = None if live is None else live.current
        if attempt is None or attempt.over or attempt.span_id != span_id:
            return False
        attempt.heartbeat_at = self._clock.monotonic()
        return True

    # -- operators -------------------------------------------------------------------

    def cancel(self, live: Live) -> None:
        """Stop the subtask's attempt (recorded as cancelled) and fail it as cancelled."""
        attempt = live.current
        if attempt is not None:
            self._stop(live, attempt)
            live.history.append(self._table.record(live, attempt, FailureReason.CANCELLED.value))
            live.current = None
        self._table.cancel(live)

    def kill(self, group: str, min_epoch: int) -> int:
        """Stop using ``group``'s replicas below ``min_epoch`` and fail its attempts with
        reason killed (each then follows its plan); how many were failed."""
        self._pool.fence(group, min_epoch)
        victims = [
            (live, live.current)
            for live in list(self._table.live.values())
            if live.current is not None
            and group_of(live.current.replica or live.current.target) == group
        ]
        for live, attempt in victims:
            assert attempt is not None
            self.failed(live, attempt, FailureReason.KILLED, None, f"agent {group} killed")
            self._stop(live, attempt)
        return len(victims)

    def _stop(self, live: Live, attempt: Attempt) -> None:
        attempt.over = True
        if attempt.replica is None:
            self._pool.dequeue(attempt.target, live.spec.subtask_id)
        elif not attempt.returned and attempt.cancel is not None:
            attempt.cancel()
            self.restarts.watch(attempt, live.spec.deadlines.grace.total_seconds())
