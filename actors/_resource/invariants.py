"""Invariants over a resource's whole state, checked by its one writer on every write.

``@invariant`` marks a method ``(self, state) -> bool`` of a ``Resource``. After a write
has changed the state, and before it is recorded, every invariant runs on a read-only
view of the whole new state; if one returns anything but True (or raises), the write's
changes are undone and it is refused with ``InvariantViolationError``, whoever sent it,
and logged as a rejection (reason ``invariant``). Because the single writer applies
writes one at a time, agents writing in parallel cannot each pass the check and
together break it. An invariant must not change the state; it costs what it reads, on
every write.
"""

from __future__ import annotations

from collections.abc import Callable
from types import MappingProxyType
from typing import Any, TypeVar

from runtime import (
    InvalidArgumentError,
    InvariantViolationError,
    StaleContextError,
    UnauthorizedWriterError,
)

F = TypeVar("F", bound=Callable[..., Any])
_INVARIANT_ATTR = "__agentcast_invariant__"
_CACHE_ATTR = "__agentcast_invariants__"


def invariant(fn: F) -> F:
    """Mark ``(self, state) -> bool`` as an invariant of the resource's whole state: a
    write after which it is not True is refused (``InvariantViolationError``)."""
    setattr(fn, _INVARIANT_ATTR, True)
    return fn


def invariants(cls: type) -> tuple[tuple[str, Callable[..., Any]], ...]:
    """The ``@invariant`` methods of ``cls``, by name, cached on the class."""
    cached: tuple[tuple[str, Callable[..., Any]], ...] | None = cls.__dict__.get(_CACHE_ATTR)
    if cached is None:
        cached = tuple(
            (name, fn)
            for name in sorted(dir(cls))
            if getattr(fn := getattr(cls, name, None), _INVARIANT_ATTR, False) and callable(fn)
        )
        setattr(cls, _CACHE_ATTR, cached)
    return cached


def check_invariants(resource: Any, name: str, op: str, state: dict[Any, Any]) -> None:
    """Run every invariant of ``resource`` on ``state`` (after the write ``op``).

    Raises:
        InvariantViolationError: an invariant returned anything but True, or raised.
    """
    view = MappingProxyType(state)
    for invariant_name, fn in invariants(type(resource)):
        try:
            holds = fn(resource, view) is True
        except Exception:  # an invariant that cannot be evaluated does not hold
            holds = False
        if not holds:
            raise InvariantViolationError(name, op, invariant_name)


def refusal_reason(error: BaseException) -> str:
    """The audit reason of a write whose method (or an invariant after it) raised."""
    if isinstance(error, InvariantViolationError):
        return "invariant"
    if isinstance(error, StaleContextError):  # an append to the decision log on a stale reading
        return "stale_context"
    if isinstance(error, UnauthorizedWriterError):  # a decision recorded under another name
        return "unauthorized"
    return "invalid" if isinstance(error, InvalidArgumentError) else "raised"
