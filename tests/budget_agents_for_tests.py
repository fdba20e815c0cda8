"""Agents of the budget tests (importable by Ray workers by reference)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from actors import Agent, handler
from actors._budget.meter import process_meter
from actors.lowlevel import SpendContext
from runtime import BudgetExceededError, Message, ResourceUnavailableError


class Ask(BaseModel):
    prompt: str
    max_tokens: int = 16


class Answer(BaseModel):
    text: str
    prompt_tokens: int
    completion_tokens: int


class Outcome(BaseModel):
    ok: bool
    error: str = ""
    detail: str = ""
    model_calls: int = 0


class Asker(Agent):
    """Asks its (metered) model once per message."""

    @handler
    async def ask(self, message: Ask) -> Answer:
        completion = await self.model.complete(
            [Message(role="user", content=message.prompt)], max_tokens=message.max_tokens
        )
        usage = completion.usage
        return Answer(
            text=completion.text or "",
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
        )


class TryAsk(BaseModel):
    prompt: str
    max_tokens: int = 16


class SettleNow(BaseModel):
    """Settle what the replica holds now, rather than when its leases run out."""


class TryAsker(Agent):
    """Asks once and says how it went, typed errors included."""

    @handler
    async def ask(self, message: TryAsk) -> Outcome:
        try:
            await self.model.complete(
                [Message(role="user", content=message.prompt)], max_tokens=message.max_tokens
            )
        except Exception as error:
            return Outcome(
                ok=False, error=type(error).__name__, detail=str(error), model_calls=self.calls
            )
        return Outcome(ok=True, model_calls=self.calls)

    @handler
    async def settle_now(self, message: SettleNow) -> Outcome:
        """Settle this replica's leases with the budget actor at once."""
        await process_meter(self.namespace, f"{self.name}:{self.replica}").flush()
        return Outcome(ok=True, model_calls=self.calls)

    @property
    def calls(self) -> int:
        # self.model: each call recorded for the trace, around the metered model, around
        # the scripted one that counts the calls really made
        return int(self.model.inner.inner.call_count)


class Spend(BaseModel):
    run: str
    calls: int
    amount: float


class Spent(BaseModel):
    settled: float
    refused: int
    unavailable: int


class Banker(Agent):
    """Reserves and settles against one cap, straight on the budget actor, keeping its own
    record of what it settled (the bank test)."""

    max_concurrency = 4

    @handler
    async def spend(self, message: Spend) -> Spent:
        from actors._budget.client import BudgetLink

        link = BudgetLink(self.namespace)
        context = SpendContext(run=message.run, agent=f"{self.name}:{self.replica}")
        settled, refused, unavailable = 0.0, 0, 0
        for i in range(message.calls):
            grant_id = f"{context.agent}:{self.task.task_id}:{i}"
            need = {"cost": message.amount}
            try:
                await link.call("reserve", grant_id, context, need, None, context.agent)
            except BudgetExceededError:
                refused += 1
                continue
            except ResourceUnavailableError:
                unavailable += 1
                continue
            used = {"cost": message.amount * (0.5 + (i % 2) * 0.5)}
            counted: Any = await link.call("settle", grant_id, context, used)
            if counted:
                settled += used["cost"]
        return Spent(settled=settled, refused=refused, unavailable=unavailable)


class Hold(BaseModel):
    prompt: str


class Holder(Agent):
    """Makes one model call, then holds its lease until it is killed."""

    max_concurrency = 2

    @handler
    async def hold(self, message: Hold) -> Outcome:
        import asyncio

        await self.model.complete([Message(role="user", content=message.prompt)], max_tokens=8)
        await asyncio.Event().wait()  # never set: the kill switch ends it
        return Outcome(ok=True)


class UseTool(BaseModel):
    tool: str
    fail: bool = False


class ToolUser(Agent):
    """Calls a tool through ``self.budget.guard`` and retries through ``self.budget``; it
    has no model, so nothing started the budget actor for it."""

    @handler
    async def use(self, message: UseTool) -> Outcome:
        try:
            async with self.budget.guard(message.tool):
                if message.fail:
                    raise RuntimeError("tool down")
            await self.budget.retry(message.tool)
        except Exception as error:
            return Outcome(ok=False, error=type(error).__name__, detail=str(error))
        return Outcome(ok=True)


class RetryTool(BaseModel):
    tool: str


class Waited(BaseModel):
    allowed: bool
    asked: int
    waited_s: float


class PatientRetrier(Agent):
    """Asks for a retry of a tool, honouring ``retry_after`` while the breaker is open."""

    @handler
    async def retry(self, message: RetryTool) -> Waited:
        import asyncio

        waited = 0.0
        for asked in range(1, 21):
            decision = await self.budget.try_retry(message.tool)
            if decision.allowed or decision.reason != "circuit_open":
                return Waited(allowed=decision.allowed, asked=asked, waited_s=waited)
            pause = decision.retry_after if decision.retry_after else 0.05
            await asyncio.sleep(pause)
            waited += pause
        return Waited(allowed=False, asked=20, waited_s=waited)
