"""``self.model`` in an agent: a model client metered by the budget actor.

Before a call, its upper bound (estimated prompt tokens + ``max_tokens``, their cost, one
call) is reserved; after it, the real usage is settled. With ``Metering.PER_CALL`` both are
calls to the budget actor. With ``Metering.LEASE`` (the default) the agent process draws an
allowance worth ``lease_calls`` calls and admits calls against it locally, settling in one
call when it runs out, at half its lifetime, or on ``flush``.

The breaker of the model's ``endpoint`` is checked before each call: an open breaker is a
``CircuitOpenError`` at once, without calling; a failure of the endpoint is reported with
its fingerprint, and a probe's success closes the breaker.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from pydantic import BaseModel

from policies import BreakerStatus, Dimension, Metering, call_bound, fingerprint, usage_amounts
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
    estimate_prompt_tokens,
)
from runtime._model import check_max_tokens

from ._budget_book import SpendContext
from ._budget_client import BudgetLink
from ._budget_core import BreakerView, Grant
from ._budget_metrics import record_refusal

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


@dataclass(slots=True)
class _Lease:
    """An allowance held by this process for one (run, agent, model)."""

    grant_id: str | None = None
    amounts: Amounts = field(default_factory=dict)
    used: Amounts = field(default_factory=dict)
    inflight: Amounts = field(default_factory=dict)
    active: int = 0
    renew_at: float = float("-inf")
    cond: asyncio.Condition = field(default_factory=asyncio.Condition)

    def fits(self, bound: Amounts, now: float) -> bool:
        if self.grant_id is None or now >= self.renew_at:
            return False
        return all(
            self.used.get(d, 0.0) + self.inflight.get(d, 0.0) + v <= self.amounts.get(d, 0.0)
            for d, v in bound.items()
        )

    def take(self, bound: Amounts) -> None:
        self.active += 1
        for d, v in bound.items():
            self.inflight[d] = self.inflight.get(d, 0.0) + v

    def give_back(self, bound: Amounts, used: Amounts) -> None:
        self.active -= 1
        for d, v in bound.items():
            self.inflight[d] = self.inflight.get(d, 0.0) - v
        for d, v in used.items():
            self.used[d] = self.used.get(d, 0.0) + v

    def start(self, grant: Grant, now: float) -> None:
        self.grant_id, self.amounts, self.used = grant.id, dict(grant.amounts), {}
        self.renew_at = now + grant.expires_in / 2

    def reset(self) -> None:
        self.grant_id, self.amounts, self.used, self.renew_at = None, {}, {}, float("-inf")


class Meter:
    """What one agent process shares between its metered models: the link to the budget
    actor, its leases, and its view of the breakers."""

    def __init__(self, link: BudgetLink, *, holder: str, clock: Clock | None = None) -> None:
        self.link = link
        self.holder = holder
        self.clock: Clock = clock or SystemClock()
        self.leases: dict[tuple[str, str, str], _Lease] = {}
        self.breakers: dict[str, tuple[BreakerView, float]] = {}

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

    async def flush(self) -> None:
        """Settle every lease now (e.g. before the process goes away)."""
        for (run, agent, model), lease in list(self.leases.items()):
            async with lease.cond:
                await lease.cond.wait_for(lambda lease=lease: lease.active == 0)  # type: ignore[misc]
                if lease.grant_id is not None:
                    context = SpendContext(run=run, agent=agent, model=model)
                    await self.link.call("settle", lease.grant_id, context, lease.used)
                    lease.reset()


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
        policy = await self._meter.link.policy()
        context = SpendContext(run=self._run(), agent=self._agent, model=self.inner.model)
        bound = _plain(
            call_bound(
                policy.prices, self.inner.model,
                prompt_tokens=estimate_prompt_tokens(messages), max_tokens=max_tokens,
            )
        )  # fmt: skip
        try:
            if (self._metering or policy.metering) is Metering.PER_CALL:
                return await self._per_call(context, bound, messages, max_tokens, schema)
            return await self._leased(context, bound, messages, max_tokens, schema)
        except BudgetExceededError:
            record_refusal(self._agent, "budget")
            raise
        except CircuitOpenError:
            record_refusal(self._agent, "circuit_open")
            raise

    async def _per_call(
        self,
        context: SpendContext,
        bound: Amounts,
        messages: Sequence[Message],
        max_tokens: int,
        schema: type[BaseModel] | None,
    ) -> Completion:
        link, grant_id = self._meter.link, uuid.uuid4().hex
        grant: Grant = await link.call(
            "reserve", grant_id, context, bound, None, self._meter.holder, self.endpoint
        )
        probe = grant.breaker is not None and grant.breaker.probe
        try:
            completion = await self.inner.complete(messages, max_tokens=max_tokens, schema=schema)
        except Exception as error:
            await link.call("settle", grant_id, context, self._failed_usage(error, bound))
            await self._after_failure(error, probe)
            raise
        await link.call("settle", grant_id, context, self._usage(completion))
        if probe:
            await self._meter.report(self.endpoint, None)
        return completion

    async def _leased(
        self,
        context: SpendContext,
        bound: Amounts,
        messages: Sequence[Message],
        max_tokens: int,
        schema: type[BaseModel] | None,
    ) -> Completion:
        policy = await self._meter.link.policy()
        probe = await self._meter.check_breaker(
            self.endpoint, policy.breaker_refresh.total_seconds()
        )
        lease = self._meter.leases.setdefault(
            (context.run, context.agent, self.inner.model), _Lease()
        )
        await self._admit(lease, context, bound, policy.lease_calls)
        try:
            completion = await self.inner.complete(messages, max_tokens=max_tokens, schema=schema)
        except Exception as error:
            await self._give_back(lease, bound, self._failed_usage(error, bound))
            await self._after_failure(error, probe)
            raise
        await self._give_back(lease, bound, self._usage(completion))
        if probe:
            await self._meter.report(self.endpoint, None)
        return completion

    async def _admit(
        self, lease: _Lease, context: SpendContext, bound: Amounts, lease_calls: int
    ) -> None:
        """Take ``bound`` from the lease, renewing it (settle + draw, one call) when it
        cannot cover the call and no call of it is in flight."""
        meter = self._meter
        async with lease.cond:
            while not lease.fits(bound, meter.clock.monotonic()):
                if lease.active == 0:
                    want = {d: v * lease_calls for d, v in bound.items()}
                    new_id, old_id, used = uuid.uuid4().hex, lease.grant_id, lease.used
                    try:
                        grant: Grant = await meter.link.call(
                            "renew", old_id, context, used, new_id, bound, want, meter.holder
                        )
                    except BaseException:
                        lease.reset()  # the old lease was settled before the refusal
                        raise
                    lease.start(grant, meter.clock.monotonic())
                else:
                    await lease.cond.wait()
            lease.take(bound)

    async def _give_back(self, lease: _Lease, bound: Amounts, used: Amounts) -> None:
        async with lease.cond:
            lease.give_back(bound, used)
            lease.cond.notify_all()

    async def _after_failure(self, error: BaseException, probe: bool) -> None:
        if isinstance(error, _ENDPOINT_FAILURES):
            await self._meter.report(self.endpoint, error)
        elif probe:  # the endpoint answered, if badly: it is up
            await self._meter.report(self.endpoint, None)

    def _usage(self, completion: Completion) -> Amounts:
        policy = self._meter.link.known_policy
        return _plain(
            usage_amounts(
                policy.prices, self.inner.model,
                prompt_tokens=completion.usage.prompt_tokens,
                completion_tokens=completion.usage.completion_tokens,
            )
        )  # fmt: skip

    def _failed_usage(self, error: BaseException, bound: Amounts) -> Amounts:
        if isinstance(error, _BILLED_FAILURES):
            return dict(bound)  # it may have been billed in full: count the upper bound
        return {d: (1.0 if d == "calls" else 0.0) for d in bound}


def _plain(amounts: Mapping[Dimension, float]) -> Amounts:
    return {str(k): float(v) for k, v in amounts.items()}


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
