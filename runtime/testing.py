"""Test doubles: a fake clock and a scripted model. Nothing here waits for real time."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from ._scripted_model import ScriptedCall as ScriptedCall
from ._scripted_model import ScriptedModel as ScriptedModel
from ._scripted_model import ScriptedRule as ScriptedRule
from ._tracing import reset_tracing as reset_tracing
from ._tracing import trace_into as trace_into

__all__ = [
    "FakeClock",
    "ScriptedCall",
    "ScriptedModel",
    "ScriptedRule",
    "reset_tracing",
    "trace_into",
]

_DEFAULT_START = datetime(2025, 1, 1, tzinfo=UTC)


class FakeClock:
    """A ``Clock`` whose time moves only when told: by ``advance`` or by ``sleep``.

    ``sleep`` advances the time at once and yields to the event loop once, so concurrent
    tasks still interleave but no test waits for real time.

    Args:
        start: the wall-clock time at creation, timezone-aware. Default 2025-01-01 UTC.

    Raises:
        ValueError: ``start`` is naive.
    """

    def __init__(self, *, start: datetime = _DEFAULT_START) -> None:
        if start.tzinfo is None:
            raise ValueError("FakeClock needs a timezone-aware start")
        self._start = start.astimezone(UTC)
        self._elapsed = 0.0
        self._slept: list[float] = []

    def now(self) -> datetime:
        """The fake wall-clock time, UTC."""
        return self._start + timedelta(seconds=self._elapsed)

    def monotonic(self) -> float:
        """Fake seconds since the clock was created."""
        return self._elapsed

    @property
    def slept(self) -> tuple[float, ...]:
        """Every ``sleep`` duration asked for, in order, for test assertions."""
        return tuple(self._slept)

    async def sleep(self, seconds: float) -> None:
        """Advance the time by ``seconds`` (negative counts as 0) without waiting."""
        self._slept.append(seconds)
        self.advance(max(0.0, seconds))
        await asyncio.sleep(0)

    def sleep_blocking(self, seconds: float) -> None:
        """Like ``sleep``, for blocking code: advance the time by ``seconds`` at once."""
        self._slept.append(seconds)
        self.advance(max(0.0, seconds))

    def advance(self, by: float | timedelta) -> None:
        """Move the time forward.

        Args:
            by: seconds, or a timedelta.

        Raises:
            ValueError: ``by`` is negative: time never goes back.
        """
        seconds = by.total_seconds() if isinstance(by, timedelta) else float(by)
        if seconds < 0:
            raise ValueError("a clock never goes back")
        self._elapsed += seconds
