"""Large blocks of an actor process go back to the system when they are freed (glibc).

Ray runs every call of an async actor on a fiber of its own, whose stack (about 256 KiB)
one thread allocates with ``malloc``; a call waiting for its turn holds one too. glibc maps a
block that large on its own and unmaps it when it is freed, but then raises its
threshold to the freed block's size (its "dynamic mmap threshold"), so from then on the
stacks are carved from that thread's arena: a burst of N concurrent calls grows the arena
by N stacks, which stay there once freed, and later stacks dirty ever more of its pages
(the supervisor's memory crept up by tens of MB per 10,000 subtasks). Fixing the threshold
at glibc's default keeps every such block mapped on its own. What freed memory the arenas
still keep, ``trim_malloc`` hands back (an actor calls it after each retention pass).

A fixed threshold has a price per call: the fiber's stack is mapped, faulted in and
unmapped on every call, about 100 us of CPU, a tenth of an agent's delivery call. Agent
processes, whose calls are the delivery path, keep the dynamic threshold and trim instead:
``trim_after_call`` at the end of each call trims the arenas ``TRIM_AFTER_S`` later, at
most once in that time, so a burst's stacks go back within seconds of it.
Figures: docs/operations.md, "Memory".
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import sys
from collections.abc import Callable

# mallopt's parameter numbers, from <malloc.h>
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
LARGE_BLOCK = 128 * 1024
"""Blocks of this many bytes or more are mapped on their own, and an arena gives back the
free memory at its end beyond this many bytes (glibc's defaults for both, fixed)."""

_log = logging.getLogger(__name__)


def fix_mmap_threshold() -> bool:
    """Map every block of ``LARGE_BLOCK`` bytes or more on its own, returned to the system
    when it is freed, for the rest of this process; the trim threshold, which the dynamic
    one may have raised already, goes back to its default with it. Never raises (an actor
    calls it from ``__init__``, where an exception would kill it for good).

    Returns:
        Whether the threshold is now fixed: False where the C library is not glibc.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)  # the symbols the process already has
        if not hasattr(libc, "gnu_get_libc_version"):  # another C library (musl)
            return False
        fixed = libc.mallopt(_M_MMAP_THRESHOLD, LARGE_BLOCK)
        return bool(fixed and libc.mallopt(_M_TRIM_THRESHOLD, LARGE_BLOCK))
    except (OSError, AttributeError) as error:
        _log.warning("cannot fix malloc's mmap threshold: %s", error)
        return False


def trim_malloc() -> bool:
    """Give the free memory of every glibc arena back to the system (``malloc_trim(0)``):
    what a burst of work freed but the arenas kept stays resident otherwise. Never
    raises; costs a walk of the arenas (milliseconds), so call it after a periodic pass,
    not per call.

    Returns:
        Whether memory was given back: False where nothing was, or the C library is not
        glibc.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)
        if not hasattr(libc, "malloc_trim"):  # another C library (musl)
            return False
        return bool(libc.malloc_trim(0))
    except (OSError, AttributeError) as error:
        _log.warning("cannot trim malloc's arenas: %s", error)
        return False


TRIM_AFTER_S = 2.0
"""How long after a call ends an agent process trims its arenas (and at most how often)."""


class CallTrim:
    """Trims the arenas ``after_s`` after a call ends, once for all the calls that end in
    that time: a walk of the arenas (``trim_malloc``) every ``after_s`` at most, and
    never while the process is idle."""

    def __init__(self, trim: Callable[[], object] = trim_malloc, after_s: float = TRIM_AFTER_S):
        self._trim, self._after_s, self._due = trim, after_s, False

    def ended(self) -> None:
        """A call ended (on the running event loop): trim soon unless a trim is due."""
        if not self._due:
            asyncio.get_running_loop().call_later(self._after_s, self._run)
            self._due = True  # only once one is scheduled: a refusal must not stop trims

    def _run(self) -> None:
        self._due = False
        self._trim()


_AFTER_CALLS = CallTrim()


def trim_after_call() -> None:
    """Note that a call of this process ended: its arenas are trimmed ``TRIM_AFTER_S``
    later (one trim for every call ending meanwhile). For a process that keeps glibc's
    dynamic threshold (an agent's); call it on the process's event loop.

    Raises:
        RuntimeError: no event loop is running in this thread.
    """
    _AFTER_CALLS.ended()
