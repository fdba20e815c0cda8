"""The ``ModelError`` family of the error tree drawn in ``runtime.errors``, which
re-exports every one of them."""

from __future__ import annotations

from datetime import timedelta

from ._error_root import AgentcastError


class ModelError(AgentcastError):
    """A model call failed.

    Attributes:
        endpoint: the dependency that failed (the client's ``endpoint``), the key of its
            circuit breaker; empty when unknown.
    """

    def __init__(self, message: str, *, endpoint: str = "") -> None:
        super().__init__(f"{endpoint}: {message}" if endpoint else message)
        self.endpoint = endpoint


class ModelUnavailableError(ModelError):
    """The endpoint failed: a 5xx status or no connection. Retryable.

    Attributes:
        status: the HTTP status, or None when no response arrived.
    """

    def __init__(
        self, detail: str = "unavailable", *, endpoint: str = "", status: int | None = None
    ) -> None:
        super().__init__(detail if status is None else f"{status} {detail}", endpoint=endpoint)
        self.detail = detail
        self.status = status


class ModelTimeoutError(ModelError):
    """No complete reply within the client's timeout. The call may still have been billed.

    Attributes:
        timeout: the timeout that ran out, or None when unknown.
    """

    def __init__(self, *, endpoint: str = "", timeout: timedelta | None = None) -> None:
        after = "" if timeout is None else f" after {timeout.total_seconds():g}s"
        super().__init__(f"timed out{after}", endpoint=endpoint)
        self.timeout = timeout


class ModelRateLimitedError(ModelError):
    """429: the endpoint asks callers to slow down.

    Attributes:
        retry_after: how long the endpoint asked to wait (its Retry-After header), or None.
    """

    def __init__(self, *, endpoint: str = "", retry_after: timedelta | None = None) -> None:
        after = "" if retry_after is None else f", retry after {retry_after.total_seconds():g}s"
        super().__init__(f"rate limited{after}", endpoint=endpoint)
        self.retry_after = retry_after


class ModelAuthError(ModelError):
    """401 or 403: the credentials were refused. Not retryable.

    Attributes:
        status: the HTTP status.
        detail: the start of the response body.
    """

    def __init__(self, *, endpoint: str = "", status: int, detail: str = "") -> None:
        super().__init__(f"{status} credentials refused: {detail}", endpoint=endpoint)
        self.status = status
        self.detail = detail


class ModelRequestError(ModelError):
    """Another 4xx status: the request itself is wrong. Not retryable as is.

    Attributes:
        status: the HTTP status.
        detail: the start of the response body.
    """

    def __init__(self, *, endpoint: str = "", status: int, detail: str = "") -> None:
        super().__init__(f"{status} request refused: {detail}", endpoint=endpoint)
        self.status = status
        self.detail = detail


class ModelResponseError(ModelError):
    """A success status with a body that is not a chat completion.

    Attributes:
        detail: what is wrong with the body.
    """

    def __init__(self, detail: str, *, endpoint: str = "") -> None:
        super().__init__(f"malformed response: {detail}", endpoint=endpoint)
        self.detail = detail


class ModelOutputError(ModelError):
    """The model replied, but the reply does not validate as the schema asked for:
    invalid JSON, wrong fields, no text, or output cut off at the token limit.

    Attributes:
        schema: the name of the schema the reply was checked against.
        text: the raw reply text, or None when the model sent none.
        detail: the validation detail.
        finish_reason: why the model stopped ("length" when truncated), or None.
    """

    def __init__(
        self,
        *,
        endpoint: str = "",
        schema: str,
        text: str | None,
        detail: str,
        finish_reason: str | None = None,
    ) -> None:
        super().__init__(f"reply does not validate as {schema}: {detail}", endpoint=endpoint)
        self.schema = schema
        self.text = text
        self.detail = detail
        self.finish_reason = finish_reason
