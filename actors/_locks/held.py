"""The leases held where code runs: a context variable of (key, fencing token) pairs, set
by a lease's block and read by resource handles when they stamp a write."""

from __future__ import annotations

from contextvars import ContextVar

HeldTokens = tuple[tuple[str, int], ...]
HELD: ContextVar[HeldTokens] = ContextVar("agentcast_leases", default=())


def held_tokens() -> HeldTokens:
    """The (key, token) pairs of every lease held by the running task or thread."""
    return HELD.get()
