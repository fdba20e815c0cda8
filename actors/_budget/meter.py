"""An agent process's meter (``Meter``): what its metered models share: the link to the
budget actor, the leases, the view of the breakers, the per-call settles in flight."""

from __future__ import annotations

import asyncio
from typing import Any

from policies import BreakerStatus, BudgetPolicy, fingerprint
from runtime import Clock, SystemClock

from .admission import revoke_all
from .book import SpendContext
from .client import BudgetLink, Starter
from .core import BreakerView
from .lease import Lease, Pricing

Amounts = dict[str, float]


class Meter:
    """What one agent process shares between its metered models: the link to the budget
    actor, its leases, and its view of the breakers.

    Leases are settled and dropped when the handler that used them ends (``release``),
    when idle for ``BudgetPolicy.settle_idle`` (a timer, started with the first lease),
    and by ``flush`` (the agent's actor is stopping): a process keeps no lease per run
    beyond its use, only the draw size each (agent, model) grew to.
    """

    def __init__(self, link: BudgetLink, *, holder: str, clock: Clock | None = None) -> None:
        self.link = link
        self.holder = holder
        self.clock: Clock = clock or SystemClock()
        self.leases: dict[tuple[str, str, str], Lease] = {}
        self.draw_sizes: dict[tuple[str, str], int] = {}
        self.breakers: dict[str, tuple[BreakerView, float]] = {}
        self.settling: dict[str, tuple[asyncio.Task[Any], SpendContext, Amounts]] = {}
        self.closing: set[asyncio.Task[None]] = set()
        self._idle_timer: asyncio.Task[None] | None = None

    def lease(self, context: SpendContext, pricing: Pricing, policy: BudgetPolicy) -> Lease:
        """The lease of ``context`` (run, agent, model), made if there is none."""
        key = (context.run, context.agent, context.model or "")
        found = self.leases.get(key)
        if found is None:
            size = self.draw_sizes.get((context.agent, context.model or ""), 0)
            found = self.leases[key] = Lease(
                self.link, context, holder=self.holder, pricing=pricing, policy=policy,
                clock=self.clock, calls_per_draw=size,
            )  # fmt: skip
            if self._idle_timer is None:
                idle = policy.settle_idle.total_seconds()
                self._idle_timer = asyncio.get_running_loop().create_task(self._settle_idle(idle))
        return found

    def release(self, run: str, agent: str) -> None:
        """Settle ``agent``'s leases of ``run`` in the background (its handler ended)."""
        for key in [k for k in self.leases if k[0] == run and k[1] == agent]:
            self._close(key)

    def _close(self, key: tuple[str, str, str]) -> None:
        lease = self.leases.pop(key)
        lease.close()
        self.draw_sizes[(key[1], key[2])] = lease.calls_per_draw
        task = asyncio.get_running_loop().create_task(lease.flush())
        self.closing.add(task)
        task.add_done_callback(self._closed)

    def _closed(self, task: asyncio.Task[None]) -> None:
        # A settle that failed leaves its grant to expire: it is then charged in full.
        self.closing.discard(task)
        if not task.cancelled():
            task.exception()

    async def _settle_idle(self, idle: float) -> None:
        """Every ``idle`` seconds, settle the leases no call used meanwhile."""
        while True:
            await asyncio.sleep(idle)
            for key, lease in list(self.leases.items()):
                if lease.quiet() and not lease.busy():
                    self._close(key)

    async def check_breaker(self, dependency: str, refresh: float) -> bool:
        """Admit a call to ``dependency``: returns whether it is a probe.

        Raises:
            CircuitOpenError: the breaker is open.
        """
        now = self.clock.monotonic()
        view, seen = self.breakers.get(dependency, (None, float("-inf")))
        if view is None or (view.status is BreakerStatus.CLOSED and now - seen > refresh):
            view, seen = await self.link.call("breaker", dependency), now
            self._saw(dependency, view, seen)
        if view.status is BreakerStatus.CLOSED:
            return False
        if view.retry_after is not None and now < seen + view.retry_after:
            raise view.refusal()
        admitted: BreakerView = await self.link.call("admit", dependency)
        self._saw(dependency, admitted, self.clock.monotonic())
        if not admitted.allowed:
            raise admitted.refusal()
        return admitted.probe

    async def report(self, dependency: str, error: BaseException | None) -> None:
        """Report a failure of ``dependency`` (with its fingerprint), or a success, as
        this process (its agent replica)."""
        key = None if error is None else fingerprint(dependency, type(error).__name__, str(error))
        view = await self.link.call("report", dependency, error is None, key, self.holder)
        self._saw(dependency, view, self.clock.monotonic())

    def _saw(self, dependency: str, view: BreakerView, at: float) -> None:
        """Keep the breaker view of ``dependency`` seen ``at``; what every task was
        admitted under may have changed: each one's next call is admitted afresh."""
        self.breakers[dependency] = (view, at)
        revoke_all()

    def settle_soon(self, grant_id: str, context: SpendContext, used: Amounts) -> None:
        """Settle a per-call reservation without waiting for the answer (so a metered call
        waits on one budget-actor round trip, its reserve); ``flush`` waits for it, and
        sends it again if it failed."""
        task = self.link.send("settle", grant_id, context, used)
        self.settling[grant_id] = (task, context, used)
        task.add_done_callback(lambda done: self._settled(grant_id, done))

    def _settled(self, grant_id: str, task: asyncio.Task[Any]) -> None:
        if not task.cancelled() and task.exception() is None:
            del self.settling[grant_id]

    async def flush(self) -> None:
        """Settle every lease and reservation now (e.g. before the process goes away).

        Raises:
            ResourceUnavailableError: the budget actor stayed unreachable.
        """
        for key in list(self.leases):
            self._close(key)
        while self.closing:
            await asyncio.wait(list(self.closing))
        for grant_id, (task, context, used) in list(self.settling.items()):
            await asyncio.wait((task,))
            if grant_id in self.settling:  # it failed: once more, waiting this time
                await self.link.call("settle", grant_id, context, used)
                del self.settling[grant_id]


_METERS: dict[str, Meter] = {}


def process_meter(namespace: str, holder: str, start: Starter | None = None) -> Meter:
    """The meter this process shares between its agents of ``namespace``; ``start``
    starts the budget actor if it is not running when the meter first needs it."""
    if namespace not in _METERS:
        _METERS[namespace] = Meter(BudgetLink(namespace, start=start), holder=holder)
    return _METERS[namespace]


def release_run(namespace: str, run: str, agent: str) -> None:
    """A handler of ``agent`` in ``run`` ended, and no other is running: settle the leases
    it used, in the background. Nothing to do in a process that never metered."""
    meter = _METERS.get(namespace)
    if meter is not None:
        meter.release(run, agent)


def release_agent(namespace: str, agent: str) -> None:
    """Settle every lease of ``agent`` in the background (it was killed, and the pooled
    host it ran in lives on). Nothing to do in a process that never metered."""
    meter = _METERS.get(namespace)
    if meter is not None:
        for run in {key[0] for key in meter.leases if key[1] == agent}:
            meter.release(run, agent)


async def settle_all(namespace: str) -> None:
    """Settle every lease and reservation of this process (its agent is stopping).

    Raises:
        ResourceUnavailableError: the budget actor stayed unreachable.
    """
    meter = _METERS.get(namespace)
    if meter is not None:
        await meter.flush()
