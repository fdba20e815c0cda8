"""The supervisor's book of subtasks: what it holds for each unfinished one, and how one
is finished (its outcome stored with its handoff record, then its waiters told).

``SubtaskBook`` is the base of the engine (``_supervisor_engine``), which runs attempts,
and of the failure plans (``_supervisor_plans``), which decide what follows a failed one.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Coroutine
from typing import Any

from pydantic import BaseModel

from policies import RestartIntensity, RestartTracker
from runtime import AttemptRecord, Clock, ConfigurationError, SubtaskFailedError

from .metrics import NoMetrics, SupervisorMetrics
from .pool import Pool
from .state import Attempt, Live, dumps, outcome_of
from .store import SubtaskStore, history
from .timers import Timers
from .types import (
    Dispatcher,
    LocalRetryBudget,
    Outcome,
    RetryBudgetHook,
    SubtaskSpec,
    SubtaskStatus,
)

_log = logging.getLogger(__name__)


class SubtaskBook:
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
        self.timers = Timers()
        self._trackers: dict[str, RestartTracker] = {}
        self._discovering: set[str] = set()
        self._tasks: set[asyncio.Task[Any]] = set()

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
