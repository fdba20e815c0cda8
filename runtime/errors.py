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
    │   ├── NotOwnerError             the entity is owned by another agent
    │   ├── ConflictLostError         the conflict ladder settled against the write
    │   ├── ConstraintViolationError  the write breaks a constraint its task carries
    │   ├── InvariantViolationError   the write would break an invariant of the whole state
    │   ├── StaleContextError         the write's task was briefed on an older decision
    │   └── ResourceUnavailableError  the actor died or restarted mid-call: outcome unknown
    ├── ProvenanceError               input less trusted than a write or stage requires
    ├── BudgetExceededError           a cap would be crossed: the model call was not made
    ├── CircuitOpenError              a dependency's breaker is open: the call was not made
    ├── LockError                     refused by the locks actor
    │   ├── LockTimeoutError          the keys were not free within the wait's timeout
    │   ├── LockOrderError            the keys break the global order of the owner's leases
    │   ├── DeadlockError             chosen to break a cycle of waits (the youngest waiter)
    │   └── LeaseExpiredError         the lease is gone: expired, released or killed
    ├── ConstraintLoosenedError       an agent handed on a looser constraint set
    ├── ContractMismatchError         a message speaks another version of a contract
    ├── EventError                    refused by the events layer
    │   ├── EmitOutsideWriteError     emit() called outside a @write being applied
    │   ├── MalformedEventError       not a pydantic event, unserializable or too large
    │   ├── UnknownEventTypeError     a type the resource or subscriber does not declare
    │   ├── UnknownDeadLetterError    a redelivery of an event the group has not dead-lettered
    │   └── VisibilityError           refused by decision visibility
    │       ├── UnknownSubscriberError the policy names an agent that cannot hear the event
    │       ├── VetoedError           a within-transaction validator vetoed the write
    │       └── ValidatorFailedError  a validator missed its deadline, died or raised
    ├── SubtaskFailedError            a supervised subtask failed: reason + attempt history
    ├── AgentError                    raised by the agent layer
    │   ├── UnknownHandlerError       no handler takes that message type
    │   ├── HandlerOutputError        a handler returned something other than its output model
    │   └── AgentGoneError            a pooled agent is no longer on its host (killed)
    └── ModelError                    a model call failed; carries the endpoint it called
        ├── ModelUnavailableError     the endpoint failed (5xx, connection refused)
        ├── ModelTimeoutError         no reply within the client's timeout
        ├── ModelRateLimitedError     429: slow down, maybe for retry_after
        ├── ModelAuthError            401/403: the credentials were refused
        ├── ModelRequestError         another 4xx: the request itself is wrong
        ├── ModelResponseError        a body that is not a chat completion
        └── ModelOutputError          a reply that does not validate as the asked schema

The lock errors (``LockError`` and below, ``StaleLeaseError``) are defined in
``runtime._lock_errors``; the event errors (``EventError`` and below) in
``runtime._event_errors`` (and ``VisibilityError`` and below in
``runtime._visibility_errors``); the constraint and invariant errors in
``runtime._constraint_errors``; the shared-context errors in ``runtime._context_errors``.
Every error survives a trip through Ray (pickling):
``__reduce__`` rebuilds it from its message and attributes, so subclasses never have to
mirror their constructor.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from ._error_root import AgentcastError as AgentcastError
from ._model_errors import ModelAuthError as ModelAuthError
from ._model_errors import ModelError as ModelError
from ._model_errors import ModelOutputError as ModelOutputError
from ._model_errors import ModelRateLimitedError as ModelRateLimitedError
from ._model_errors import ModelRequestError as ModelRequestError
from ._model_errors import ModelResponseError as ModelResponseError
from ._model_errors import ModelTimeoutError as ModelTimeoutError
from ._model_errors import ModelUnavailableError as ModelUnavailableError

if TYPE_CHECKING:
    from ._subtask import AttemptRecord


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


class NotOwnerError(ResourceError):
    """A write to an entity owned by another agent, or a change of its ownership by
    someone other than its owner or the system: refused, and the attempt logged.

    Attributes:
        entity: the entity. owner: its owner ("" when it has none). writer: who tried.
    """

    def __init__(self, resource: str, entity: str, owner: str, writer: str) -> None:
        held = f"owned by {owner!r}" if owner else "not owned by anyone"
        super().__init__(resource, f"entity {entity!r} is {held}, refused for {writer!r}")
        self.entity, self.owner, self.writer = entity, owner, writer


class ConflictLostError(ResourceError):
    """The conflict ladder settled a refused write's conflict against it: nothing applied.

    Attributes:
        conflict_id: the conflict (the write's idempotency key). level: the level that
            settled it (1 rules, 2 negotiation, 3 arbiter, 4 human; 0 none could).
    """

    def __init__(self, resource: str, conflict_id: str, level: int, detail: str) -> None:
        super().__init__(resource, f"conflict {conflict_id} lost at level {level}: {detail}")
        self.conflict_id, self.level, self.detail = conflict_id, level, detail


class ProvenanceError(AgentcastError):
    """Input less trusted than a write or a stage requires: refused (a refused write is
    logged as a rejection with its trace), nothing applied.

    Attributes:
        where: the resource (``resource:op``) or the stage that refused.
        required: the least mark it accepts. actual: the mark the input had.
    """

    def __init__(self, where: str, required: str, actual: str) -> None:
        super().__init__(f"{where}: requires provenance {required}, the input is {actual}")
        self.where, self.required, self.actual = where, required, actual


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


class AgentGoneError(AgentError):
    """A call reached a pooled agent's host, but the agent is no longer there: it was
    killed (kill switch), or the host restarted without it."""

    def __init__(self, agent: str, host: str) -> None:
        super().__init__(f"agent {agent!r} is not on host {host!r}")
        self.agent = agent
        self.host = host
