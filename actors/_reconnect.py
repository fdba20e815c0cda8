"""Calls to actors, written once for the blocking and the awaiting faces of every handle.

A handle's logic (stamping, validating, encoding, decoding, mapping errors, deciding to
re-send a call) is a *plan*: a generator that yields the things that differ between the
faces, ``Resolve`` (wait for a Ray call's answer), ``Take`` (wait for one item of a stream)
and ``Pause`` (wait between tries), and gets the answer (or the error) back.
``run_blocking`` runs a plan with ``ray.get`` and the clock's blocking sleep, for drivers;
``run_async`` runs it with ``await``, for agents. So both faces make the same calls, raise
the same errors and read time only through the injected ``Clock``.

``reconnecting`` is the one reconnect loop: while the actor is dead or restarting, pause
and send the call again, for up to ``Reconnect.give_up_after``. It also maps the errors
alike for every handle: an agentcast error raised in the actor comes out as itself, not
wrapped in Ray's task error (whose text differs from one caller to the next).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Generator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import ray
from ray.exceptions import ActorUnavailableError, RayActorError, RayTaskError

from runtime import AgentcastError, Clock, ResourceUnavailableError

T = TypeVar("T")

UNAVAILABLE = (RayActorError, ActorUnavailableError)
"""What Ray raises for a call to a dead or restarting actor."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Reconnect:
    """How long a handle keeps re-sending a call to a dead or restarting actor.

    Attributes:
        give_up_after: how long after the call's first failed try to stop trying and
            raise ``ResourceUnavailableError``. Default 60 s.
        pause: wait between tries. Default 50 ms.
    """

    give_up_after: timedelta = timedelta(seconds=60)
    pause: timedelta = timedelta(milliseconds=50)


@dataclass(frozen=True, slots=True)
class Resolve:
    """Wait for the answer of a Ray call (an ``ObjectRef``), at most ``timeout`` seconds
    (``TimeoutError`` then); the plan gets the answer, or the call's error raised."""

    ref: Any
    timeout: float | None = None


@dataclass(frozen=True, slots=True)
class Pause:
    """Wait ``seconds`` of the handle's clock."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Take:
    """Wait at most ``timeout`` seconds for the item ``key`` of ``source``, a stream read
    by the waiting face (``source.take_blocking(key, timeout)`` or ``await
    source.take(key, timeout)``); the plan gets what it returns, or its error raised."""

    source: Any
    key: str
    timeout: float | None = None


Plan = Generator[Resolve | Pause | Take, Any, T]
"""A handle's logic for one call: yields what to wait for, returns the call's result."""


# long: the docstring states the loop's whole contract; the loop itself is 20 lines.
def reconnecting(
    send: Callable[[], Any],
    *,
    reconnect: Reconnect,
    clock: Clock,
    target: str,
    sent: Any = None,
    timeout: Callable[[], float | None] | None = None,
) -> Plan[Any]:
    """The answer of ``sent`` (a call already made) or of ``send()``. While the actor is
    dead or restarting, pause and ``send()`` again; every call a handle re-sends must be
    safe to repeat (writes carry their idempotency key).

    Args:
        send: makes the Ray call, returning its ``ObjectRef``.
        reconnect: how long to keep trying, and the pause between tries.
        clock: where the time comes from.
        target: the actor's name, for the error.
        sent: an ``ObjectRef`` of a call made already, awaited before any re-send.
        timeout: seconds left to wait for each try's answer; default no bound.

    Raises:
        ResourceUnavailableError: ``target`` stayed unreachable ``give_up_after`` past
            the first failed try; the call may or may not have run.
        TimeoutError: a try's ``timeout`` passed (the call goes on).
        AgentcastError: the one the actor raised, as itself.
        RayTaskError: any other error the actor raised, as Ray delivers it.
    """
    unreachable_since: float | None = None
    ref = sent
    while True:
        try:
            if ref is None:
                ref = send()
            return (yield Resolve(ref, None if timeout is None else timeout()))
        except UNAVAILABLE as error:
            now = clock.monotonic()
            unreachable_since = now if unreachable_since is None else unreachable_since
            if now - unreachable_since >= reconnect.give_up_after.total_seconds():
                raise ResourceUnavailableError(target, str(error)) from error
            ref = None
        except RayTaskError as error:
            cause = getattr(error, "cause", None)
            if isinstance(cause, AgentcastError):
                raise cause from None
            raise
        yield Pause(reconnect.pause.total_seconds())


def _advance(plan: Plan[T], answer: Any, failure: Exception | None) -> tuple[bool, Any]:
    """Hand the last step's answer (or failure) to ``plan``: ``(True, result)`` when it
    has finished, else ``(False, next step)``."""
    try:
        step = plan.send(answer) if failure is None else plan.throw(failure)
    except StopIteration as done:
        return True, done.value
    return False, step


def run_blocking(plan: Plan[T], clock: Clock) -> T:
    """Run ``plan`` in the calling thread: ``ray.get`` each call, sleep each pause.

    Raises:
        Exception: whatever the plan raises.
    """
    answer: Any = None
    failure: Exception | None = None
    while True:
        finished, step = _advance(plan, answer, failure)
        if finished:
            result: T = step
            return result
        answer, failure = None, None
        try:
            if isinstance(step, Pause):
                clock.sleep_blocking(step.seconds)
            elif isinstance(step, Take):
                answer = step.source.take_blocking(step.key, step.timeout)
            else:
                answer = ray.get(step.ref, timeout=step.timeout)
        except Exception as error:  # handed to the plan, which decides
            failure = error


async def run_async(plan: Plan[T], clock: Clock) -> T:
    """Run ``plan`` in the event loop: await each call, sleep each pause.

    Raises:
        Exception: whatever the plan raises.
    """
    answer: Any = None
    failure: Exception | None = None
    while True:
        finished, step = _advance(plan, answer, failure)
        if finished:
            result: T = step
            return result
        answer, failure = None, None
        try:
            if isinstance(step, Pause):
                await clock.sleep(step.seconds)
            elif isinstance(step, Take):
                answer = await step.source.take(step.key, step.timeout)
            elif step.timeout is None:
                answer = await step.ref
            else:
                answer = await asyncio.wait_for(asyncio.shield(step.ref), step.timeout)
        except Exception as error:  # handed to the plan, which decides
            failure = error
