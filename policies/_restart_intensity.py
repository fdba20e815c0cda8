"""Restart intensity of an agent group, Erlang-style: at most R restarts within T."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True, slots=True, kw_only=True)
class RestartIntensity:
    """How often a group may restart before its supervisor stops restarting it.

    As in Erlang/OTP, the intensity is exceeded when more than ``max_restarts`` restarts
    fall within any span of ``within``: a group that keeps crashing is escalated instead of
    being restarted forever.

    Attributes:
        max_restarts: restarts tolerated within ``within``; 0 tolerates none. Default 3.
        within: the sliding window the restarts are counted over; positive. Default
            5 seconds.
    """

    max_restarts: int = 3
    within: timedelta = timedelta(seconds=5)

    def __post_init__(self) -> None:
        if self.max_restarts < 0:
            raise ValueError(
                f"RestartIntensity.max_restarts must not be negative, got {self.max_restarts}"
            )
        if self.within <= timedelta(0):
            raise ValueError(f"RestartIntensity.within must be positive, got {self.within!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class RestartTracker:
    """The recent restarts of one group: an immutable value, replaced on every restart.

    A restart at ``t`` counts at ``now`` while ``now - t <= within`` (inclusive, as OTP).
    Only the latest ``max_restarts + 1`` restarts are kept: older ones cannot change the
    verdict, so the tracker stays small.

    Attributes:
        intensity: the bound. Default ``RestartIntensity()``.
        restarts: instants of the kept restarts, oldest first, in monotonic seconds.
            Default empty.
    """

    intensity: RestartIntensity = RestartIntensity()
    restarts: tuple[float, ...] = ()

    def record(self, now: float) -> RestartTracker:
        """The tracker after a restart at ``now``.

        Raises:
            ValueError: ``now`` is not finite or is before the latest recorded restart.
        """
        self._check_now(now)
        kept = (*self._in_window(now), now)
        return RestartTracker(
            intensity=self.intensity, restarts=kept[-(self.intensity.max_restarts + 1) :]
        )

    def exceeded(self, now: float) -> bool:
        """Whether more than ``max_restarts`` restarts fall within ``within`` of ``now``.

        Raises:
            ValueError: ``now`` is not finite or is before the latest recorded restart.
        """
        self._check_now(now)
        return len(self._in_window(now)) > self.intensity.max_restarts

    def _in_window(self, now: float) -> tuple[float, ...]:
        window = self.intensity.within.total_seconds()
        return tuple(t for t in self.restarts if now - t <= window)

    def _check_now(self, now: float) -> None:
        if not math.isfinite(now):
            raise ValueError(f"now must be finite, got {now!r}")
        if self.restarts and now < self.restarts[-1]:
            raise ValueError(f"now {now} is before the latest restart {self.restarts[-1]}")
