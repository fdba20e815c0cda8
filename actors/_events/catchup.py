"""Waiting, inside the dispatcher, until consumer groups have caught up: the caller's
one call returns when every named partition's checkpoint reaches its number, woken by
the checkpoint moves themselves (a driver that asked for the lags in a loop instead paid
a Ray call, a listing of the resource files and a read per resource each round, on the
process it was waiting for)."""

from __future__ import annotations

import asyncio
import math
from typing import Any

from runtime import ConfigurationError, InvalidArgumentError, check_name

from .core import DispatchCore


class CheckpointWatch:
    """Wakes the waiters when a checkpoint moves (the dispatcher calls ``moved`` after
    each move: an acknowledged batch, a dead letter, a replay, a forgotten group)."""

    def __init__(self) -> None:
        self._bell = asyncio.Event()

    def moved(self) -> None:
        bell, self._bell = self._bell, asyncio.Event()
        bell.set()

    async def until_caught_up(
        self, core: DispatchCore, targets: dict[str, int], groups: list[str], timeout_s: float
    ) -> None:
        """Return once no partition of ``groups`` on ``targets``' resources is behind
        its resource's number (a forgotten group no longer counts).

        Raises:
            TimeoutError: still behind after ``timeout_s``; names the partitions.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while late := core.behind(targets, groups):
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"still behind after {timeout_s} s: {late}")
            bell = self._bell  # taken before waiting: a move after the check rings it
            try:
                await asyncio.wait_for(bell.wait(), remaining)
            except TimeoutError:
                continue  # checked once more, then raised


def check_wait(
    core: DispatchCore, upto: Any, groups: Any, timeout_s: Any
) -> tuple[dict[str, int], list[str]]:
    """The resources' numbers and the groups a wait is for, from the caller's arguments
    (``upto`` None: every resource's newest event number now; ``groups`` None: every
    registered group).

    Raises:
        InvalidArgumentError: ``upto`` is not a mapping of resource names to ints >= 0,
            ``groups`` not a list of names, or ``timeout_s`` not a number > 0.
        ConfigurationError: a group of ``groups`` is not registered.
    """
    if type(timeout_s) not in (int, float) or not 0 < timeout_s < math.inf:
        raise InvalidArgumentError(f"a wait lasts a number of seconds > 0, not {timeout_s!r}")
    if upto is None:
        upto = {resource: core.last_seq(resource) for resource in core.resources()}
    if not isinstance(upto, dict) or not all(_is_target(r, n) for r, n in upto.items()):
        raise InvalidArgumentError(f"a wait names resources and event numbers >= 0, not {upto!r}")
    if groups is None:
        groups = sorted(core.groups)
    if not isinstance(groups, list | tuple) or not all(isinstance(g, str) for g in groups):
        raise InvalidArgumentError(f"a wait names consumer groups, not {groups!r}")
    unknown = [group for group in groups if group not in core.groups]
    if unknown:
        raise ConfigurationError(f"no consumer group {unknown[0]!r}")
    return dict(upto), list(groups)


def _is_target(resource: Any, seq: Any) -> bool:
    try:
        check_name("resource", resource)
    except Exception:
        return False
    return type(seq) is int and seq >= 0
