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

import uuid
from collections.abc import Callable, Sequence

from pydantic import BaseModel

from policies import BreakerStatus, BudgetPolicy, Metering
from runtime import (
    BudgetExceededError,
    CircuitOpenError,
    Completion,
    Message,
    ModelClient,
    ModelOutputError,
    ModelRateLimitedError,
    ModelResponseError,
    ModelTimeoutError,
    ModelUnavailableError,
    Usage,
    check_max_tokens,
    estimate_prompt_tokens,
    span,
    tracing_enabled,
)

from .._agent.derived import note
from .._agent.task import current_task
from .._resource.constraints import CARRIED, for_model
from .admission import ADMITTED, admit
from .book import SpendContext
from .client import Starter
from .core import Grant
from .lease import Allowance, Lease, Pricing
from .meter import Meter, process_meter
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
        self._source = f"model:{inner.model}"  # what a reply's provenance names
        # Learned with the policy, on the first call: looked up once, not per call.
        self._policy: BudgetPolicy | None = None
        self._pricing: Pricing | None = None
        self._per_call_mode = False
        self._refresh = 0.0
        self._lease_run: str | None = None
        self._lease: Lease | None = None
        self._monotonic = meter.clock.monotonic

    @property
    def endpoint(self) -> str:
        return self.inner.endpoint

    @property
    def model(self) -> str:
        return self.inner.model

    # Each call or await the fast path saves is a few percent of a zero-latency model call.
    # long: the fast path is inline on purpose, every leased call runs it
    async def complete(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int,
        schema: type[BaseModel] | None = None,
    ) -> Completion:
        """Reserve, call the model, settle. See the module docstring. The call is a
        ``chat`` span (GenAI conventions) when tracing is on.

        A call under its task's admission token (``actors._budget.admission``: left by
        the task's last call that took the full path, and still valid) takes one slot of
        the token's allowance and adds its usage to it, inline: the prompt estimate, one
        clock read and the slot; no await but the model's, no lock, nothing allocated.
        Any other call takes the full path.

        Raises:
            BudgetExceededError: a cap cannot cover the call's upper bound; not called.
            CircuitOpenError: the endpoint's breaker is open; not called.
            ModelError: the call itself failed (it is settled and reported first).
        """
        t = ADMITTED.get()
        if (
            t is not None
            and t.model is self
            and t.task is current_task.get()
            and self._monotonic() < t.until
        ):
            a = t.allowance
            # Past ``low`` slots, the full path takes the next call: it draws the next
            # allowance ahead (``Lease.due``), which sets ``low`` to 0.
            if a.slots > a.low and type(max_tokens) is int and 0 < max_tokens <= a.max_completion:
                prompt = estimate_prompt_tokens(messages)
                if prompt <= a.max_prompt:
                    a.slots -= 1
                    a.admitted += 1
                    try:
                        completion = await self.inner.complete(
                            messages, max_tokens=max_tokens, schema=schema
                        )
                    except BaseException as error:
                        await self._failed(a, error, self._bound(prompt, max_tokens), False)
                        raise
                    a.closed.append(completion.usage)  # ``a.give_back(usage)``, inline
                    if a.waiter is not None:
                        a.wake()
                    if completion.provenance is not t.noted:  # else noting changes nothing
                        note(completion.provenance, self._source)
                        t.noted = completion.provenance
                    return completion
        return await self._full(messages, max_tokens, schema)

    async def _full(
        self, messages: Sequence[Message], max_tokens: int, schema: type[BaseModel] | None
    ) -> Completion:
        if not tracing_enabled():  # no span to describe: the same call, a microsecond less
            completion = await self._complete(for_model(messages), max_tokens, schema)
            note(completion.provenance, self._source)  # derived from a reply
            return completion
        attributes: dict[str, str | int] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": self.inner.model,
            "gen_ai.request.max_tokens": max_tokens,
            "gen_ai.agent.name": self._agent,
            "gen_ai.conversation.id": self._run(),
        }
        with span(f"chat {self.inner.model}", kind="client", attributes=attributes) as traced:
            completion = await self._complete(for_model(messages), max_tokens, schema)
            note(completion.provenance, self._source)
            traced.set_attribute("gen_ai.usage.input_tokens", completion.usage.prompt_tokens)
            traced.set_attribute("gen_ai.usage.output_tokens", completion.usage.completion_tokens)
        return completion

    async def _complete(
        self, messages: Sequence[Message], max_tokens: int, schema: type[BaseModel] | None
    ) -> Completion:
        check_max_tokens(max_tokens)
        if self._pricing is None:
            await self._learn_policy()
        bound = self._bound(estimate_prompt_tokens(messages), max_tokens)
        try:
            if self._per_call_mode:
                return await self._per_call(bound, messages, max_tokens, schema)
            allowance, probe = await self._admit_leased(*bound)
        except (BudgetExceededError, CircuitOpenError) as refused:
            budget = isinstance(refused, BudgetExceededError)
            record_refusal(self._agent, "budget" if budget else "circuit_open")
            raise
        try:
            completion = await self.inner.complete(messages, max_tokens=max_tokens, schema=schema)
        except BaseException as error:
            await self._failed(allowance, error, bound, probe)
            raise
        allowance.give_back(completion.usage)
        if probe:
            await self._meter.report(self._endpoint, None)
        return completion

    def _bound(self, prompt: int, max_tokens: int) -> tuple[int, int, float]:
        """A call's upper bound: its prompt estimate, ``max_tokens`` and their cost."""
        assert self._pricing is not None
        pricing = self._pricing
        cost = (prompt * pricing.prompt_per_1k + max_tokens * pricing.completion_per_1k) / 1000.0
        return prompt, max_tokens, cost

    async def _failed(
        self,
        allowance: Allowance,
        error: BaseException,
        bound: tuple[int, int, float],
        probe: bool,
    ) -> None:
        """Count a leased call that failed, or was cancelled, on ``allowance``; report a
        failure of the endpoint (not a cancellation: the endpoint did not fail)."""
        used_prompt, used_completion, _, _ = self._failed_usage(error, bound)
        allowance.give_back(
            Usage(prompt_tokens=int(used_prompt), completion_tokens=int(used_completion))
        )
        if isinstance(error, Exception):
            await self._after_failure(error, probe)

    async def _admit_leased(
        self, prompt: int, max_tokens: int, cost: float
    ) -> tuple[Allowance, bool]:
        """Admit a call on the run's lease: the breaker view refreshed when stale or not
        closed, then an allowance taken (or waited for); unless the call is a probe or
        carries constraints, the task's next calls are admitted on a token (see
        ``complete``; tracing is off, or the call would not be here).

        Returns:
            ``(allowance, probe)``: ``probe`` if the call is a half-open breaker's probe.

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
        lease = self._lease
        if lease is None or lease.closed or run != self._lease_run:
            lease = self._lease_for(run)
        allowance = lease.take(prompt, max_tokens, cost, now) or await lease.admit(
            prompt, max_tokens, cost
        )
        seen = meter.breakers.get(self._endpoint)
        closed = not probe and seen is not None and seen[0].status is _CLOSED
        if closed and not CARRIED.get() and not tracing_enabled():
            assert seen is not None
            until = min(allowance.wake_at, seen[1] + self._refresh)
            admit(self, allowance, lease, until)
        return allowance, probe

    async def _learn_policy(self) -> None:
        policy = self._policy = await self._meter.link.policy()
        self._per_call_mode = (self._metering or policy.metering) is Metering.PER_CALL
        self._refresh = policy.breaker_refresh.total_seconds()
        self._pricing = Pricing(policy, self.inner.model)

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
        context = SpendContext(run=run, agent=self._agent, model=self.inner.model)
        lease = self._meter.lease(context, self._pricing, self._policy)
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
        """(prompt, completion, calls, cost) to count for a failed or cancelled call."""
        if isinstance(error, _BILLED_FAILURES) or not isinstance(error, Exception):
            return bound[0], bound[1], 1.0, bound[2]  # it may have been billed in full
        return 0.0, 0.0, 1.0, 0.0


_MODELS: dict[tuple[str, str, int], MeteredModel] = {}


def metered_model(
    inner: ModelClient,
    *,
    namespace: str,
    agent: str,
    replica: int,
    run: Callable[[], str],
    start: Starter | None = None,
) -> MeteredModel:
    """The metered model of one agent replica (made once, then reused)."""
    key = (namespace, agent, replica)
    found = _MODELS.get(key)
    if found is None or found.inner is not inner:
        meter = process_meter(namespace, f"{agent}:{replica}", start)
        found = _MODELS[key] = MeteredModel(inner, meter, agent=agent, run=run)
    return found
