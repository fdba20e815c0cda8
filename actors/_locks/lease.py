"""Leases as context managers: ``async with self.lease(...)`` in agents, ``with
system.lease(...)`` in drivers.

While a lease is held, its (key, token) pairs are in a context variable that resource
handles read when they stamp a write: every write inside the block carries the lease, and
a resource refuses it once a newer lease on one of its keys has written (fencing). The
runtime renews the lease in the background every ``ttl * LockPolicy.renew_fraction``; a
renewal refused (the lease expired, or its agent was killed) sets ``lost``, and the next
write is refused by fencing. Leaving the block releases the lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import uuid
from contextvars import Token
from datetime import timedelta
from types import TracebackType
from typing import Any

from runtime import AgentcastError, LeaseExpiredError, span

from .._reconnect import run_async, run_blocking
from .client import LocksCalls
from .core import Acquire
from .held import HELD as _HELD
from .held import HeldTokens
from .status import LeaseGrant


def lease_request(
    keys: tuple[str, ...],
    *,
    owner: str,
    agent: str,
    ttl: timedelta | None,
    expected: timedelta | None,
    shared: bool,
    timeout: timedelta | None,
) -> Acquire:
    """The request of a new lease (a fresh id, so a re-send resumes it)."""
    return Acquire(
        lease_id=uuid.uuid4().hex, owner=owner, agent=agent, keys=tuple(keys), shared=shared,
        ttl_s=None if ttl is None else ttl.total_seconds(),
        expected_s=None if expected is None else expected.total_seconds(),
        timeout_s=None if timeout is None else timeout.total_seconds(),
    )  # fmt: skip


class _LeaseState:
    """What both faces share: the request, the grant, whether it was lost."""

    def __init__(self, calls: LocksCalls, request: Acquire) -> None:
        self._calls = calls
        self.request = request
        self._grant: LeaseGrant | None = None
        self.lost_error: AgentcastError | None = None
        self._span: Any = None

    @property
    def grant(self) -> LeaseGrant:
        """The grant: keys and their fencing tokens.

        Raises:
            LeaseExpiredError: the lease was never granted.
        """
        if self._grant is None:
            raise LeaseExpiredError(self.request.keys, self.request.lease_id)
        return self._grant

    @property
    def lease_id(self) -> str:
        return self.request.lease_id

    @property
    def tokens(self) -> dict[str, int]:
        """Key -> fencing token."""
        return dict(self.grant.tokens)

    @property
    def lost(self) -> bool:
        """Whether a renewal was refused: the lease is gone, and writes under it will be
        refused by fencing once a newer lease on its keys has written."""
        return self.lost_error is not None

    def _wait_s(self, policy: Any) -> float:
        timeout = self.request.timeout_s
        return policy.default_wait.total_seconds() if timeout is None else float(timeout)

    def _period(self, policy: Any) -> float:
        return self.grant.ttl_s * float(policy.renew_fraction)

    def _open_span(self) -> None:
        """The lease's span, from the request to the release (the wait included), a child
        of the span around the caller (the handler's, in an agent)."""
        request = self.request
        self._span = span(
            f"agentcast.lease {' '.join(request.keys)}",
            attributes={
                "agentcast.lease.id": request.lease_id,
                "agentcast.lease.keys": ",".join(request.keys),
                "agentcast.lease.shared": request.shared,
                "agentcast.lease.owner": request.owner,
            },
        )  # fmt: skip
        self._span.__enter__()

    def _granted(self, grant: LeaseGrant) -> Token[HeldTokens]:
        self._grant = grant
        tokens = ",".join(f"{key}={token}" for key, token in sorted(grant.tokens.items()))
        self._span.set_attribute("agentcast.lease.keys", ",".join(grant.keys))  # in order
        self._span.set_attribute("agentcast.lease.tokens", tokens)
        return self._held()

    def _close_span(self, error: BaseException | None) -> None:
        self._span.set_attribute("agentcast.lease.lost", self.lost)
        self._span.__exit__(None if error is None else type(error), error, None)

    def _held(self) -> Token[HeldTokens]:
        """Make the writes of the block carry the lease's tokens: an exclusive lease's only.
        Shared holders of a key hold it together with their own, older or newer, tokens, so
        fencing them would refuse one reader for another; readers are advisory."""
        tokens = () if self.grant.shared else tuple(self.grant.tokens.items())
        return _HELD.set(_HELD.get() + tokens)


class AsyncLease(_LeaseState):
    """``async with self.lease("inventory:A", "pricing:A", ttl=..., expected=...) as
    lease:``: the keys are held, in the global order, until the block ends.

    Raises:
        LockTimeoutError: on entry, the keys were not free within the timeout.
        LockOrderError: on entry, the keys break the order of the leases already held.
        DeadlockError: on entry, the wait closed a cycle and this lease broke it.
        InvalidArgumentError: on entry, bad keys or durations.
        ResourceUnavailableError: the locks actor stayed unreachable.
    """

    _task: asyncio.Task[None] | None = None
    _var: Token[HeldTokens] | None = None

    async def __aenter__(self) -> AsyncLease:
        calls = self._calls
        self._open_span()
        try:
            policy = await run_async(calls.policy(), calls.clock)
            grant = await run_async(calls.acquire(self.request, self._wait_s(policy)), calls.clock)
        except BaseException as error:
            self._close_span(error)
            raise
        self._var = self._granted(grant)
        self._task = asyncio.get_running_loop().create_task(self._renew(self._period(policy)))
        return self

    async def _renew(self, period: float) -> None:
        while True:
            await self._calls.clock.sleep(period)
            try:
                await run_async(self._calls.renew(self.lease_id), self._calls.clock)
            except AgentcastError as error:
                self.lost_error = error
                return

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:  # fmt: skip
        if self._task is not None:
            self._task.cancel()
        if self._var is not None:
            _HELD.reset(self._var)
        with contextlib.suppress(AgentcastError):  # it expires on its own at worst
            await run_async(self._calls.release(self.lease_id), self._calls.clock)
        self._close_span(exc)


class Lease(_LeaseState):
    """``with system.lease("inventory:A", ttl=...) as lease:`` for drivers: the same as
    ``AsyncLease``, renewed by a background thread.

    Raises:
        LockTimeoutError: on entry, the keys were not free within the timeout.
        LockOrderError: on entry, the keys break the order of the leases already held.
        DeadlockError: on entry, the wait closed a cycle and this lease broke it.
        InvalidArgumentError: on entry, bad keys or durations.
        ResourceUnavailableError: the locks actor stayed unreachable.
    """

    _thread: threading.Thread | None = None
    _var: Token[HeldTokens] | None = None

    def __enter__(self) -> Lease:
        calls = self._calls
        self._open_span()
        try:
            policy = run_blocking(calls.policy(), calls.clock)
            grant = run_blocking(calls.acquire(self.request, self._wait_s(policy)), calls.clock)
        except BaseException as error:
            self._close_span(error)
            raise
        self._var = self._granted(grant)
        self._stop = threading.Event()
        period = self._period(policy)
        self._thread = threading.Thread(target=self._renew, args=(period,), daemon=True)
        self._thread.start()
        return self

    def _renew(self, period: float) -> None:
        while not self._stop.wait(period):
            try:
                run_blocking(self._calls.renew(self.lease_id), self._calls.clock)
            except AgentcastError as error:
                self.lost_error = error
                return

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:  # fmt: skip
        if self._thread is not None:
            self._stop.set()
        if self._var is not None:
            _HELD.reset(self._var)
        with contextlib.suppress(AgentcastError):  # it expires on its own at worst
            run_blocking(self._calls.release(self.lease_id), self._calls.clock)
        self._close_span(exc)
