"""An agent process's leases: allowances drawn from the budget actor and spent locally.

A lease belongs to one (run, agent, model). It holds the allowance calls are admitted
against (``current``), at most one drawn ahead of need (``spare``), and drained ones not yet
settled (``retired``). Once the current allowance is down to half of what it was granted, or
half of its lifetime has passed, the next one is drawn in the background (one budget-actor
call that also settles the drained ones), so a call waits on the budget actor only when no
allowance it holds can cover it. A call that has to wait for a draw made ahead of need makes
later draws four times larger (up to ``max_lease_calls`` calls' bounds), so that a draw
takes less time than spending half an allowance.

An allowance is cut into slots of the bound it was drawn for (``Allowance``): a call takes
one slot (more if its bound is bigger) and its usage is added up, so admitting a call is a
comparison and a decrement, done inline by ``MeteredModel.complete``; a call's unused bound
is not given back to its allowance, only to the budget when the allowance is settled. A
cancelled call is counted at its bound (the endpoint may have billed it).

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
from operator import attrgetter

from policies import BudgetPolicy, UnknownModelError
from runtime import BudgetExceededError, CircuitOpenError, Clock, Usage

from .book import SpendContext
from .client import BudgetLink
from .core import Grant

Amounts = dict[str, float]

REFUSED, TAKEN, TAKEN_DUE = 0, 1, 2
"""What ``Allowance.take`` did."""

_PROMPT, _COMPLETION = attrgetter("prompt_tokens"), attrgetter("completion_tokens")


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
    """One grant drawn as a lease, cut into slots: a slot covers one call of at most the
    bound the grant was drawn for (``max_prompt`` prompt and ``max_completion`` completion
    tokens, so at most their cost), and a bigger call takes as many slots as cover it.
    What a call used is added up (``used_*``); its slots are not given back, so admitting
    a call is one comparison and one decrement (``MeteredModel`` does it inline, while
    more than ``low`` slots are left). ``slots`` is set to 0 when the allowance is
    retired: nothing is admitted on it again. ``admitted`` counts the calls admitted on
    it, ``closed`` holds the usage of each one closed (``give_back``; summed only when
    the allowance is settled, so closing a call is one append): ``active`` are in
    flight."""

    __slots__ = (
        "admitted",
        "closed",
        "grant_id",
        "low",
        "max_completion",
        "max_prompt",
        "slots",
        "stop_at",
        "waiter",
        "wake_at",
    )  # fmt: skip

    def __init__(self, grant: Grant, bound: tuple[float, float, float], now: float) -> None:
        self.grant_id = grant.id
        self.max_prompt, self.max_completion = bound[0], bound[1]
        self.slots = _slots(grant.amounts, bound)
        self.low = self.slots / 2  # below it, the next allowance is due; 0 once it is drawn
        # Draw the next one at half its life (``wake_at``, then the end of its use); stop
        # using it at three quarters, well before the budget actor lets it expire.
        self.wake_at = now + grant.expires_in / 2
        self.stop_at = now + grant.expires_in * 3 / 4
        self.admitted = 0
        self.closed: list[Usage] = []
        self.waiter: asyncio.Future[None] | None = None  # ``Lease.flush`` waiting for calls

    def need(self, prompt: float, completion: float, now: float) -> int:
        """How many slots a call of this bound takes, 0 if what is left cannot cover it."""
        if now >= self.stop_at:
            return 0
        if prompt <= self.max_prompt and completion <= self.max_completion:
            k = 1
        else:
            k = max(_per(prompt, self.max_prompt), _per(completion, self.max_completion))
        return k if k <= self.slots else 0

    def take(self, prompt: float, completion: float, now: float) -> int:
        """Admit a call of this bound if what is left covers it: ``REFUSED``, ``TAKEN``,
        or ``TAKEN_DUE`` (taken, and the next allowance is due)."""
        k = self.need(prompt, completion, now)
        if not k:
            return REFUSED
        self.slots -= k
        self.admitted += 1
        return TAKEN_DUE if self.slots < self.low or now >= self.wake_at else TAKEN

    @property
    def active(self) -> int:
        """Calls admitted on it and not closed yet."""
        return self.admitted - len(self.closed)

    def give_back(self, usage: Usage) -> None:
        """Close a call admitted on it that really used ``usage`` (and one call)."""
        self.closed.append(usage)
        if self.waiter is not None:
            self.wake()

    def wake(self) -> None:
        """A call closed: ``Lease.flush`` may be waiting for the last one."""
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def used(self, pricing: Pricing) -> Amounts:
        """What was spent against it, per dimension name (the cost at the model's price:
        it is linear, so the cost of the sums is the sum of the calls' costs)."""
        closed = self.closed
        p = float(sum(map(_PROMPT, closed)))
        c = float(sum(map(_COMPLETION, closed)))
        n = float(len(closed))
        return pricing.amounts(p, c, n, pricing.cost(p, c))


def _per(amount: float, per_slot: float) -> int:
    """Slots that cover ``amount`` at ``per_slot`` each (a huge number if none can)."""
    if amount <= 0:
        return 1
    return math.ceil(amount / per_slot) if per_slot > 0 else _NEVER


def _slots(amounts: Amounts, bound: tuple[float, float, float]) -> int:
    """How many calls of ``bound`` (prompt, completion, cost) ``amounts`` cover in full."""
    prompt, completion, cost = bound
    per = (
        ("calls", 1.0), ("prompt_tokens", prompt), ("completion_tokens", completion),
        ("tokens", prompt + completion), ("cost", cost),
    )  # fmt: skip
    slots = _NEVER
    for name, size in per:
        left = amounts.get(name, math.inf if name in ("tokens", "cost") else 0.0)
        if size > 0 and left < math.inf:
            k = math.floor(left / size)
            k += (k + 1) * size <= left  # the division rounded down: what is left
            k -= k * size > left  # or up: never more than is left
            slots = min(slots, k)
    return max(0, slots)


_NEVER = 1 << 62


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
        self.seen: tuple[object, float] | None = None  # what ``quiet`` saw last
        self.closed = False  # settled by the meter: a call must use a new lease

    def take(self, prompt: float, completion: float, cost: float, now: float) -> Allowance | None:
        """Admit a call against an allowance held, or None when none can cover it.
        Starts drawing the next allowance in the background when the current one is low."""
        allowance = self.current
        taken = REFUSED if allowance is None else allowance.take(prompt, completion, now)
        if taken == REFUSED:
            allowance = self._next(prompt, completion, now)
            if allowance is None:
                return None
            taken = allowance.take(prompt, completion, now)
        if taken == TAKEN_DUE and allowance is not None:
            self.due(allowance, (prompt, completion, cost))
        return allowance

    def due(self, allowance: Allowance, bound: tuple[float, float, float]) -> None:
        """``allowance`` is low or half through its life: draw the next one in the
        background (unless one is held or being drawn, or the last such draw was refused),
        and let it run on without asking again until it is used up or stops."""
        if self.drawing is None and self.spare is None and not self.ahead_refused:
            self._draw(*bound, ahead=True)
        if self.spare is not None or (self.drawing is not None and self.drawing_ahead):
            allowance.low, allowance.wake_at = 0.0, allowance.stop_at

    def close(self) -> None:
        """Admit nothing more on it (the meter settles it): a call must use a new lease."""
        self.closed = True
        for allowance in (self.current, self.spare):
            if allowance is not None:
                allowance.slots = 0

    def quiet(self) -> bool:
        """Whether no call was admitted since the last time this was asked."""
        current = self.current
        seen = (current, -1.0 if current is None else current.slots)
        quiet, self.seen = seen == self.seen, seen
        return quiet

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
            allowance.slots = 0  # nothing more is admitted on it
            while allowance.active > 0:
                allowance.waiter = asyncio.get_running_loop().create_future()
                await allowance.waiter
            allowance.waiter = None
            used = allowance.used(self.pricing)
            await self.link.call("settle", allowance.grant_id, self.context, used)

    def _next(self, prompt: float, completion: float, now: float) -> Allowance | None:
        """Retire the current allowance; promote the spare if it covers the call."""
        if self.current is not None:
            self._retire(self.current)
        self.current, spare, self.spare = self.spare, self.spare, None
        if spare is not None and not spare.need(prompt, completion, now):
            self._retire(spare)
            self.current = spare = None
        return spare

    def _retire(self, allowance: Allowance) -> None:
        allowance.slots = 0  # nothing more is admitted on it: settled with the next draw
        self.retired.append(allowance)

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
        settles = [(a.grant_id, a.used(self.pricing)) for a in done]
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
        allowance = Allowance(grant, (prompt, completion, cost), self.clock.monotonic())
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
