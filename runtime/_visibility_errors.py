"""The decision-visibility errors of the tree drawn in ``runtime.errors``: a policy naming
an agent that cannot hear, a write a validator vetoed, and a validator that failed."""

from __future__ import annotations

from ._event_errors import EventError


class VisibilityError(EventError):
    """Refused by decision visibility (``policies.VisibilityPolicy``)."""


class UnknownSubscriberError(VisibilityError):
    """The visibility policy names an agent that is not running, or that has no handler
    for the event type (``@subscribe`` for ``immediate``, ``@validate`` for
    ``within_transaction``): the system refuses the policy.

    Attributes:
        event_type: the rule's event type name.
        agent: the agent it names.
        why: what is missing.
    """

    def __init__(self, event_type: str, agent: str, why: str) -> None:
        super().__init__(f"visibility of {event_type}: agent {agent!r} {why}")
        self.event_type = event_type
        self.agent = agent
        self.why = why


class VetoedError(VisibilityError):
    """A ``within_transaction`` validator vetoed the write: nothing was applied, and the
    refusal is in the resource's log with the write's trace.

    Attributes:
        resource: the resource that refused the write.
        event_type: the event the write would have emitted.
        validator: the agent that vetoed it.
        reason: the validator's reason.
    """

    def __init__(self, resource: str, event_type: str, validator: str, reason: str) -> None:
        super().__init__(f"{resource}: {validator} vetoed {event_type}: {reason}")
        self.resource = resource
        self.event_type = event_type
        self.validator = validator
        self.reason = reason


class ValidatorFailedError(VisibilityError):
    """A ``within_transaction`` validator gave no verdict: it missed the deadline, died,
    raised, or answered something that is not a ``Verdict``. Under ``on_timeout: veto``
    the write is refused with this error; under ``allow`` it commits and the miss is
    counted.

    Attributes:
        resource: the resource whose write waited.
        event_type: the event being validated.
        validator: the agent that failed.
        failure: ``"timeout"``, ``"died"``, ``"raised"`` or ``"bad_verdict"``.
        detail: what happened.
    """

    def __init__(
        self, resource: str, event_type: str, validator: str, failure: str, detail: str
    ) -> None:
        super().__init__(f"{resource}: validator {validator} of {event_type}: {failure}: {detail}")
        self.resource = resource
        self.event_type = event_type
        self.validator = validator
        self.failure = failure
        self.detail = detail
