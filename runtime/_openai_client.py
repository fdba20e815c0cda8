"""A client for any OpenAI-compatible chat-completions endpoint (vLLM, Ollama, a gateway)."""

from __future__ import annotations

import asyncio
import math
import os
from collections.abc import Mapping, Sequence
from datetime import timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, ValidationError

from ._clock import Clock, SystemClock
from ._model import Completion, Message, Usage, check_max_tokens, parse_reply
from .errors import (
    ConfigurationError,
    ModelAuthError,
    ModelError,
    ModelRateLimitedError,
    ModelRequestError,
    ModelResponseError,
    ModelTimeoutError,
    ModelUnavailableError,
)

ENV_BASE_URL = "AGENTCAST_MODEL_BASE_URL"
ENV_API_KEY = "AGENTCAST_MODEL_API_KEY"
ENV_MODEL = "AGENTCAST_MODEL"

# Enough of an error body to say what went wrong without copying a whole page into a log.
_DETAIL_CHARS = 300
# Retry-After is capped at a day: a longer wait is an outage, better left to the breaker.
_MAX_RETRY_AFTER = 86_400.0


class _WireMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    content: str | None = None


class _WireChoice(BaseModel):
    model_config = ConfigDict(extra="ignore")
    message: _WireMessage
    finish_reason: str | None = None


class _WireUsage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    prompt_tokens: NonNegativeInt
    completion_tokens: NonNegativeInt


class _WireCompletion(BaseModel):
    """The parts of a chat-completions response body the client reads."""

    model_config = ConfigDict(extra="ignore")
    choices: list[_WireChoice] = Field(min_length=1)
    usage: _WireUsage
    model: str | None = None


class OpenAICompatibleClient:
    """A ``ModelClient`` for an OpenAI-compatible ``/chat/completions`` endpoint.

    Usage is read from the response, never estimated. The client holds no connection
    between calls, so it pickles and travels to Ray actors.

    Args:
        base_url: the API root, e.g. ``http://localhost:8000/v1``; the client posts to
            ``{base_url}/chat/completions``.
        api_key: sent as a bearer token; an empty key sends no Authorization header.
        model: the model name sent with each call.
        timeout: how long one call may take, end to end. Default 60 seconds.
        clock: used only to turn a Retry-After date into a delay. Default ``SystemClock()``.

    Raises:
        ConfigurationError: an empty base_url or model, or a timeout that is not positive.
    """

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        model: str,
        timeout: timedelta = timedelta(seconds=60),
        clock: Clock | None = None,
    ) -> None:
        if not base_url or not model:
            raise ConfigurationError("a model client needs a base_url and a model")
        if timeout <= timedelta(0):
            raise ConfigurationError("the model client's timeout must be positive")
        self._base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._model = model
        self._timeout = timeout
        self._clock: Clock = clock if clock is not None else SystemClock()

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        timeout: timedelta = timedelta(seconds=60),
    ) -> OpenAICompatibleClient:
        """Build a client from ``AGENTCAST_MODEL_BASE_URL``, ``AGENTCAST_MODEL_API_KEY``
        and ``AGENTCAST_MODEL``.

        Args:
            environ: where to read the variables. Default ``os.environ``.
            timeout: how long one call may take. Default 60 seconds.

        Raises:
            ConfigurationError: a variable is missing or empty.
        """
        env = os.environ if environ is None else environ
        names = (ENV_BASE_URL, ENV_API_KEY, ENV_MODEL)
        missing = [name for name in names if not env.get(name)]
        if missing:
            raise ConfigurationError(f"set {', '.join(missing)} to use a model endpoint")
        return cls(
            base_url=env[ENV_BASE_URL],
            api_key=env[ENV_API_KEY],
            model=env[ENV_MODEL],
            timeout=timeout,
        )

    @property
    def endpoint(self) -> str:
        """The dependency's name: ``<model>@<base_url>``."""
        return f"{self._model}@{self._base_url}"

    @property
    def model(self) -> str:
        """The model name sent with each call."""
        return self._model

    @property
    def timeout(self) -> timedelta:
        """How long one call may take, end to end."""
        return self._timeout

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        max_tokens: int,
        schema: type[BaseModel] | None = None,
    ) -> Completion:
        """Post the messages and return the reply with the usage the endpoint reports.

        Raises:
            InvalidArgumentError: ``max_tokens`` is not a positive int.
            ModelRateLimitedError: 429, with the Retry-After delay when given.
            ModelUnavailableError: a 5xx status, or the endpoint could not be reached.
            ModelAuthError: 401 or 403.
            ModelRequestError: any other status that is not 200.
            ModelTimeoutError: no complete reply within the timeout.
            ModelResponseError: a body that is not a chat completion.
            ModelOutputError: the reply does not validate as ``schema`` (or was truncated).
        """
        check_max_tokens(max_tokens)
        response = await self._post(self._request_body(messages, max_tokens, schema))
        self._raise_for_status(response)
        wire = self._parse_body(response.content)
        choice = wire.choices[0]
        text, finish_reason = choice.message.content, choice.finish_reason
        parsed = None
        if schema is not None:
            parsed = parse_reply(text, schema, finish_reason=finish_reason, endpoint=self.endpoint)
        return Completion(
            text=text,
            parsed=parsed,
            usage=Usage(
                prompt_tokens=wire.usage.prompt_tokens,
                completion_tokens=wire.usage.completion_tokens,
            ),
            model=wire.model or self._model,
            finish_reason=finish_reason,
        )

    def _request_body(
        self, messages: Sequence[Message], max_tokens: int, schema: type[BaseModel] | None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self._model,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "max_tokens": max_tokens,
        }
        if schema is not None:
            body["response_format"] = {"type": "json_object"}
        return body

    async def _post(self, body: dict[str, Any]) -> httpx.Response:
        headers = {"Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        seconds = self._timeout.total_seconds()
        try:
            # httpx bounds each phase; the outer timeout bounds the whole call, so a
            # server that trickles bytes cannot hold it past the deadline.
            async with asyncio.timeout(seconds), httpx.AsyncClient(timeout=seconds) as client:
                return await client.post(
                    f"{self._base_url}/chat/completions", json=body, headers=headers
                )
        except (TimeoutError, httpx.TimeoutException):
            raise ModelTimeoutError(endpoint=self.endpoint, timeout=self._timeout) from None
        except httpx.HTTPError as error:
            raise ModelUnavailableError(
                f"{type(error).__name__}: {error}", endpoint=self.endpoint
            ) from None

    def _raise_for_status(self, response: httpx.Response) -> None:
        status = response.status_code
        if status == 200:
            return
        detail = response.text[:_DETAIL_CHARS]
        error: ModelError
        if status == 429:
            retry_after = self._retry_after(response.headers.get("Retry-After"))
            error = ModelRateLimitedError(endpoint=self.endpoint, retry_after=retry_after)
        elif status >= 500:
            error = ModelUnavailableError(detail, endpoint=self.endpoint, status=status)
        elif status in (401, 403):
            error = ModelAuthError(endpoint=self.endpoint, status=status, detail=detail)
        else:
            error = ModelRequestError(endpoint=self.endpoint, status=status, detail=detail)
        raise error

    def _retry_after(self, header: str | None) -> timedelta | None:
        """Read Retry-After as seconds or as an HTTP date; None when absent or unreadable."""
        if header is None:
            return None
        try:
            seconds = float(header)
        except ValueError:
            pass
        else:
            if not math.isfinite(seconds) or seconds < 0:
                return None
            return timedelta(seconds=min(seconds, _MAX_RETRY_AFTER))
        try:
            when = parsedate_to_datetime(header)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            return None
        return max(timedelta(0), when - self._clock.now())

    def _parse_body(self, body: bytes) -> _WireCompletion:
        try:
            return _WireCompletion.model_validate_json(body)
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "body"
            detail = f"{where}: {first['msg']}"
            raise ModelResponseError(detail, endpoint=self.endpoint) from None

    def __repr__(self) -> str:
        # The key is left out so it does not end up in logs.
        return f"OpenAICompatibleClient(base_url={self._base_url!r}, model={self._model!r})"
