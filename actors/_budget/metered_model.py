"""``self.model`` in an agent: a model client metered by the budget actor.

Before a call, its upper bound (estimated prompt tokens + ``max_tokens``, their cost, one
call) is reserved; after it, the real usage is settled. With ``Metering.PER_CALL`` both are
calls to the budget actor. With ``Metering.LEASE`` (the default) the agent process admits
calls against allowances it draws from the budget actor ahead of need and settles in
batches (see ``actors._budget.lease``).

The breaker of the model's ``endpoint`` is checked before each call: an open breaker is a
``CircuitOpenError`` at once, without calling; a failure of the endpoint is reported with
its fingerprint, and a probe's success closes the breaker.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel

from policies import BreakerStatus, BudgetPolicy, Metering, fingerprint
from runtime import (
    BudgetExceededError,
    CircuitOpenError,
    Clock,
    Completion,
    Message,
    ModelClient,
    ModelOutputError,
    ModelRateLimitedError,
    ModelResponseError,
    ModelTimeoutError,
    ModelUnavailableError,
    SystemClock,
    check_max_tokens,
    estimate_prompt_tokens,
)

from .book import SpendContext
from .client import BudgetLink
from .core import BreakerView, Grant
from .lease import Allowance, Lease, Pricing
from .metrics import record_refusal

Amounts = dict[str, float]

# Failures that say the endpoint is in trouble: they count toward its breaker.
_ENDPOINT_FAILURES = (
    ModelUnavailableError,
    ModelTimeoutError,
    ModelRateLimitedError,
    ModelResponseError,
)
# Failures after which the endpoint may have billed the whole call.
_BILLED_FAILURES = (ModelTimeoutError, ModelResponseError, ModelOutputError)
_CLOSED = BreakerStatus.CLOSED


class Meter:
    """What one agent process shares between its metered models: the link to the budget
    actor, its leases, and its view of the breakers."""

    def __init__(self, link: BudgetLink, *, holder: str, clock: Clock | None = None) -> None:
        self.link = link
        self.holder = holder
        self.clock: Clock = clock or SystemClock()
        self.leases: dict[tuple[str, str, str], Lease] = {}
        self.breakers: dict[str, tuple[BreakerView, float]] = {}
        self.settling: dict[str, tuple[asyncio.Task[Any], SpendContext, Amounts]] = {}

    async def check_breaker(self, dependency: str, refresh: float) -> bool:
        """Admit a call to ``dependency``: returns whether it is a probe.

        Raises:
            CircuitOpenError: the breaker is open.
        """
        now = self.clock.monotonic()
        view, seen = self.breakers.get(dependency, (None, float("-inf")))
        if view is None or (view.status is BreakerStatus.CLOSED and now - seen > refresh):
            view, seen = await self.link.call("breaker", dependency), now
            self.breakers[dependency] = (view, seen)
        if view.status is BreakerStatus.CLOSED:
            return False
        if view.retry_after is not None and now < seen + view.retry_after:
            raise view.refusal()
        admitted: BreakerView = await self.link.call("admit", dependency)
        self.breakers[dependency] = (admitted, self.clock.monotonic())
        if not admitted.allowed:
            raise admitted.refusal()
        return admitted.probe

    async def report(self, dependency: str, error: BaseException | None) -> None:
        """Report a failure of ``dependency`` (with its fingerprint), or a success, as
        this process (its agent replica)."""
        key = None if error is None else fingerprint(dependency, type(error).__name__, str(error))
        view = await self.link.call("report", dependency, error is None, key, self.holder)
        self.breakers[dependency] = (view, self.clock.monotonic())

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
        for lease in list(self.leases.values()):
            await lease.flush()
        for grant_id, (task, context, used) in list(self.settling.items()):
            await asyncio.wait((task,))
            if grant_id in self.settling:  # it failed: once more, waiting this time
                await self.link.call("settle", grant_id, context, used)
                del self.settling[grant_id]


class MeteredModel:
    """A ``ModelClient`` whose every call is metered by the budget actor.

    Args:
        inner: the model client that makes the calls.
        meter: the process's meter.
        agent: the calling agent's name.
        run: returns the current run's id (the task's trace id).
        metering: overrides the policy's metering. Default None (the policy's).
    """

    def __init__(
        self,
        inner: ModelClient,
        meter: Meter,
        *,
        agent: str,
        run: Callable[[], str],
        metering: Metering | None = None,
    ) -> None:
        self.inner = inner
        self._meter = meter
        self._agent = agent
        self._run = run
        self._metering = metering
        self._endpoint = inner.endpoint
        # Learned with the policy, on the first call: looked up once, not per call.
        self._policy: BudgetPolicy | None = None
        self._pricing: Pricing | None = None
        self._per_call_mode = False
        self._refresh = 0.0
        self._lease_run: str | None = None
        self._lease: Lease | None = None

    @property
    def endpoint(self) -> str:
        return self.inner.endpoint

    @property
    def model(self) -> str:
        return self.inner.model

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int,
        schema: type[BaseModel] | None = None,
    ) -> Completion:
        """Reserve, call the model, settle. See the module docstring.

        Raises:
            BudgetExceededError: a cap cannot cover the call's upper bound; not called.
            CircuitOpenError: the endpoint's breaker is open; not called.
            ModelError: the call itself failed (it is settled and reported first).
        """
        check_max_tokens(max_tokens)
        pricing = self._pricing or await self._learn_policy()
        prompt = estimate_prompt_tokens(messages)
        cost = (prompt * pricing.prompt_per_1k + max_tokens * pricing.completion_per_1k) / 1000.0
        bound = (prompt, max_tokens, cost)
        try:
            if self._per_call_mode:
                return await self._per_call(bound, messages, max_tokens, schema)
            lease, allowance, probe = await self._admit_leased(prompt, max_tokens, cost)
        except (BudgetExceededError, CircuitOpenError) as refused:
            budget = isinstance(refused, BudgetExceededError)
            record_refusal(self._agent, "budget" if budget else "circuit_open")
            raise
        try:
            completion = await self.inner.complete(messages, max_tokens=max_tokens, schema=schema)
        except Exception as error:
            used_prompt, used_completion, _, _ = self._failed_usage(error, bound)
            lease.give_back(allowance, bound, used_prompt, used_completion)
            await self._after_failure(error, probe)
            raise
        usage = completion.usage
        lease.give_back(allowance, bound, usage.prompt_tokens, usage.completion_tokens)
        if probe:
            await self._meter.report(self._endpoint, None)
        return completion

    async def _admit_leased(
        self, prompt: int, max_tokens: int, cost: float
    ) -> tuple[Lease, Allowance, bool]:
        """Admit a call on the run's lease: the breaker view refreshed when stale or not
        closed, then an allowance taken (or waited for). It runs on every leased call, so
        it stays plain arithmetic on cached values (see ``actors._budget.lease``).

        Returns:
            ``(lease, allowance, probe)``: ``probe`` if the call is a half-open breaker's
            probe.

        Raises:
            BudgetExceededError: no allowance can cover the call.
            CircuitOpenError: the endpoint's breaker is open.
        """
        meter = self._meter
        now = meter.clock.monotonic()
        seen = meter.breakers.get(self._endpoint)
        probe = False
        if seen is None or seen[0].status is not _CLOSED or now - seen[1] > self._refresh:
            probe = await meter.check_breaker(self._endpoint, self._refresh)
        run = self._run()
        lease = self._lease if run == self._lease_run else self._lease_for(run)
        assert lease is not None
        allowance = lease.take(prompt, max_tokens, cost, now) or await lease.admit(
            prompt, max_tokens, cost
        )
        return lease, allowance, probe

    async def _learn_policy(self) -> Pricing:
        policy = self._policy = await self._meter.link.policy()
        self._per_call_mode = (self._metering or policy.metering) is Metering.PER_CALL
        self._refresh = policy.breaker_refresh.total_seconds()
        self._pricing = Pricing(policy, self.inner.model)
        return self._pricing

    async def _per_call(
        self,
        bound: tuple[int, int, float],
        messages: Sequence[Message],
        max_tokens: int,
        schema: type[BaseModel] | None,
    ) -> Completion:
        assert self._pricing is not None
        link, grant_id, pricing = self._meter.link, uuid.uuid4().hex, self._pricing
        context = SpendContext(run=self._run(), agent=self._agent, model=self.inner.model)
        need = pricing.amounts(bound[0], bound[1], 1.0, bound[2])
        grant: Grant = await link.call(
            "reserve", grant_id, context, need, None, self._meter.holder, self._endpoint
        )
        probe = grant.breaker is not None and grant.breaker.probe
        try:
            completion = await self.inner.complete(messages, max_tokens=max_tokens, schema=schema)
        except Exception as error:
            used = self._failed_usage(error, bound)
            self._meter.settle_soon(grant_id, context, pricing.amounts(*used))
            await self._after_failure(error, probe)
            raise
        usage = completion.usage
        p, c = float(usage.prompt_tokens), float(usage.completion_tokens)
        self._meter.settle_soon(grant_id, context, pricing.amounts(p, c, 1.0, pricing.cost(p, c)))
        if probe:
            await self._meter.report(self._endpoint, None)
        return completion

    def _lease_for(self, run: str) -> Lease:
        assert self._policy is not None and self._pricing is not None
        meter, model = self._meter, self.inner.model
        lease = meter.leases.get((run, self._agent, model))
        if lease is None:
            context = SpendContext(run=run, agent=self._agent, model=model)
            lease = meter.leases[(run, self._agent, model)] = Lease(
                meter.link, context, holder=meter.holder, pricing=self._pricing,
                policy=self._policy, clock=meter.clock,
            )  # fmt: skip
        self._lease_run, self._lease = run, lease
        return lease

    async def _after_failure(self, error: BaseException, probe: bool) -> None:
        if isinstance(error, _ENDPOINT_FAILURES):
            await self._meter.report(self._endpoint, error)
        elif probe:  # the endpoint answered, if badly: it is up
            await self._meter.report(self._endpoint, None)

    def _failed_usage(
        self, error: BaseException, bound: tuple[int, int, float]
    ) -> tuple[float, float, float, float]:
        """(prompt, completion, calls, cost) to count for a failed call."""
        if isinstance(error, _BILLED_FAILURES):
            return bound[0], bound[1], 1.0, bound[2]  # it may have been billed in full
        return 0.0, 0.0, 1.0, 0.0


_METERS: dict[str, Meter] = {}
_MODELS: dict[tuple[str, str, int], MeteredModel] = {}


def process_meter(namespace: str, holder: str) -> Meter:
    """The meter this process shares between its agents of ``namespace``."""
    if namespace not in _METERS:
        _METERS[namespace] = Meter(BudgetLink(namespace), holder=holder)
    return _METERS[namespace]


def metered_model(
    inner: ModelClient, *, namespace: str, agent: str, replica: int, run: Callable[[], str]
) -> MeteredModel:
    """The metered model of one agent replica (made once, then reused)."""
    key = (namespace, agent, replica)
    found = _MODELS.get(key)
    if found is None or found.inner is not inner:
        meter = process_meter(namespace, f"{agent}:{replica}")
        found = _MODELS[key] = MeteredModel(inner, meter, agent=agent, run=run)
    return found
