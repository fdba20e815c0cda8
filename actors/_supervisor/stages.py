"""Pipeline stages: a stage named as the next one by a handoff must see a subtask submitted
within its window, or it is reported as a stall (an event, a metric, in the overview)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from runtime import Clock

from .background import Background
from .metrics import Metrics
from .store import SubtaskStore
from .types import SubtaskSpec


@dataclass(slots=True)
class _Stage:
    window: float
    armed_at: float | None = None
    stalled: bool = False


class StageWatcher:
    """The declared stages, when each was armed by a handoff, and which are stalled."""

    def __init__(
        self, store: SubtaskStore, *, clock: Clock, metrics: Metrics, background: Background
    ) -> None:
        self._store = store
        self._clock = clock
        self._metrics = metrics
        self._background = background
        self._stages: dict[str, _Stage] = {}

    def declare(self, name: str, window: float) -> None:
        """Watch stage ``name``: once a handoff names it as the next stage, a subtask of
        it must be submitted within ``window`` seconds, or the stage is a stall."""
        self._stages[name] = _Stage(window)

    def submitted(self, stage: str | None) -> None:
        """A subtask of ``stage`` was submitted: the stage is no longer waited for."""
        found = self._stages.get(stage or "")
        if found is not None:
            found.armed_at, found.stalled = None, False

    def handed_off(self, spec: SubtaskSpec) -> None:
        """A subtask finished: its handoff names ``spec.next_stage``, which now waits."""
        found = self._stages.get(spec.next_stage or "")
        if found is not None and found.armed_at is None:
            found.armed_at = self._clock.monotonic()

    def tick(self, now: float) -> None:
        """Report every armed stage silent past its window at ``now``, once."""
        for name, stage in self._stages.items():
            if stage.armed_at is None or stage.stalled or now - stage.armed_at < stage.window:
                continue
            stage.stalled = True
            self._metrics.stall(name)
            silent = round(now - stage.armed_at, 3)
            self._store.stage_event(
                self._clock.now().timestamp(), "stall", name,
                {"silent_s": silent, "window_s": stage.window},
            )  # fmt: skip
            self._background.spawn(self._store.commit())

    def stalls(self) -> list[dict[str, Any]]:
        """Stages silent past their window, now."""
        now = self._clock.monotonic()
        return [
            {"stage": name, "silent_s": round(now - (s.armed_at or now), 3), "window_s": s.window}
            for name, s in self._stages.items()
            if s.stalled
        ]
