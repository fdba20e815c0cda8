"""``@validate``: an agent's within-transaction validators, and how a replica runs one.

A validator is ``async def name(self, event: EventType) -> Veto | None``. The resource whose
write would emit ``EventType`` calls it before the write commits when the visibility
policy names the agent for that type with ``latency: within_transaction``
(docs/visibility.md). It runs in the replica's control group, beside its handlers, so a
validator never waits behind the agent's own task (which may be the very write waiting
on it). It may read any resource, the one it validates included: reads are served while
the write waits; it must not write to that resource (its write would wait behind the
one it validates, and the validator would miss its deadline).
"""

from __future__ import annotations

import asyncio
import inspect
import math
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict

from runtime import (
    ConfigurationError,
    Envelope,
    InvalidArgumentError,
    MalformedEventError,
    UnknownEventTypeError,
    ValidatorFailedError,
    new_span_id,
    span,
)

from .._contracts import note_event_type
from .emit import type_name

F = TypeVar("F", bound=Callable[..., Any])
_TRACE_ID = re.compile(r"^[0-9a-f]{32}$")
_SPAN_ID = re.compile(r"^(?:[0-9a-f]{16})?$")  # "": the writer did not trace
_VALIDATE_ATTR = "__agentcast_validate__"
_CACHE_ATTR = "__agentcast_validators__"


class Veto(BaseModel):
    """A validator's refusal of the write; a validator that allows returns None.

    Attributes:
        reason: why (shown in the ``VetoedError`` and the resource's log).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    reason: str


def validate(event_type: type[BaseModel]) -> Callable[[F], F]:
    """Mark ``async def name(self, event: EventType) -> Veto | None`` as this agent's
    validator of ``event_type`` (used where the visibility policy says
    ``within_transaction``).

    Raises:
        ConfigurationError: ``event_type`` is not a pydantic model class.
    """
    if not (isinstance(event_type, type) and issubclass(event_type, BaseModel)):
        raise ConfigurationError(f"@validate takes a pydantic model class, not {event_type!r}")

    note_event_type(event_type)

    def mark(fn: F) -> F:
        setattr(fn, _VALIDATE_ATTR, event_type)
        return fn

    return mark


@dataclass(frozen=True, slots=True)
class Validator:
    """One ``@validate`` handler."""

    name: str
    fn: Callable[..., Any]
    event_type: type[BaseModel]


def validators(cls: type) -> dict[str, Validator]:
    """An agent class's validators, by event type name.

    Raises:
        ConfigurationError: a validator that is not ``async``, does not take one
            argument, or shares its event type with another.
    """
    cached: dict[str, Validator] | None = cls.__dict__.get(_CACHE_ATTR)
    if cached is not None:
        return cached
    found: dict[str, Validator] = {}
    for name, fn in inspect.getmembers(cls, inspect.isfunction):
        event_type = getattr(fn, _VALIDATE_ATTR, None)
        if event_type is None:
            continue
        where = f"{cls.__name__}.{name}"
        params = [p for p in inspect.signature(fn).parameters if p != "self"]
        if not inspect.iscoroutinefunction(fn) or len(params) != 1:
            raise ConfigurationError(f"{where} must be 'async def {name}(self, event)'")
        key = type_name(event_type)
        if key in found:
            raise ConfigurationError(f"{where} and {found[key].name} both validate {key}")
        found[key] = Validator(name, fn, event_type)
    setattr(cls, _CACHE_ATTR, found)
    return found


async def run_validator(
    agent: Any, where: str, event_type: str, payload: bytes, trace: Any = None,
    deadline_s: Any = None,
) -> Veto | None:  # fmt: skip
    """Run ``agent``'s validator of ``event_type`` on the JSON ``payload``: its
    ``Veto``, or None (it allows). ``trace`` is the write's (trace id, span id): the run
    is a span ``agentcast.validate <type>``, a child of the write's span, with the verdict.
    ``deadline_s`` is the rule's deadline: the run is cancelled once it is past (None:
    not bounded), so a validator the resource gave up on does not run on, holding one
    of the replica's few control calls, until none is left for its next verdicts.

    Raises:
        UnknownEventTypeError: the agent has no validator of that type (a forged or
            misrouted call).
        MalformedEventError: the payload does not validate as the validator's model.
        InvalidArgumentError: ``trace`` is not a (trace id, span id or "") pair, or
            ``deadline_s`` is not a positive number of seconds.
        ValidatorFailedError: the run was cancelled at ``deadline_s`` (``timeout``).
        Exception: whatever the validator raised; the resource applies ``on_timeout``.
    """
    spec = validators(type(agent)).get(event_type) if isinstance(event_type, str) else None
    if spec is None:
        raise UnknownEventTypeError(str(event_type)[:200], where)
    if not isinstance(payload, bytes):
        raise MalformedEventError(event_type, "the payload is not JSON bytes")
    try:
        event = spec.event_type.model_validate_json(payload)
    except ValueError as error:
        raise MalformedEventError(event_type, str(error)[:500]) from error
    attributes = {"agentcast.event_type": event_type, "agentcast.validator": where}
    name = f"agentcast.validate {event_type}"
    bound = _deadline(deadline_s)
    with span(name, envelope=_parent(trace), attributes=attributes) as run:
        verdict = await _bounded(spec.fn(agent, event), bound, event_type, where)
        run.set_attribute("agentcast.verdict", _verdict_text(verdict))
    return verdict  # anything else is the resource's to judge: a ``bad_verdict`` failure


async def _bounded(
    run: Awaitable[Veto | None], bound: float | None, event_type: str, where: str
) -> Veto | None:
    """What ``run`` answers, cancelling it at ``bound`` seconds (None: not bounded).

    Raises:
        ValidatorFailedError: cancelled at ``bound`` (``timeout``).
        Exception: whatever the validator raised, its own ``TimeoutError`` included.
    """
    try:
        async with asyncio.timeout(bound) as within:
            return await run
    except TimeoutError:
        if not within.expired():
            raise  # the validator's own: it raised
        past = f"no verdict within {bound}s"
        raise ValidatorFailedError("", event_type, where, "timeout", past) from None


def _parent(trace: Any) -> Envelope | None:
    """The envelope whose span the validator's run is a child of (None: no trace given).

    Raises:
        InvalidArgumentError: not a pair of a trace id and a span id (or ``""``).
    """
    if trace is None:
        return None
    if not (isinstance(trace, (tuple, list)) and len(trace) == 2):
        raise InvalidArgumentError(f"a validation's trace is (trace id, span id): {trace!r}"[:300])
    trace_id, span_id = trace
    if not (isinstance(trace_id, str) and _TRACE_ID.match(trace_id)):
        raise InvalidArgumentError(f"a trace id is 32 hex digits, not {trace_id!r}"[:300])
    if not (isinstance(span_id, str) and _SPAN_ID.match(span_id)):
        raise InvalidArgumentError(f"a span id is 16 hex digits or '', not {span_id!r}"[:300])
    return Envelope(trace_id=trace_id, span_id=span_id or new_span_id())


def _deadline(deadline_s: Any) -> float | None:
    """The run's bound in seconds (None: not bounded).

    Raises:
        InvalidArgumentError: not None or a positive, finite number.
    """
    if deadline_s is None:
        return None
    if type(deadline_s) not in (int, float) or not 0 < deadline_s < math.inf:
        raise InvalidArgumentError(f"a deadline is seconds > 0, not {deadline_s!r}"[:300])
    return float(deadline_s)


def _verdict_text(verdict: Any) -> str:
    if verdict is None:
        return "allowed"
    return f"vetoed: {verdict.reason}"[:500] if isinstance(verdict, Veto) else "bad_verdict"
