"""Time, injected: nothing in agentcast reads the clock directly."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    """What agentcast needs of time. ``runtime.testing.FakeClock`` is the test double."""

    def now(self) -> datetime:
        """Wall-clock time, timezone-aware UTC, for records people read."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin that never goes back, for deadlines."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time."""
        ...

    def sleep_blocking(self, seconds: float) -> None:
        """Block the calling thread for ``seconds`` of this clock's time (blocking
        handles pause with it between tries)."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    # The C function itself, not a method calling it: a leased model call reads it once.
    monotonic = staticmethod(time.monotonic)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def sleep_blocking(self, seconds: float) -> None:
        time.sleep(seconds)
