"""Reaching the budget actor: from agents (``BudgetLink``, ``AgentBudget``) and from the
driver (``BudgetHandle``), and starting it on first use from anywhere (``ensure_budget``)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any

import ray

from policies import BreakerStatus, BudgetLimit, BudgetPolicy, Provenance, fingerprint
from runtime import (
    Clock,
    ConfigurationError,
    SystemClock,
    get_or_spawn,
    lookup,
    span,
)

from .._agent.derived import note
from .._reconnect import Plan, Reconnect, reconnecting, run_async, run_blocking
from .core import BreakerView, RetryDecision
from .host import BudgetHost
from .status import BudgetStatus
from .store import BudgetEvent

BUDGET_ACTOR = "budget"

BudgetSpec = BudgetPolicy | Sequence[BudgetLimit] | None
"""What ``System.start(budgets=...)`` takes: a policy, or caps for a default policy."""


def budget_policy(spec: BudgetSpec) -> BudgetPolicy:
    """The budget policy ``spec`` stands for (a default one for None)."""
    if isinstance(spec, BudgetPolicy):
        return spec
    return BudgetPolicy(limits=tuple(spec or ()))


def ensure_budget(
    root: str, namespace: str, policy: BudgetPolicy, *, detached: bool = False
) -> tuple[Any, bool]:
    """The budget actor of ``namespace``: ``(actor, started)``, started if not running.

    A running actor keeps the policy it was started with; caps declared later are durable.
    Two processes starting it at once get the same actor. ``detached``: it outlives the
    process that starts it (an agent that starts it must not take it down when it dies).
    """
    return get_or_spawn(
        BudgetHost, root, policy, name=BUDGET_ACTOR, namespace=namespace, storage=root,
        detached=detached,
    )  # fmt: skip


def stop_budget(namespace: str) -> None:
    """Stop the budget actor of ``namespace``, if it runs."""
    with contextlib.suppress(ConfigurationError):
        ray.kill(lookup(BUDGET_ACTOR, namespace), no_restart=True)


Starter = Callable[[], Any]
"""Starts the budget actor (or joins it) and returns its handle."""


class BudgetLink:
    """An agent process's way to the budget actor: re-sends a call while the actor
    restarts (every budget call is safe to repeat), learns the policy once, and starts
    the actor with ``start`` if it is not running yet."""

    def __init__(
        self,
        namespace: str,
        reconnect: Reconnect | None = None,
        start: Starter | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._namespace = namespace
        self._reconnect = reconnect or Reconnect()
        self._start = start
        self._clock = clock or SystemClock()
        self._actor: Any = None
        self._policy: BudgetPolicy | None = None
        self.calls = 0

    def _find(self) -> Any:
        """The budget actor, started if missing and this link knows how.

        Raises:
            ConfigurationError: there is no budget actor and no way to start one.
        """
        try:
            return lookup(BUDGET_ACTOR, self._namespace)
        except ConfigurationError:
            if self._start is None:
                raise
            return self._start()

    async def call(self, method: str, *args: Any) -> Any:
        """Call ``method`` of the budget actor.

        Raises:
            ResourceUnavailableError: the actor stayed unreachable past the reconnect time.
            ConfigurationError: there is no budget actor.
        """
        return await run_async(self._answer(method, args), self._clock)

    def send(self, method: str, *args: Any) -> asyncio.Task[Any]:
        """Call ``method`` without waiting for it: the call is submitted now, so it reaches
        the actor before any call made after it; its answer (with ``call``'s re-sending
        while the actor restarts) is awaited in the returned task.

        Raises:
            ConfigurationError: there is no budget actor.
        """
        plan = self._answer(method, args, sent=self._send(method, args))
        return asyncio.get_running_loop().create_task(run_async(plan, self._clock))

    def _answer(self, method: str, args: tuple[Any, ...], sent: Any = None) -> Plan[Any]:
        """The answer, re-sent while the actor restarts; the budget's own errors come out
        as themselves, so agents and the supervisor see a plain ``BudgetExceededError``
        or ``CircuitOpenError``."""
        return reconnecting(
            lambda: self._send(method, args), reconnect=self._reconnect, clock=self._clock,
            target=BUDGET_ACTOR, sent=sent,
        )  # fmt: skip

    def _send(self, method: str, args: tuple[Any, ...]) -> Any:
        if self._actor is None:
            self._actor = self._find()
        self.calls += 1
        return getattr(self._actor, method).remote(*args)

    @property
    def known_policy(self) -> BudgetPolicy:
        """The policy learned by ``policy()``.

        Raises:
            ConfigurationError: ``policy()`` was never awaited.
        """
        if self._policy is None:
            raise ConfigurationError("the budget policy is not known yet")
        return self._policy

    async def policy(self) -> BudgetPolicy:
        """The budget's policy, asked once."""
        if self._policy is None:
            described = await self.call("describe")
            self._policy = described["policy"]
        return self._policy


class AgentBudget:
    """``self.budget`` in an agent: the run's retry budget and the breakers of tools.

    ``await self.budget.retry("tool:search")`` before a retry raises unless the run may
    retry; ``async with self.budget.guard("tool:search"): ...`` refuses at once while the
    tool's breaker is open and reports a failure (by fingerprint) or a probe's success.
    """

    def __init__(
        self, link: BudgetLink, agent: str, run: Callable[[], str], *, holder: str = ""
    ) -> None:
        self._link = link
        self._agent = agent
        self._run = run
        self._holder = holder or agent

    async def try_retry(self, dependency: str | None = None) -> RetryDecision:
        """Whether the current run may retry now (an allowed retry is counted)."""
        decision: RetryDecision = await self._link.call(
            "try_retry", self._run(), self._agent, dependency
        )
        return decision

    async def retry(self, dependency: str | None = None) -> None:
        """Take one retry from the run's budget.

        Raises:
            BudgetExceededError: the run's retry budget or a retries cap refuses.
            CircuitOpenError: ``dependency``'s breaker is open.
        """
        decision = await self.try_retry(dependency)
        if not decision.allowed:
            raise decision.refusal(self._run(), dependency)

    async def record_attempt(self, count: int = 1) -> None:
        """Count first attempts of the current run (each lets it retry a little more)."""
        await self._link.call("record_attempt", self._run(), count)

    def guard(
        self, dependency: str, *, failures: tuple[type[BaseException], ...] = (Exception,)
    ) -> ToolGuard:
        """A context manager around one call to ``dependency`` (a tool)."""
        return ToolGuard(self, dependency, failures)


class ToolGuard:
    """Admits one call through a dependency's breaker; reports how it went. What the
    running handler makes afterwards is at most TOOL: it may carry the tool's result.

    Raises:
        CircuitOpenError: on entry, when the breaker refuses the call.
    """

    def __init__(
        self, budget: AgentBudget, dependency: str, failures: tuple[type[BaseException], ...]
    ) -> None:
        self._budget = budget
        self._dependency = dependency
        self._failures = failures
        self.view: BreakerView | None = None
        self._span: Any = None

    async def __aenter__(self) -> ToolGuard:
        self._span = span(
            f"execute_tool {self._dependency}", kind="client",
            attributes={
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": self._dependency,
                "gen_ai.agent.name": self._budget._agent,
                "gen_ai.conversation.id": self._budget._run(),
            },
        )  # fmt: skip
        self._span.__enter__()
        try:
            await self._admit()
        except BaseException as error:
            self._span.__exit__(type(error), error, error.__traceback__)
            raise
        return self

    async def _admit(self) -> None:
        link = self._budget._link
        self.view = await link.call("admit", self._dependency)
        assert self.view is not None
        if not self.view.allowed:
            raise self.view.refusal()
        await link.call("record_attempt", self._budget._run(), 1)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._span.__exit__(exc_type, exc, tb)
        note(Provenance.TOOL, f"tool:{self._dependency}")  # what the handler makes now
        assert self.view is not None
        link, agent = self._budget._link, self._budget._holder
        if exc is not None and isinstance(exc, self._failures):
            key = fingerprint(self._dependency, type(exc).__name__, str(exc))
            await link.call("report", self._dependency, False, key, agent)
        elif exc is None and (self.view.probe or self.view.status is not BreakerStatus.CLOSED):
            await link.call("report", self._dependency, True, None, agent)


class BudgetHandle:
    """``system.budget``: the budget actor, for the driver (blocking calls)."""

    def __init__(
        self, actor: Any, reconnect: Reconnect | None = None, clock: Clock | None = None
    ) -> None:
        self.actor = actor
        self._reconnect = reconnect or Reconnect()
        self._clock = clock or SystemClock()

    def declare(self, limit: BudgetLimit) -> None:
        """Set or change a cap, durably."""
        self._call("declare", limit)

    def try_retry(
        self, run: str, *, dependency: str | None = None, agent: str = ""
    ) -> RetryDecision:
        """May ``run`` retry now? An allowed retry is counted."""
        decision: RetryDecision = self._call("try_retry", run, agent, dependency)
        return decision

    def record_attempt(self, run: str, count: int = 1) -> None:
        """Count first attempts of ``run``."""
        self._call("record_attempt", run, count)

    def breaker(self, dependency: str) -> BreakerView:
        """The breaker of ``dependency``."""
        view: BreakerView = self._call("breaker", dependency)
        return view

    def report(
        self, dependency: str, *, ok: bool, fingerprint: str | None = None, agent: str = ""
    ) -> BreakerView:
        """Report a call's outcome to a breaker and the error registry."""
        view: BreakerView = self._call("report", dependency, ok, fingerprint, agent)
        return view

    def status(self) -> BudgetStatus:
        """Ledgers, open grants, spend by (run, agent, model), breakers, incidents and the
        budget's incarnation (see ``BudgetStatus``).

        Raises:
            ResourceUnavailableError: the budget actor stayed unreachable.
        """
        status: BudgetStatus = self._call("status")
        return status

    def events(self, after: int = 0, limit: int = 1000) -> list[BudgetEvent]:
        """The budget's durable log: events after position ``after``, at most ``limit``,
        oldest first (page on with the last one's ``seq``). Events older than
        ``BudgetRetention.log`` that a snapshot covers are gone.

        Raises:
            ResourceUnavailableError: the budget actor stayed unreachable.
        """
        events: list[BudgetEvent] = self._call("events", after, limit)
        return events

    def charge_holder(self, agent: str) -> list[str]:
        """Charge in full every open grant held by a replica of ``agent`` (which is gone
        and cannot settle); returns their ids. The kill switch calls it.

        Raises:
            ResourceUnavailableError: the budget actor stayed unreachable.
        """
        ids: list[str] = self._call("charge_holder", agent)
        return ids

    def _call(self, method: str, *args: Any) -> Any:
        send = getattr(self.actor, method).remote
        plan = reconnecting(
            lambda: send(*args), reconnect=self._reconnect, clock=self._clock,
            target=BUDGET_ACTOR,
        )  # fmt: skip
        return run_blocking(plan, self._clock)
