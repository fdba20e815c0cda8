"""The one error tree of agentcast.

Every error the runtime raises on purpose is an ``AgentcastError``::

    AgentcastError
    ├── ConfigurationError            a setting or a cluster that cannot work
    ├── InvalidArgumentError          input that is not plain data or pydantic models
    │   └── PayloadTooLargeError      encoded input above the size limit
    ├── StorageError                  the durable store failed; nothing was acknowledged
    ├── ResourceError                 refused or failed by a resource actor
    │   ├── UnknownOperationError     no such @write or @read method
    │   ├── ConflictError             expected_version did not match
    │   ├── UnauthorizedWriterError   no valid writer token, or not a declared writer
    │   ├── IdempotencyKeyReusedError a committed key sent again with other content
    │   ├── FencedError               a stale incarnation or a stale writer epoch
    │   │   └── StaleLeaseError       a write under a lease older than one the resource saw
    │   ├── WriteFailedError          the write method raised an error that cannot travel
    │   └── ResourceUnavailableError  the actor died or restarted mid-call: outcome unknown
    ├── BudgetExceededError           a cap would be crossed: the model call was not made
    ├── CircuitOpenError              a dependency's breaker is open: the call was not made
    ├── LockError                     refused by the locks actor
    │   ├── LockTimeoutError          the keys were not free within the wait's timeout
    │   ├── LockOrderError            the keys break the global order of the owner's leases
    │   ├── DeadlockError             chosen to break a cycle of waits (the youngest waiter)
    │   └── LeaseExpiredError         the lease is gone: expired, released or killed
    ├── SubtaskFailedError            a supervised subtask failed: reason + attempt history
    ├── AgentError                    raised by the agent layer
    │   ├── UnknownHandlerError       no handler takes that message type
    │   └── HandlerOutputError        a handler returned something other than its output model
    └── ModelError                    a model call failed; carries the endpoint it called
        ├── ModelUnavailableError     the endpoint failed (5xx, connection refused)
        ├── ModelTimeoutError         no reply within the client's timeout
        ├── ModelRateLimitedError     429: slow down, maybe for retry_after
        ├── ModelAuthError            401/403: the credentials were refused
        ├── ModelRequestError         another 4xx: the request itself is wrong
        ├── ModelResponseError        a body that is not a chat completion
        └── ModelOutputError          a reply that does not validate as the asked schema

The lock errors (``LockError`` and below, ``StaleLeaseError``) are defined in
``runtime._lock_errors``. Every error survives a trip through Ray (pickling):
``__reduce__`` rebuilds it from its message and attributes, so subclasses never have to
mirror their constructor.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._subtask import AttemptRecord


def _rebuild(cls: type[AgentcastError], args: tuple[Any, ...], state: dict[str, Any]) -> Any:
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error


class AgentcastError(Exception):
    """Root of every error agentcast raises on purpose."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.args, dict(self.__dict__)))


class ConfigurationError(AgentcastError):
    """A setting, a declaration or a cluster that cannot work as asked."""


class InvalidArgumentError(AgentcastError):
    """Input that is not plain data (None, bool, int, float, str, bytes, lists, dicts)
    or pydantic models."""


class PayloadTooLargeError(InvalidArgumentError):
    """Encoded input larger than the configured limit.

    Attributes:
        size: encoded size in bytes.
        limit: the limit in bytes.
    """

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"payload of {size} bytes exceeds the limit of {limit} bytes")
        self.size = size
        self.limit = limit


class StorageError(AgentcastError):
    """The durable store failed. Writes of the failed batch were not acknowledged."""


class ResourceError(AgentcastError):
    """Refused or failed by a resource actor.

    Attributes:
        resource: the resource's name.
    """

    def __init__(self, resource: str, message: str) -> None:
        super().__init__(f"{resource}: {message}")
        self.resource = resource


class UnknownOperationError(ResourceError):
    """The resource has no ``@write`` or ``@read`` method of that name."""

    def __init__(self, resource: str, operation: str) -> None:
        super().__init__(resource, f"no @write or @read method named {operation!r}")
        self.operation = operation


class ConflictError(ResourceError):
    """A write's ``expected_version`` did not match the resource's version.

    Attributes:
        expected: the version the writer expected.
        current: the version the resource is at.
    """

    def __init__(self, resource: str, expected: int, current: int) -> None:
        super().__init__(resource, f"expected version {expected}, resource is at {current}")
        self.expected = expected
        self.current = current


class UnauthorizedWriterError(ResourceError):
    """The call carries no valid writer token, or its writer is not among the
    resource's declared writers. The attempt is logged.

    Attributes:
        writer: the writer the call named (for a call without a valid token, a claim).
        declared: the declared writers, sorted (empty when every writer is admitted).
    """

    def __init__(
        self, resource: str, writer: str, declared: tuple[str, ...] = (), why: str = ""
    ) -> None:
        listed = ", ".join(repr(w) for w in declared) or "any writer with a valid token"
        reason = why or f"writer {writer!r} is not a declared writer"
        super().__init__(resource, f"{reason} (declared: {listed})")
        self.writer = writer
        self.declared = declared


class IdempotencyKeyReusedError(ResourceError):
    """An idempotency key that already committed came again with another writer,
    operation or arguments: never someone else's stored result. Nothing was applied.

    Attributes:
        key: the idempotency key.
    """

    def __init__(self, resource: str, key: str) -> None:
        super().__init__(resource, f"idempotency key {key!r} already committed with other content")
        self.key = key


class FencedError(ResourceError):
    """Refused by fencing: a stale resource incarnation, or a writer whose epoch was bumped."""

    def __init__(self, resource: str, reason: str) -> None:
        super().__init__(resource, f"fenced: {reason}")
        self.reason = reason


class WriteFailedError(ResourceError):
    """A write method raised an error that cannot be sent back as itself.

    State is unchanged. Errors that pickle are raised to the caller as themselves.
    """

    def __init__(self, resource: str, operation: str, error_type: str, detail: str) -> None:
        super().__init__(resource, f"{operation} raised {error_type}: {detail}")
        self.operation = operation
        self.error_type = error_type
        self.detail = detail


class ResourceUnavailableError(ResourceError):
    """The resource actor died or restarted during the call: the write may or may not
    have been applied. Retry with the same idempotency key to learn which."""


class BudgetExceededError(AgentcastError):
    """A budget refused: spending would cross a cap (or retries are exhausted). Nothing
    was called; a subtask that raises it fails with reason budget.

    Attributes:
        scope: the exhausted scope, ``"<kind>:<key>"`` (``"run:4bf9..."``, ``"cluster:*"``).
        dimension: what ran out (``"cost"``, ``"prompt_tokens"``, ``"retries"``, ...).
        cap: the cap, or None for a retry budget (a ratio, not a cap).
        requested: what the call needed.
        available: what was left.
    """

    def __init__(
        self,
        *,
        scope: str,
        dimension: str,
        cap: float | None,
        requested: float,
        available: float,
    ) -> None:
        limit = "" if cap is None else f" of cap {cap:g}"
        super().__init__(
            f"budget exceeded: {scope} {dimension} needs {requested:g}, {available:g} left{limit}"
        )
        self.scope = scope
        self.dimension = dimension
        self.cap = cap
        self.requested = requested
        self.available = available


class CircuitOpenError(AgentcastError):
    """The circuit breaker of a dependency (model endpoint, tool) is open for the whole
    cluster: the call was refused at once, without reaching the dependency.

    Attributes:
        dependency: the dependency's name (a model client's ``endpoint``, a tool name).
        retry_after: how long until the breaker admits a probe, or None when unknown.
    """

    def __init__(self, dependency: str, *, retry_after: timedelta | None = None) -> None:
        after = "" if retry_after is None else f", probe in {retry_after.total_seconds():.3g}s"
        super().__init__(f"circuit open for {dependency}{after}")
        self.dependency = dependency
        self.retry_after = retry_after


class SubtaskFailedError(AgentcastError):
    """A supervised subtask failed for good: never an empty success.

    Attributes:
        subtask_id: the subtask.
        reason: the ``FailureReason`` value of the last failure (``"schema"``,
            ``"deadline"``, ``"agent_died"``, ``"killed"``...).
        detail: what went wrong, and why it was not tried again.
        attempts: every attempt, in order, late results included.
    """

    def __init__(
        self, subtask_id: str, reason: str, detail: str, attempts: tuple[AttemptRecord, ...]
    ) -> None:
        super().__init__(f"subtask {subtask_id} failed ({reason}): {detail}")
        self.subtask_id = subtask_id
        self.reason = reason
        self.detail = detail
        self.attempts = attempts


class AgentError(AgentcastError):
    """Raised by the agent layer."""


class UnknownHandlerError(AgentError):
    """No handler of the agent takes the message's type."""

    def __init__(self, agent: str, message_type: str) -> None:
        super().__init__(f"agent {agent!r} has no handler for {message_type}")
        self.agent = agent
        self.message_type = message_type


class HandlerOutputError(AgentError):
    """A handler returned a value that does not validate as its declared output model."""

    def __init__(self, agent: str, handler: str, detail: str) -> None:
        super().__init__(f"agent {agent!r} handler {handler!r} returned bad output: {detail}")
        self.agent = agent
        self.handler = handler
        self.detail = detail


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
