"""Reaching the locks actor: starting it on first use (``ensure_locks``), the calls as plans
(``LocksCalls``), and the driver's and agents' handles (``LocksHandle``,
``AsyncLocksHandle``), which run the same plans blocking or awaiting."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from policies import LockPolicy
from runtime import (
    Clock,
    ResourceUnavailableError,
    SystemClock,
    get_or_spawn,
)

from .._reconnect import Plan, Reconnect, reconnecting, run_async, run_blocking
from .core import Acquire
from .host import LocksHost
from .status import LeaseGrant, LocksStatus
from .store import LockEvent

LOCKS_ACTOR = "locks"
_ANSWER_SLACK_S = 60.0  # past a wait's own timeout, how long to wait for the actor's answer


def ensure_locks(
    root: str, namespace: str, policy: LockPolicy | None = None, *, detached: bool = False,
    clock: Clock | None = None,
) -> tuple[Any, bool]:  # fmt: skip
    """The locks actor of ``namespace``: ``(actor, started)``, started if not running.

    A running actor keeps the policy it was started with. Two processes starting it at once
    get the same actor. ``detached``: it outlives the process that starts it (an agent
    that starts it must not take it down when it dies). ``clock``: a ``FakeClock`` for tests.
    """
    return get_or_spawn(
        LocksHost, root, policy or LockPolicy(), clock, name=LOCKS_ACTOR, namespace=namespace,
        storage=root, detached=detached,
    )  # fmt: skip


class LocksCalls:
    """Every call to the locks actor as a plan, re-sent while the actor restarts: each is
    safe to repeat (an acquire carries its lease id, which resumes the same lease)."""

    def __init__(
        self,
        find: Callable[[], Any],
        reconnect: Reconnect | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._find = find
        self._actor: Any = None
        self.reconnect = reconnect or Reconnect()
        self.clock = clock or SystemClock()
        self._policy: LockPolicy | None = None

    @property
    def actor(self) -> Any:
        if self._actor is None:
            self._actor = self._find()
        return self._actor

    def _call(self, method: str, *args: Any, timeout: float | None = None) -> Plan[Any]:
        def send() -> Any:
            return getattr(self.actor, method).remote(*args)

        ends = None if timeout is None else self.clock.monotonic() + timeout
        left = None if ends is None else lambda: max(0.0, ends - self.clock.monotonic())
        try:
            return (
                yield from reconnecting(
                    send, reconnect=self.reconnect, clock=self.clock, target=LOCKS_ACTOR,
                    timeout=left,
                )
            )  # fmt: skip
        except TimeoutError as error:  # the actor never answered: it is as good as gone
            raise ResourceUnavailableError(LOCKS_ACTOR, f"no answer within {timeout} s") from error

    def policy(self) -> Plan[LockPolicy]:
        """The actor's policy, asked once."""
        if self._policy is None:
            described = yield from self._call("describe")
            self._policy = described["policy"]
        assert self._policy is not None
        return self._policy

    def acquire(self, request: Acquire, wait_s: float) -> Plan[LeaseGrant]:
        grant: LeaseGrant = yield from self._call(
            "acquire", request, timeout=wait_s + _ANSWER_SLACK_S
        )
        return grant

    def renew(self, lease_id: str) -> Plan[LeaseGrant]:
        grant: LeaseGrant = yield from self._call("renew", lease_id)
        return grant

    def release(self, lease_id: str) -> Plan[bool]:
        released: bool = yield from self._call("release", lease_id)
        return released

    def kill(self, agent: str) -> Plan[dict[str, int]]:
        fenced: dict[str, int] = yield from self._call("kill", agent)
        return fenced

    def status(self) -> Plan[LocksStatus]:
        status: LocksStatus = yield from self._call("status")
        return status

    def events(self, after: int, limit: int) -> Plan[list[LockEvent]]:
        events: list[LockEvent] = yield from self._call("events", after, limit)
        return events


class LocksHandle:
    """``system.locks``: the locks actor, for the driver (blocking calls).

    Leases are taken with ``system.lease(...)``; this handle reads and administers.
    """

    def __init__(self, calls: LocksCalls) -> None:
        self._calls = calls

    @property
    def actor(self) -> Any:
        return self._calls.actor

    def status(self) -> LocksStatus:
        """Held and waiting leases, keys, standing ``lock_wait_exceeded`` alerts, counts.

        Raises:
            ResourceUnavailableError: the locks actor stayed unreachable.
        """
        return run_blocking(self._calls.status(), self._calls.clock)

    def events(self, after: int = 0, limit: int = 1000) -> list[LockEvent]:
        """The locks log: events after position ``after``, at most ``limit``, oldest first.

        Raises:
            ResourceUnavailableError: the locks actor stayed unreachable.
        """
        return run_blocking(self._calls.events(after, limit), self._calls.clock)

    def release(self, lease_id: str) -> bool:
        """End a lease by its id, whoever holds it (an operator's tool); False if gone.

        Raises:
            ResourceUnavailableError: the locks actor stayed unreachable.
        """
        return run_blocking(self._calls.release(lease_id), self._calls.clock)

    def kill(self, agent: str) -> dict[str, int]:
        """End every lease of ``agent`` (the kill switch calls it); returns each key it
        held -> the new token that fences its old ones.

        Raises:
            InvalidArgumentError: ``agent`` is not a name.
            ResourceUnavailableError: the locks actor stayed unreachable.
        """
        return run_blocking(self._calls.kill(agent), self._calls.clock)


class AsyncLocksHandle:
    """The same reads for code in an event loop (agents); see ``LocksHandle``."""

    def __init__(self, calls: LocksCalls) -> None:
        self._calls = calls

    async def status(self) -> LocksStatus:
        """See ``LocksHandle.status``.

        Raises:
            ResourceUnavailableError: the locks actor stayed unreachable.
        """
        return await run_async(self._calls.status(), self._calls.clock)

    async def events(self, after: int = 0, limit: int = 1000) -> list[LockEvent]:
        """See ``LocksHandle.events``.

        Raises:
            ResourceUnavailableError: the locks actor stayed unreachable.
        """
        return await run_async(self._calls.events(after, limit), self._calls.clock)
