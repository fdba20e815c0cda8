"""The supervisor as a plain class: the subtask engine plus what operators do with it:
cancel, kill an agent, answer escalations, watch pipeline stages for stalls.

Tested without Ray (``tests/test_supervisor_core.py``) with a fake clock and dispatcher.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from policies import RestartIntensity
from runtime import ConfigurationError, FailureReason, InvalidArgumentError

from .engine import SubtaskEngine
from .pool import group_of
from .state import Attempt, Live, validate
from .types import SubtaskSpec


@dataclass(slots=True)
class _Stage:
    window: float
    armed_at: float | None = None
    stalled: bool = False


class SupervisorCore(SubtaskEngine):
    """Every subtask held to a deadline and an output schema; see ``SubtaskEngine``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._stages: dict[str, _Stage] = {}

    def configure_group(self, group: str, intensity: RestartIntensity) -> None:
        """Set the restart intensity of an agent group (default ``RestartIntensity()``)."""
        self.intensity[group] = intensity
        self._trackers.pop(group, None)
        self.failed_groups.discard(group)

    # -- cancel and kill -------------------------------------------------------------

    async def cancel(self, subtask_id: str) -> bool:
        """Fail the subtask with reason cancelled and cancel its running attempt.

        Returns:
            False if it was already final (or unknown).
        """
        live = self.live.get(subtask_id)
        if live is None:
            return False
        attempt = live.current
        if attempt is not None:
            self._stop(live, attempt)
            live.history.append(self._record(live, attempt, FailureReason.CANCELLED.value))
            live.current = None
        if live.state == "escalated":
            self.store.stage_escalation_closed(subtask_id, "cancelled")
        self.finish(live, reason=FailureReason.CANCELLED.value, detail="cancelled by its handle")
        return True

    async def kill_agent(self, group: str, min_epoch: int) -> dict[str, Any]:
        """Stop using ``group``'s replicas below ``min_epoch`` and fail its attempts with
        reason killed (each then follows its plan: rerouted, escalated or abandoned).

        Returns:
            What was done, as stored in the audit event.
        """
        self.pool.fence(group, min_epoch)
        victims = [
            (live, live.current)
            for live in list(self.live.values())
            if live.current is not None
            and group_of(live.current.replica or live.current.target) == group
        ]
        for live, attempt in victims:
            assert attempt is not None
            self.failed(live, attempt, FailureReason.KILLED, None, f"agent {group} killed")
            self._stop(live, attempt)
        detail = {"agent": group, "epoch": min_epoch, "attempts_failed": len(victims)}
        self.store.stage_event(self._wall(), "kill", group, detail)
        await self.store.commit()
        return detail

    def _stop(self, live: Live, attempt: Attempt) -> None:
        attempt.over = True
        if attempt.replica is None:
            self.pool.dequeue(attempt.target, live.spec.subtask_id)
        elif attempt.cancel is not None:
            attempt.cancel()

    # -- escalations -----------------------------------------------------------------

    async def answer(
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
            live.history.append(self._record(live, human, FailureReason.REJECTED.value, reject))
            self.store.stage_escalation_closed(subtask_id, "rejected")
            self.finish(live, reason=FailureReason.REJECTED.value, detail=reject)
            return "failed"
        checked, problem = validate(live.spec.expect, output)
        if checked is None:
            raise InvalidArgumentError(problem)
        live.history.append(self._record(live, human, "succeeded"))
        self.store.stage_escalation_closed(subtask_id, "answered")
        self.finish(live, output=checked)
        return "done"

    # -- pipeline stages -------------------------------------------------------------

    def declare_stage(self, name: str, window: float) -> None:
        """Watch stage ``name``: once a handoff names it as the next stage, a subtask of
        it must be submitted within ``window`` seconds, or the stage is a stall."""
        self._stages[name] = _Stage(window)

    def signal_stage(self, stage: str | None) -> None:
        found = self._stages.get(stage or "")
        if found is not None:
            found.armed_at, found.stalled = None, False

    def on_finished(self, spec: SubtaskSpec) -> None:
        found = self._stages.get(spec.next_stage or "")
        if found is not None and found.armed_at is None:
            found.armed_at = self.clock.monotonic()

    def tick(self) -> None:
        super().tick()
        now = self.clock.monotonic()
        for name, stage in self._stages.items():
            if stage.armed_at is None or stage.stalled or now - stage.armed_at < stage.window:
                continue
            stage.stalled = True
            self.metrics.stall(name)
            silent = round(now - stage.armed_at, 3)
            self.store.stage_event(
                self._wall(), "stall", name, {"silent_s": silent, "window_s": stage.window}
            )
            self.spawn(self.store.commit())

    def stalls(self) -> list[dict[str, Any]]:
        """Stages silent past their window, now."""
        now = self.clock.monotonic()
        return [
            {"stage": name, "silent_s": round(now - (s.armed_at or now), 3), "window_s": s.window}
            for name, s in self._stages.items()
            if s.stalled
        ]

    # -- overview --------------------------------------------------------------------

    def overview(self) -> dict[str, Any]:
        """What ``agentcast status`` prints: subtasks by state, replicas, failed groups,
        open escalations and stalls."""
        states: dict[str, int] = {}
        for live in self.live.values():
            states[live.state] = states.get(live.state, 0) + 1
        return {
            "live": states,
            "stored": self.store.counts(),
            "replicas": {
                n: f"{r.busy}/{r.capacity}" for n, r in sorted(self.pool.replicas.items())
            },
            "failed_groups": sorted(self.failed_groups),
            "open_escalations": len(self.store.escalations()),
            "stalls": self.stalls(),
        }
