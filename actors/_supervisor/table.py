"""The subtask table: every unfinished subtask in memory, its whole story in storage.

It owns what is durable about a subtask: its row when submitted, its progress, its
escalation, its late results, and its end (the outcome stored with its handoff record,
then its waiters told). Attempts are run by ``AttemptEngine`` (``attempts.py``).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

from pydantic import BaseModel
from ray import cloudpickle

from policies import Provenance
from runtime import (
    AttemptRecord,
    Clock,
    ConfigurationError,
    FailureReason,
    InvalidArgumentError,
    SubtaskFailedError,
)

from .background import Background
from .metrics import Metrics
from .spans import attempt_span, subtask_span
from .state import Attempt, Live, dumps, outcome_of, readable, validate
from .store import SubtaskStore, history
from .types import Outcome, SubtaskSpec, SubtaskStatus

_log = logging.getLogger(__name__)


def _commit_pauses() -> Iterator[float]:
    """Pauses between attempts to store an outcome: 50 ms doubling to 2 s, for ever."""
    pause = 0.05
    while True:
        yield pause
        pause = min(2.0, pause * 2)


class SubtaskTable:
    """Live subtasks by id, their waiters, and their rows in ``store``.

    Args:
        store: the durable record.
        clock: the wall-clock time of records.
        metrics: counts finished subtasks.
        background: runs commits and the publishing of outcomes.
        on_finished: told of every finished subtask and its output (None if it failed).
    """

    def __init__(
        self,
        store: SubtaskStore,
        *,
        clock: Clock,
        metrics: Metrics,
        background: Background,
        on_finished: Callable[[SubtaskSpec, BaseModel | None], None],
    ) -> None:
        self.store = store
        self.live: dict[str, Live] = {}
        self._clock = clock
        self._metrics = metrics
        self._background = background
        self._on_finished = on_finished
        self._finishing: dict[str, asyncio.Future[Outcome]] = {}
        self._storing: dict[str, asyncio.Future[None]] = {}

    # -- entering --------------------------------------------------------------------

    def admit(self, spec: SubtaskSpec) -> Live | None:
        """Hold a new subtask and stage its row (``stored`` commits it); None if the id is
        known, live, finishing or finished."""
        sid = spec.subtask_id
        if sid in self.live or sid in self._finishing or self.store.known(sid):
            return None
        live = Live(spec=spec, target=spec.to, history=[], created=self._wall())
        self.live[sid] = live
        self._storing[sid] = asyncio.get_running_loop().create_future()
        self.store.stage_new({
            "id": sid, "trace_id": spec.envelope.trace_id, "parent": spec.parent,
            "target": spec.to, "state": "queued", "spec": dumps(spec), "created": live.created,
            "message": readable(spec.message),
        })  # fmt: skip
        return live

    async def stored(self, live: Live) -> bool:
        """Commit an admitted subtask's row; whether it is still live (not cancelled while
        committing).

        Raises:
            StorageError: it could not be stored; it is no longer held.
        """
        sid = live.spec.subtask_id
        storing = self._storing[sid]
        try:
            await self.store.commit()
        except Exception as error:
            del self.live[sid]
            del self._storing[sid]
            storing.set_exception(error)
            storing.exception()  # retrieved: nobody else may be waiting
            raise
        del self._storing[sid]
        storing.set_result(None)
        return self.live.get(sid) is live

    async def being_stored(self, subtask_id: str) -> None:
        """Return once the subtask's row, if it is being stored, is committed.

        Raises:
            StorageError: it could not be stored.
        """
        storing = self._storing.get(subtask_id)
        if storing is not None:
            await asyncio.shield(storing)

    def restore(self) -> list[Live]:
        """Hold every unfinished subtask of storage again; the ones to drive again (all
        but those waiting on a human), each with a ``redriven`` event, committed.

        The attempt that was running when the supervisor stopped stays in the history as
        ``interrupted`` (``Live.interrupted`` keeps it, to follow its result); the next
        attempt takes the next number. A row whose spec no longer loads is quarantined.
        """
        redriven = []
        for row in self.store.unfinished():
            live = self._restored(row)
            if live is None:
                continue
            self.live[live.spec.subtask_id] = live
            if row["state"] == "escalated":
                live.state = "escalated"
                continue
            redriven.append(live)
            self.store.stage_event(
                self._wall(), "redriven", live.spec.subtask_id, {"attempt": live.attempts + 1}
            )
        self.store.commit_now()
        return redriven

    def _restored(self, row: Any) -> Live | None:
        try:
            spec: SubtaskSpec = cloudpickle.loads(row["spec"])
        except Exception as error:  # a class that moved or changed since it was stored
            self.store.stage_quarantine(row["id"], f"{type(error).__name__}: {error}")
            self.store.stage_event(self._wall(), "quarantined", row["id"], {"error": str(error)})
            return None
        past = list(history(row["attempts"]))
        live = Live(spec=spec, target=row["target"], history=past, created=row["created"])
        running = json.loads(row["running"]) if row["running"] else None
        if running is not None and running["number"] not in {a.number for a in past}:
            gone = Attempt(
                number=running["number"], target=row["target"], queued_at=0.0,
                replica=running["replica"], span_id=running["span_id"],
            )  # fmt: skip
            why = "the supervisor restarted" + ("" if gone.replica else " before it was sent")
            past.append(self.record(live, gone, "interrupted", why))
            live.interrupted = gone if gone.replica else None
            self.store.stage_progress(spec.subtask_id, row["state"], row["target"], past)
        live.attempts = max((a.number for a in past), default=0)
        live.failed_on = {a.replica for a in past if a.replica and a.replica != "human"}
        return live

    # -- on the way ------------------------------------------------------------------

    def record(
        self, live: Live, attempt: Attempt, outcome: str, detail: str = "", kind: str | None = None
    ) -> AttemptRecord:
        """The history record of ``attempt`` ending with ``outcome``, as of now (and
        the attempt's span, when tracing is on)."""
        record = AttemptRecord(
            attempt_id=f"{live.spec.subtask_id}:{attempt.number}", number=attempt.number,
            replica=attempt.replica, outcome=outcome, detail=detail[:2000], error_type=kind,
            at=self._wall(),
        )  # fmt: skip
        attempt_span(live, attempt, record, self._clock)
        return record

    def started(self, live: Live, attempt: Attempt) -> None:
        """Stage the attempt about to start (``Live.attempts`` numbers it uniquely), and
        its replica once it has one."""
        self.store.stage_running(
            live.spec.subtask_id,
            {"number": attempt.number, "replica": attempt.replica, "span_id": attempt.span_id},
        )

    def retrying(self, live: Live, target: str) -> None:
        """The subtask's next attempt goes to ``target``; stored in the background."""
        live.target, live.state = target, "retrying"
        self.store.stage_progress(live.spec.subtask_id, "retrying", target, live.history)
        self._background.spawn(self.store.commit())

    def escalate(self, live: Live, handler: str, reason: str, detail: str) -> None:
        """Park the subtask until a human answers; the open escalation is stored."""
        sid = live.spec.subtask_id
        live.state = "escalated"
        self.store.stage_escalation({
            "subtask_id": sid, "handler": handler, "reason": reason, "detail": detail,
            "state": "open", "at": self._wall(),
        })  # fmt: skip
        self.store.stage_progress(sid, "escalated", live.target, live.history)
        self._background.spawn(self.store.commit())

    def late(self, live: Live, record: AttemptRecord) -> None:
        """Keep the result of a superseded attempt in the history and as an event."""
        if self.live.get(live.spec.subtask_id) is live:
            live.history.append(record)
        self.store.stage_late(live.spec.subtask_id, record)
        self.store.stage_event(self._wall(), "late_result", live.spec.subtask_id, record.to_dict())
        self._background.spawn(self.store.commit())

    # -- ending ----------------------------------------------------------------------

    def answer(
        self, subtask_id: str, output: dict[str, Any] | BaseModel | None, reject: str | None
    ) -> str:
        """Answer an escalated subtask: with an output (it is done) or a rejection (it
        fails with reason rejected).

        Returns:
            The subtask's final state.

        Raises:
            ConfigurationError: the subtask is not waiting on an escalation.
            InvalidArgumentError: the output does not validate as the subtask's ``expect``.
        """
        live = self.live.get(subtask_id)
        if live is None or live.state != "escalated":
            raise ConfigurationError(f"subtask {subtask_id!r} is not escalated to a human")
        human = Attempt(number=live.attempts + 1, target="human", queued_at=0.0, replica="human")
        if reject is not None:
            live.history.append(self.record(live, human, FailureReason.REJECTED.value, reject))
            self.store.stage_escalation_closed(subtask_id, "rejected", self._wall())
            self.finish(live, reason=FailureReason.REJECTED.value, detail=reject)
            return "failed"
        checked, problem = validate(live.spec.expect, output)
        if checked is None:
            raise InvalidArgumentError(problem)
        live.history.append(self.record(live, human, "succeeded"))
        self.store.stage_escalation_closed(subtask_id, "answered", self._wall())
        self.finish(live, output=checked, provenance=Provenance.HUMAN)  # an operator's answer
        return "done"

    def cancel(self, live: Live) -> None:
        """Fail the subtask with reason cancelled (its attempt is already stopped)."""
        if live.state == "escalated":
            self.store.stage_escalation_closed(live.spec.subtask_id, "cancelled", self._wall())
        self.finish(live, reason=FailureReason.CANCELLED.value, detail="cancelled by its handle")

    def finish(
        self, live: Live, *, output: BaseModel | None = None, reason: str = "", detail: str = "",
        provenance: Provenance = Provenance.UNVERIFIED_AGENT,
    ) -> None:  # fmt: skip
        """Make the outcome final: store it (an output with the mark believed of it) with
        its handoff record, then tell waiters."""
        sid, spec = live.spec.subtask_id, live.spec
        self.live.pop(sid, None)
        state = "done" if output is not None else "failed"
        attempts = tuple(live.history)
        error = None if output is not None else SubtaskFailedError(sid, reason, detail, attempts)
        at = self._wall()
        row = {
            "id": sid, "state": state, "reason": reason or None, "detail": detail,
            "output": None if output is None else dumps(output), "attempts": attempts, "at": at,
            "output_json": None if output is None else readable(output),
            "provenance": None if output is None else provenance.value,
        }  # fmt: skip
        handoff = {
            "subtask_id": sid, "status": state, "stage": spec.stage,
            "output_ref": f"supervisor.sqlite:subtasks/{sid}" if output is not None else None,
            "next_stage": spec.next_stage, "trace_id": spec.envelope.trace_id, "at": at,
        }  # fmt: skip
        self.store.stage_finish(row, handoff)
        self._metrics.finished(state, reason or "ok")
        subtask_span(live, state, reason, at)
        self._on_finished(spec, output)
        done: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._finishing[sid] = done
        outcome = Outcome(sid, output, error, provenance)
        self._background.spawn(self._publish(live, outcome, done, (row, handoff)))

    async def _publish(
        self,
        live: Live,
        outcome: Outcome,
        done: asyncio.Future[Outcome],
        staged: tuple[dict[str, Any], dict[str, Any]],
    ) -> None:
        """Tell the waiters once the outcome is stored: a failed commit is retried (the
        outcome staged again) until it succeeds, so nobody learns an outcome that a
        restart could replace, and the subtask stays joinable meanwhile."""
        for pause in _commit_pauses():
            try:
                await self.store.commit()
                break
            except Exception as error:
                _log.warning("storing the outcome of %s failed: %s", outcome.subtask_id, error)
                await asyncio.sleep(pause)  # the disk, not the supervisor's clock, recovers
                self.store.stage_finish(*staged)
        for waiter in (*live.waiters, done):
            if not waiter.done():
                waiter.set_result(outcome)
        self._finishing.pop(outcome.subtask_id, None)

    # -- reading ---------------------------------------------------------------------

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
        if row["finished"] is None:  # never read an unfinished row as an outcome
            raise ConfigurationError(
                f"subtask {subtask_id!r} is {row['state']} and not driven: {row['detail'] or ''}"
            )
        return outcome_of(row)

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
            reason=row["reason"], attempts=history(row["attempts"]), detail=row["detail"] or "",
        )  # fmt: skip

    def _wall(self) -> float:
        return self._clock.now().timestamp()
