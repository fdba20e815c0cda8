"""An agent process's leases: allowances drawn from the budget actor and spent locally.

A lease belongs to one (run, agent, model). It holds the allowance calls are admitted
against (``current``), at most one drawn ahead of need (``spare``), and drained ones not yet
settled (``retired``). Once the current allowance is down to half of what it was granted, or
half of its lifetime has passed, the next one is drawn in the background (one budget-actor
call that also settles the drained ones), so a call waits on the budget actor only when no
allowance it holds can cover it. A call that has to wait for a draw made ahead of need makes
later draws four times larger (up to ``max_lease_calls`` calls' bounds), so that a draw
takes less time than spending half an allowance.

Every allowance, a spare one included, is outstanding at the budget actor until it is
settled or expires (and is then charged in full), so strict mode's committed + outstanding
<= cap holds whatever happens to the process. The meter settles a lease when the handler
that used it ends, when it has been idle for ``BudgetPolicy.settle_idle``, and when the
agent's actor is stopped (``actors._budget.metered_model``). All of
it runs on the event loop of the agent's actor: state changes only between awaits, so there
are no locks on the path of a call.
"""

from __future__ import annotations

import asyncio
import math
import uuid

from policies import BudgetPolicy, UnknownModelError
from runtime import BudgetExceededError, CircuitOpenError, Clock

from .book import SpendContext
from .client import BudgetLink
from .core import Grant

Amounts = dict[str, float]

REFUSED, TAKEN, TAKEN_DUE = 0, 1, 2
"""What ``Allowance.take`` did."""


class Pricing:
    """The price of one model per token, looked up once: what a call's bound and usage
    cost, with the same arithmetic as ``PriceTable.cost``."""

    __slots__ = ("completion_per_1k", "priced", "prompt_per_1k")

    def __init__(self, policy: BudgetPolicy, model: str) -> None:
        try:
            price = policy.prices.price(model)
        except UnknownModelError:
            self.priced, self.prompt_per_1k, self.completion_per_1k = False, 0.0, 0.0
        else:
            self.priced = True
            self.prompt_per_1k, self.completion_per_1k = (
                price.prompt_per_1k,
                price.completion_per_1k,
            )

    def cost(self, prompt: float, completion: float) -> float:
        """The cost of ``prompt`` and ``completion`` tokens (0 for an unpriced model)."""
        return (prompt * self.prompt_per_1k + completion * self.completion_per_1k) / 1000.0

    def amounts(self, prompt: float, completion: float, calls: float, cost: float) -> Amounts:
        """Amounts per dimension name, cost left out for an unpriced model."""
        out = {
            "prompt_tokens": prompt, "completion_tokens": completion,
            "tokens": prompt + completion, "calls": calls,
        }  # fmt: skip
        if self.priced:
            out["cost"] = cost
        return out


class Allowance:
    """One grant drawn as a lease: what is left of it, what was used, calls in flight."""

    __slots__ = (
        "active",
        "calls",
        "completion",
        "cost",
        "grant_id",
        "low_calls",
        "low_completion",
        "low_cost",
        "low_prompt",
        "low_tokens",
        "prompt",
        "renew_at",
        "stop_at",
        "tokens",
        "used_calls",
        "used_completion",
        "used_cost",
        "used_prompt",
    )  # fmt: skip

    def __init__(self, grant: Grant, now: float) -> None:
        amounts = grant.amounts
        self.grant_id = grant.id
        self.prompt = amounts.get("prompt_tokens", 0.0)
        self.completion = amounts.get("completion_tokens", 0.0)
        self.calls = amounts.get("calls", 0.0)
        self.cost = amounts.get("cost", math.inf)
        self.tokens = amounts.get("tokens", math.inf)  # a grant logged before tokens
        self.low_tokens = self.tokens / 2
        self.low_prompt, self.low_completion = self.prompt / 2, self.completion / 2
        self.low_calls, self.low_cost = self.calls / 2, self.cost / 2
        # Draw the next one at half its life; stop using it at three quarters, well
        # before the budget actor lets it expire.
        self.renew_at = now + grant.expires_in / 2
        self.stop_at = now + grant.expires_in * 3 / 4
        self.used_prompt = self.used_completion = self.used_calls = self.used_cost = 0.0
        self.active = 0

    def fits(self, prompt: float, completion: float, cost: float, now: float) -> bool:
        """Whether a call of this bound can be admitted against what is left."""
        return (
            self.calls >= 1.0
            and self.prompt >= prompt
            and self.completion >= completion
            and self.cost >= cost
            and self.tokens >= prompt + completion
            and now < self.stop_at
        )

    def take(self, prompt: float, completion: float, cost: float, now: float) -> int:
        """Admit a call of this bound if what is left covers it: ``REFUSED``, ``TAKEN``,
        or ``TAKEN_DUE`` (taken, and the next allowance is due)."""
        if not (
            self.calls >= 1.0
            and self.prompt >= prompt
            and self.completion >= completion
            and self.cost >= cost
            and self.tokens >= prompt + completion
            and now < self.stop_at
        ):
            return REFUSED
        self.active += 1
        self.prompt -= prompt
        self.completion -= completion
        self.tokens -= prompt + completion
        self.calls -= 1.0
        self.cost -= cost
        if (
            self.calls < self.low_calls
            or self.prompt < self.low_prompt
            or self.completion < self.low_completion
            or self.tokens < self.low_tokens
            or self.cost < self.low_cost
            or now >= self.renew_at
        ):
            return TAKEN_DUE
        return TAKEN

    def give_back(
        self,
        prompt: float,
        completion: float,
        cost: float,
        used_prompt: float,
        used_completion: float,
        used_cost: float,
    ) -> None:
        """Close a call admitted with bound (``prompt``, ``completion``, ``cost``) that
        really used the ``used_*`` amounts (and one call)."""
        self.active -= 1
        self.prompt += prompt - used_prompt
        self.completion += completion - used_completion
        self.tokens += prompt + completion - used_prompt - used_completion
        self.cost += cost - used_cost
        self.used_prompt += used_prompt
        self.used_completion += used_completion
        self.used_calls += 1.0
        self.used_cost += used_cost

    def used(self, priced: bool) -> Amounts:
        """What was spent against it, per dimension name."""
        out = {
            "prompt_tokens": self.used_prompt,
            "completion_tokens": self.used_completion,
            "tokens": self.used_prompt + self.used_completion,
            "calls": self.used_calls,
        }
        if priced:
            out["cost"] = self.used_cost
        return out


class Lease:
    """The allowances of one (run, agent, model) in this process.

    Args:
        link: the way to the budget actor.
        context: who spends.
        holder: this process's agent replica, recorded with each grant.
        pricing: the model's price.
        policy: the budget's policy (lease sizes).
        clock: the clock lifetimes are measured on.
        calls_per_draw: the draw size to start from (what an earlier lease of the same
            agent and model grew to). Default the policy's ``lease_calls``.
    """

    def __init__(
        self,
        link: BudgetLink,
        context: SpendContext,
        *,
        holder: str,
        pricing: Pricing,
        policy: BudgetPolicy,
        clock: Clock,
        calls_per_draw: int = 0,
    ) -> None:
        self.link = link
        self.context = context
        self.holder = holder
        self.pricing = pricing
        self.clock = clock
        self.max_calls_per_draw = max(policy.lease_calls, policy.max_lease_calls)
        self.calls_per_draw = min(calls_per_draw or policy.lease_calls, self.max_calls_per_draw)
        self.current: Allowance | None = None
        self.spare: Allowance | None = None
        self.retired: list[Allowance] = []
        self.drawing: asyncio.Task[None] | None = None
        self.drawing_ahead = False  # the draw in flight is a prefetch
        self.ahead_refused = False  # the last prefetch was refused: wait for need
        self.draws = 0
        self.idle: asyncio.Future[None] | None = None
        self.touched = False  # a call was admitted since the meter last looked
        self.closed = False  # settled by the meter: a call must use a new lease

    def take(self, prompt: float, completion: float, cost: float, now: float) -> Allowance | None:
        """Admit a call against an allowance held, or None when none can cover it.
        Starts drawing the next allowance in the background when the current one is low."""
        self.touched = True
        allowance = self.current
        taken = REFUSED if allowance is None else allowance.take(prompt, completion, cost, now)
        if taken == REFUSED:
            allowance = self._next(prompt, completion, cost, now)
            if allowance is None:
                return None
            taken = allowance.take(prompt, completion, cost, now)
        if (
            taken == TAKEN_DUE
            and self.drawing is None
            and self.spare is None
            and not self.ahead_refused
        ):
            self._draw(prompt, completion, cost, ahead=True)
        return allowance

    async def admit(self, prompt: float, completion: float, cost: float) -> Allowance:
        """Admit a call, waiting for an allowance to be drawn if none can cover it.

        Raises:
            BudgetExceededError: a cap cannot cover the call.
            CircuitOpenError: the budget actor refused on a breaker.
            ResourceUnavailableError: the budget actor stayed unreachable.
        """
        mine: asyncio.Task[None] | None = None
        while True:
            allowance = self.take(prompt, completion, cost, self.clock.monotonic())
            if allowance is not None:
                return allowance
            task = self.drawing
            if task is None:
                task = mine = self._draw(prompt, completion, cost, ahead=False)
            elif self.drawing_ahead and mine is None:
                # The allowance ran out before the prefetch came back: draw bigger ones.
                self.calls_per_draw = min(self.calls_per_draw * 4, self.max_calls_per_draw)
                self.drawing_ahead = False
            await asyncio.wait((task,))
            if task is mine and (task.cancelled() or task.exception() is not None):
                task.result()  # raises the draw's error

    def give_back(
        self,
        allowance: Allowance,
        bound: tuple[int, int, float],
        used_prompt: float,
        used_completion: float,
    ) -> None:
        """Close a call admitted against ``allowance``: its bound back, its usage counted."""
        pricing = self.pricing  # the cost, inline: this runs on every call
        used_cost = (
            used_prompt * pricing.prompt_per_1k + used_completion * pricing.completion_per_1k
        ) / 1000.0
        allowance.give_back(*bound, used_prompt, used_completion, used_cost)
        if self.idle is not None and not self.idle.done():
            self.idle.set_result(None)

    def busy(self) -> bool:
        """Whether a call admitted on it is in flight, or a draw is."""
        held = [a for a in (self.current, self.spare) if a is not None] + self.retired
        return self.drawing is not None or any(a.active for a in held)

    async def flush(self) -> None:
        """Settle every allowance held, once its calls in flight are done.

        Raises:
            ResourceUnavailableError: the budget actor stayed unreachable.
        """
        while self.drawing is not None:
            await asyncio.wait((self.drawing,))
        held = [a for a in (self.current, self.spare) if a is not None] + self.retired
        self.current, self.spare, self.retired = None, None, []
        for allowance in held:
            while allowance.active > 0:
                self.idle = asyncio.get_running_loop().create_future()
                await self.idle
            self.idle = None
            used = allowance.used(self.pricing.priced)
            await self.link.call("settle", allowance.grant_id, self.context, used)

    def _next(self, prompt: float, completion: float, cost: float, now: float) -> Allowance | None:
        """Retire the current allowance; promote the spare if it covers the call."""
        if self.current is not None:
            self.retired.append(self.current)
        self.current, spare, self.spare = self.spare, self.spare, None
        if spare is not None and not spare.fits(prompt, completion, cost, now):
            self.retired.append(spare)
            self.current = spare = None
        return spare

    def _draw(
        self, prompt: float, completion: float, cost: float, *, ahead: bool
    ) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(
            self._drawing(prompt, completion, cost, ahead=ahead)
        )
        task.add_done_callback(_retrieve)
        self.drawing, self.drawing_ahead = task, ahead
        return task

    async def _drawing(self, prompt: float, completion: float, cost: float, *, ahead: bool) -> None:
        """Settle the drained allowances and draw the next, in one budget-actor call."""
        n = float(self.calls_per_draw)
        need = self.pricing.amounts(prompt, completion, 1.0, cost)
        want = self.pricing.amounts(prompt * n, completion * n, n, cost * n)
        done = [a for a in self.retired if a.active == 0]
        self.retired = [a for a in self.retired if a.active > 0]
        settles = [(a.grant_id, a.used(self.pricing.priced)) for a in done]
        args = (settles, self.context, uuid.uuid4().hex, need, want, self.holder)
        try:
            grant: Grant = await self.link.call("renew", *args)
        except (BudgetExceededError, CircuitOpenError):
            self.ahead_refused = ahead  # the settles stand
            raise
        except Exception:
            self.retired.extend(done)  # not known to be settled: again later (a no-op if so)
            self.ahead_refused = ahead
            raise
        finally:
            self.drawing = None
        allowance = Allowance(grant, self.clock.monotonic())
        if self.current is None:
            self.current = allowance
        else:
            self.spare = allowance
        self.draws += 1
        self.ahead_refused = False


def _retrieve(task: asyncio.Task[None]) -> None:
    """Mark a draw's error as seen: a refused prefetch is not an error of any call."""
    if not task.cancelled():
        task.exception()
