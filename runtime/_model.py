"""What agents need of a model: messages in, a completion and its token usage out."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, TypeVar

from pydantic import BaseModel, ValidationError

from policies import Provenance

from .errors import InvalidArgumentError, ModelOutputError

Role = Literal["system", "user", "assistant"]

_ROLES: frozenset[str] = frozenset({"system", "user", "assistant"})

# A rough tokens-per-character ratio for English text; an estimate used to reserve budget
# before a call, always settled later with the usage the endpoint reports.
_CHARS_PER_TOKEN = 4
# Chat formats wrap each message in a few tokens of framing (role, separators).
_TOKENS_PER_MESSAGE = 4

SchemaT = TypeVar("SchemaT", bound=BaseModel)


@dataclass(frozen=True, slots=True, kw_only=True)
class Message:
    """One chat message.

    Attributes:
        role: "system", "user" or "assistant".
        content: the message text.
    """

    role: Role
    content: str

    def __post_init__(self) -> None:
        if self.role not in _ROLES:
            raise InvalidArgumentError(f"message role must be one of {sorted(_ROLES)}")
        if not isinstance(self.content, str):
            raise InvalidArgumentError("message content must be a str")


@dataclass(frozen=True, slots=True, kw_only=True)
class Usage:
    """Tokens one model call consumed.

    Attributes:
        prompt_tokens: tokens of the input messages.
        completion_tokens: tokens of the reply.
    """

    prompt_tokens: int
    completion_tokens: int

    def __post_init__(self) -> None:
        if self.prompt_tokens < 0 or self.completion_tokens < 0:
            raise InvalidArgumentError("token counts cannot be negative")

    @property
    def total(self) -> int:
        """Prompt and completion tokens together."""
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True, kw_only=True)
class Completion:
    """The result of one model call.

    Attributes:
        text: the reply text, or None when the model sent no text.
        parsed: the reply validated as the schema asked for, or None when none was asked.
        usage: the tokens the call consumed.
        model: the model that replied.
        finish_reason: why the model stopped ("stop", "length", ...), or None when unknown.
        provenance: always UNVERIFIED_AGENT: a model's reply is nobody's checked claim,
            and what a handler derives from it is marked so.
    """

    text: str | None
    parsed: BaseModel | None
    usage: Usage
    model: str
    finish_reason: str | None
    provenance: Provenance = Provenance.UNVERIFIED_AGENT


class ModelClient(Protocol):
    """A chat model. ``ScriptedModel`` and ``OpenAICompatibleClient`` implement it.

    Attributes:
        endpoint: names the dependency this client calls; the key of its circuit breaker.
        model: the model name sent with each call.
    """

    @property
    def endpoint(self) -> str: ...

    @property
    def model(self) -> str: ...

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int,
        schema: type[BaseModel] | None = None,
    ) -> Completion:
        """Ask the model for a reply to ``messages``.

        Args:
            messages: the conversation, oldest first.
            max_tokens: the most completion tokens the reply may use.
            schema: when given, the reply must be JSON that validates as this model; the
                result's ``parsed`` holds it.

        Raises:
            ModelOutputError: the reply does not validate as ``schema``.
            ModelError: any other failure of the call (a subclass says which).
        """
        ...


def estimate_text_tokens(text: str) -> int:
    """A deterministic estimate of the tokens of ``text``: one per four characters."""
    return math.ceil(len(text) / _CHARS_PER_TOKEN)


def estimate_prompt_tokens(messages: Sequence[Message]) -> int:
    """A deterministic estimate of the prompt tokens of ``messages``, to reserve budget
    before a call: each message's text estimate plus four tokens of framing."""
    # A plain loop and integer arithmetic (``estimate_text_tokens`` inline): every metered
    # call runs this, and a generator of function calls cost about a microsecond.
    total = 0
    for message in messages:
        total += -(-len(message.content) // _CHARS_PER_TOKEN) + _TOKENS_PER_MESSAGE
    return total


def check_max_tokens(max_tokens: int) -> None:
    """Refuse a ``max_tokens`` that no call can honour.

    Raises:
        InvalidArgumentError: ``max_tokens`` is not a positive int.
    """
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise InvalidArgumentError(f"max_tokens must be a positive int, got {max_tokens!r}")


def parse_reply(
    text: str | None,
    schema: type[SchemaT],
    *,
    finish_reason: str | None,
    endpoint: str,
) -> SchemaT:
    """Validate a reply as ``schema``.

    A reply cut off at the token limit is refused even when it happens to parse: the model
    did not finish what it meant to say.

    Raises:
        ModelOutputError: no text, truncated output, invalid JSON or wrong fields.
    """

    def refuse(detail: str) -> ModelOutputError:
        return ModelOutputError(
            endpoint=endpoint,
            schema=schema.__name__,
            text=text,
            detail=detail,
            finish_reason=finish_reason,
        )

    if text is None:
        raise refuse("the model sent no text")
    if finish_reason == "length":
        raise refuse("the reply was truncated at the token limit")
    try:
        return schema.model_validate_json(text)
    except ValidationError as error:
        raise refuse(str(error)) from None
