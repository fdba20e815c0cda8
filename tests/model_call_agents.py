"""An agent that makes a few model calls per task, one of which fails (for the trace of
each model call)."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel

from actors import Agent, handler
from runtime import Message, ModelUnavailableError, ScriptedModel, ScriptedRule

LATENCY = timedelta(milliseconds=30)


class Chat(BaseModel):
    prompts: list[str]


class Usage(BaseModel):
    tokens: list[tuple[int, int]]  # (input, output) per call that answered
    failed: int


class Chatty(Agent):
    @handler
    async def chat(self, task: Chat) -> Usage:
        tokens, failed = [], 0
        for prompt in task.prompts:
            try:
                reply = await self.model.complete(
                    [Message(role="user", content=prompt)], max_tokens=20
                )
            except ModelUnavailableError:
                failed += 1
                continue
            tokens.append((reply.usage.prompt_tokens, reply.usage.completion_tokens))
        return Usage(tokens=tokens, failed=failed)


def chatty_model() -> ScriptedModel:
    """Replies of different lengths; ``down`` fails as an endpoint does."""
    return ScriptedModel(
        rules=[
            ScriptedRule(pattern="down", error=ModelUnavailableError("down")),
            ScriptedRule(pattern="long", reply="a much longer answer than the others"),
        ],
        default_reply="short",
        latency=LATENCY,
    )
