"""Calls to the supervisor that wait out its restart, as ``SubtaskHandle.result`` does."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import ray
from ray.exceptions import ActorUnavailableError, RayActorError

GONE = (RayActorError, ActorUnavailableError)
RECONNECT_S = 60.0
PAUSE_S = 0.05


def call_through_restarts(call: Callable[[], Any]) -> Any:
    """``ray.get(call())``, sent again while the supervisor restarts (up to a minute).

    Raises:
        RayActorError: the supervisor stayed away longer.
    """
    gone_since: float | None = None
    while True:
        try:
            return ray.get(call())
        except GONE:
            gone_since = gone_since or time.monotonic()
            if time.monotonic() - gone_since > RECONNECT_S:
                raise
            time.sleep(PAUSE_S)


async def await_through_restarts(call: Callable[[], Awaitable[Any]]) -> Any:
    """``await call()``, sent again while the supervisor restarts (up to a minute).

    Raises:
        RayActorError: the supervisor stayed away longer.
    """
    loop = asyncio.get_running_loop()
    gone_since: float | None = None
    while True:
        try:
            return await call()
        except GONE:
            gone_since = gone_since or loop.time()
            if loop.time() - gone_since > RECONNECT_S:
                raise
            await asyncio.sleep(PAUSE_S)
