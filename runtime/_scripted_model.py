"""A model that replies from a script: deterministic text, latency, usage and failures.

It is the embedded default for the demo and the model of every test: nothing about it
depends on wall-clock time or randomness, and it pickles, so it travels to Ray actors (each
actor then holds its own copy, with its own call counter).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta

from pydantic import BaseModel

from ._clock import Clock, SystemClock
from ._model import (
    Completion,
    Message,
    Usage,
    check_max_tokens,
    estimate_prompt_tokens,
    estimate_text_tokens,
    parse_reply,
)
from .errors import InvalidArgumentError, ModelError, ModelTimeoutError

ReplyFunction = Callable[[Sequence[Message]], str]
"""Builds a reply from the messages. Must pickle (a module-level function) to reach actors."""

# The inverse of the token estimate: a reply of n tokens holds at most this many characters
# per token, so a cap of max_tokens keeps max_tokens * 4 characters.
_CHARS_PER_TOKEN = 4


@dataclass(frozen=True, slots=True, kw_only=True)
class ScriptedRule:
    """How the model answers when ``pattern`` matches the last user message.

    Attributes:
        pattern: a regular expression searched (``re.search``) in the text of the last
            user message. The first matching rule wins.
        reply: the reply text, or a function of the messages that returns it. Default "".
        error: when set, the call raises a copy of this error instead of replying.
            Default None.
        hang: when True, the call waits out the model's timeout, then raises
            ``ModelTimeoutError``. Default False.
        latency: how long the call takes; None uses the model's latency. Default None.
        truncate_after: when set, the reply stops after this many tokens with finish reason
            "length", as a model does at its context limit. Default None.
    """

    pattern: str
    reply: str | ReplyFunction = ""
    error: ModelError | None = None
    hang: bool = False
    latency: timedelta | None = None
    truncate_after: int | None = None

    def __post_init__(self) -> None:
        try:
            re.compile(self.pattern)
        except re.error as error:
            raise InvalidArgumentError(f"bad rule pattern {self.pattern!r}: {error}") from None
        if self.latency is not None and self.latency < timedelta(0):
            raise InvalidArgumentError("rule latency cannot be negative")
        if self.truncate_after is not None and self.truncate_after < 0:
            raise InvalidArgumentError("truncate_after cannot be negative")


@dataclass(frozen=True, slots=True, kw_only=True)
class ScriptedCall:
    """One call the model received, for test assertions.

    Attributes:
        number: the call's position, from 1.
        messages: the messages of the call.
        max_tokens: the call's completion token cap.
        schema: the name of the schema asked for, or None.
    """

    number: int
    messages: tuple[Message, ...]
    max_tokens: int
    schema: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class _Fault:
    first: int
    last: int
    error: ModelError | None
    hang: bool

    def covers(self, number: int) -> bool:
        return self.first <= number <= self.last


class ScriptedModel:
    """A deterministic ``ModelClient``.

    Each call is numbered from 1. A fault covering the call's number wins, then the first
    rule whose pattern matches the last user message, then the default reply. Usage is
    ``estimate_prompt_tokens(messages)`` prompt tokens and one completion token per four
    characters of the reply; a reply longer than ``max_tokens * 4`` characters is cut there
    with finish reason "length". Latency is waited on the injected clock, so a
    ``FakeClock`` makes every call instant; a call slower than ``timeout`` raises
    ``ModelTimeoutError`` once ``timeout`` has passed.

    Args:
        rules: replies and failures by pattern; the first match wins.
        default_reply: the reply when no rule matches (text, or a function of the messages).
        model: the model name reported in completions. Default "scripted".
        latency: how long each call takes unless its rule says otherwise. Default 0.
        timeout: how long a call may take before it times out. Default 60 seconds.
        clock: the clock latency is waited on. Default ``SystemClock()``.

    Raises:
        InvalidArgumentError: a negative latency or a timeout that is not positive.
    """

    def __init__(
        self,
        *,
        rules: Sequence[ScriptedRule] = (),
        default_reply: str | ReplyFunction = "ok",
        model: str = "scripted",
        latency: timedelta = timedelta(0),
        timeout: timedelta = timedelta(seconds=60),
        clock: Clock | None = None,
    ) -> None:
        if latency < timedelta(0):
            raise InvalidArgumentError("latency cannot be negative")
        if timeout <= timedelta(0):
            raise InvalidArgumentError("timeout must be positive")
        self._rules = [(re.compile(rule.pattern), rule) for rule in rules]
        self._default_reply = default_reply
        self._model = model
        self._latency = latency
        self._timeout = timeout
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._faults: list[_Fault] = []
        self._calls: list[ScriptedCall] = []

    @property
    def endpoint(self) -> str:
        """The dependency's name: ``scripted:<model>``."""
        return f"scripted:{self._model}"

    @property
    def model(self) -> str:
        """The model name reported in completions."""
        return self._model

    @property
    def call_count(self) -> int:
        """How many calls the model has received, failed ones included."""
        return len(self._calls)

    @property
    def calls(self) -> tuple[ScriptedCall, ...]:
        """Every call received, in order."""
        return tuple(self._calls)

    def fail_calls(
        self,
        first: int,
        last: int | None = None,
        *,
        error: ModelError | None = None,
        hang: bool = False,
    ) -> None:
        """Make calls ``first`` to ``last`` (inclusive, counted from 1) fail.

        Args:
            first: the first call to fail.
            last: the last call to fail; None means only ``first``.
            error: raise a copy of this error.
            hang: instead of an error, wait out the timeout and raise ``ModelTimeoutError``.

        Raises:
            InvalidArgumentError: not exactly one of ``error`` and ``hang``, or a bad range.
        """
        last = first if last is None else last
        if (error is None) == (not hang):
            raise InvalidArgumentError("give exactly one of error= and hang=True")
        if first < 1 or last < first:
            raise InvalidArgumentError(f"bad call range {first}..{last}")
        self._faults.append(_Fault(first=first, last=last, error=error, hang=hang))

    def fail_next(
        self, count: int = 1, *, error: ModelError | None = None, hang: bool = False
    ) -> None:
        """Make the next ``count`` calls fail (see ``fail_calls``).

        Raises:
            InvalidArgumentError: not exactly one of ``error`` and ``hang``, or count < 1.
        """
        if count < 1:
            raise InvalidArgumentError("count must be at least 1")
        done = self.call_count
        self.fail_calls(done + 1, done + count, error=error, hang=hang)

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int,
        schema: type[BaseModel] | None = None,
    ) -> Completion:
        """Reply as scripted. See the class docstring for the order of precedence.

        Raises:
            InvalidArgumentError: ``max_tokens`` is not a positive int.
            ModelTimeoutError: the call hangs, or its latency exceeds the timeout.
            ModelOutputError: the reply does not validate as ``schema`` (or was truncated).
            ModelError: an error injected by a rule or a fault.
        """
        check_max_tokens(max_tokens)
        number = self.call_count + 1
        self._calls.append(
            ScriptedCall(
                number=number,
                messages=tuple(messages),
                max_tokens=max_tokens,
                schema=None if schema is None else schema.__name__,
            )
        )
        rule = self._match(messages)
        latency = self._latency if rule is None or rule.latency is None else rule.latency
        fault = next((f for f in self._faults if f.covers(number)), None)
        if fault is not None:
            await self._fail(fault.error, hang=fault.hang, latency=latency)
        if rule is not None and (rule.error is not None or rule.hang):
            await self._fail(rule.error, hang=rule.hang, latency=latency)
        await self._wait(latency)
        return self._reply(messages, rule, max_tokens, schema)

    def _match(self, messages: Sequence[Message]) -> ScriptedRule | None:
        last_user = next((m.content for m in reversed(messages) if m.role == "user"), "")
        return next((rule for pattern, rule in self._rules if pattern.search(last_user)), None)

    async def _wait(self, latency: timedelta) -> None:
        if latency > self._timeout:
            await self._clock.sleep(self._timeout.total_seconds())
            raise ModelTimeoutError(endpoint=self.endpoint, timeout=self._timeout)
        if latency > timedelta(0):
            await self._clock.sleep(latency.total_seconds())

    async def _fail(self, error: ModelError | None, *, hang: bool, latency: timedelta) -> None:
        if hang or error is None:
            await self._clock.sleep(self._timeout.total_seconds())
            raise ModelTimeoutError(endpoint=self.endpoint, timeout=self._timeout)
        await self._wait(latency)
        # A copy: raising one shared instance again would chain its old traceback.
        raise copy.copy(error)

    def _reply(
        self,
        messages: Sequence[Message],
        rule: ScriptedRule | None,
        max_tokens: int,
        schema: type[BaseModel] | None,
    ) -> Completion:
        source = self._default_reply if rule is None else rule.reply
        text = source if isinstance(source, str) else source(messages)
        if not isinstance(text, str):
            raise InvalidArgumentError(f"a reply function returned {type(text).__name__}")
        cap = max_tokens
        if rule is not None and rule.truncate_after is not None:
            cap = min(cap, rule.truncate_after)
        finish_reason = "stop"
        if len(text) > cap * _CHARS_PER_TOKEN:
            text, finish_reason = text[: cap * _CHARS_PER_TOKEN], "length"
        usage = Usage(
            prompt_tokens=estimate_prompt_tokens(messages),
            completion_tokens=estimate_text_tokens(text),
        )
        parsed = None
        if schema is not None:
            parsed = parse_reply(text, schema, finish_reason=finish_reason, endpoint=self.endpoint)
        return Completion(
            text=text, parsed=parsed, usage=usage, model=self._model, finish_reason=finish_reason
        )

    def __repr__(self) -> str:
        return f"ScriptedModel(model={self._model!r}, rules={len(self._rules)})"
