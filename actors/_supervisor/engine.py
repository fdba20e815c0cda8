"""The supervisor's engine as a plain class: subtasks and their attempts.

Every subtask ends ``done`` with an output that validated as its ``expect``, or ``failed``
with a typed reason and its attempt history: nothing disappears. The Ray actor
(``_supervisor_host``) only forwards calls and runs ``tick`` on a timer, so all of this is
tested without Ray, with a fake clock and a fake dispatcher.

Time is the injected clock's: deadlines and backoffs are due at ``clock.monotonic()``
instants and fire on the next ``tick`` at or after them (``_supervisor_timers``). What
follows a failed attempt is in ``_supervisor_plans``; finishing a subtask in
``_supervisor_book``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from dataclasses import replace
from typing import Any

from pydantic import BaseModel
from ray import cloudpickle

from runtime import FailureReason, new_span_id

from .plans import FailurePlans
from .pool import group_of
from .state import Attempt, Live, dumps, validate
from .store import history
from .types import AgentDiedError, Outcome, SubtaskSpec, classify

_log = logging.getLogger(__name__)


class SubtaskEngine(FailurePlans):
    """Submits subtasks, runs their attempts on agent replicas and watches the clock."""

    # -- submitting ------------------------------------------------------------------

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
        self.timers.arm(live.spec.subtask_id, attempt, live.spec.deadlines)
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
            self._drop(replica, str(error))
            self.expire(live, attempt, FailureReason.AGENT_DIED, str(error))
            return
        self.timers.arm(live.spec.subtask_id, attempt, live.spec.deadlines)
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
        if isinstance(error, AgentDiedError):
            self._drop(attempt.replica, str(error))
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
        attempt.over = True
        self.failed(live, attempt, reason, kind, detail)

    def _drop(self, replica: str, why: str) -> None:
        """Forget a dead replica, and fail the attempts queued for it alone (no_agent):
        nothing else would ever start them."""
        self.pool.remove(replica)
        for subtask_id in list(self.pool.queues.get(replica, ())):
            live = self.live[subtask_id]
            assert live.current is not None
            detail = f"replica {replica} is gone: {why}"
            self.expire(live, live.current, FailureReason.NO_AGENT, detail)

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

    # -- timers ----------------------------------------------------------------------

    def tick(self) -> None:
        """Fail attempts past a deadline and start retries that are due, as of now."""
        now = self.clock.monotonic()
        for subtask_id, number in self.timers.due_expiries(now):
            live = self.live.get(subtask_id)
            attempt = None if live is None else live.current
            if live is None or attempt is None or attempt.number != number or attempt.over:
                continue
            expiry = self.timers.passed(subtask_id, attempt, live.spec.deadlines, now)
            if expiry is not None:
                reason = FailureReason(expiry.reason.value)
                self.expire(live, attempt, reason, f"missed {expiry.reason.value}")
        for subtask_id in self.timers.due_retries(now):
            live = self.live.get(subtask_id)
            if live is not None and live.state == "retrying":
                self._start_attempt(live)
        self.timers.compact(self._current, len(self.live))

    def _current(self, subtask_id: str, number: int) -> bool:
        live = self.live.get(subtask_id)
        return live is not None and live.current is not None and live.current.number == number
