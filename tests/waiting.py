"""How tests wait: on a condition, always within a bound, never for a number of steps.

``wait_until`` polls from a driver (a Ray test); ``until`` and ``settle`` yield to the event
loop of an asyncio test, where the code under test runs on the same loop as the test.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(condition: Callable[[], T], what: str, limit: float = 60.0) -> T:
    """Poll ``condition`` until it returns something true, and return that.

    Raises:
        AssertionError: it did not within ``limit`` seconds.
    """
    ends = time.monotonic() + limit
    while time.monotonic() < ends:
        if value := condition():
            return value
        time.sleep(0.02)
    raise AssertionError(f"never happened within {limit} s: {what}")


async def until(condition: Callable[[], T], what: str, limit: float = 10.0) -> T:
    """Let the event loop run until ``condition`` returns something true, and return that.

    Raises:
        AssertionError: it did not within ``limit`` seconds.
    """
    ends = time.monotonic() + limit
    while not (value := condition()):
        if time.monotonic() > ends:
            raise AssertionError(f"never happened within {limit} s: {what}")
        await asyncio.sleep(0)
    return value


async def settle(limit: float = 10.0) -> None:
    """Let the event loop run until it has nothing left to run but this test.

    Every other task then waits on something only the test can do (resolve a fake call,
    advance a fake clock), so what the test asserts next, done or not done, is final.

    Raises:
        AssertionError: the loop never went idle within ``limit`` seconds.
    """
    loop = asyncio.get_running_loop()
    ends = time.monotonic() + limit
    while time.monotonic() < ends:
        await asyncio.sleep(0)
        # asyncio keeps the callbacks due on the next turn in ``_ready``: none left means
        # every other task is blocked. There is no public way to ask.
        if not loop._ready:  # type: ignore[attr-defined]
            return
    raise AssertionError(f"the event loop did not go idle within {limit} s")
