"""The context-integrity errors of the tree drawn in ``runtime.errors``: a write refused by
the constraints its task carries or by a resource's invariant, and a constraint set
loosened on its way to a child task."""

from __future__ import annotations

from .errors import AgentcastError, ResourceError


class ConstraintViolationError(ResourceError):
    """A write broke a constraint its task carries. Nothing was applied; the attempt is
    logged as a rejection (reason ``constraint``) with the constraint and the trace.

    Attributes:
        operation: the write's operation.
        constraint: the constraint broken, as ``policies.describe_constraint`` names it.
        trace_id: the trace of the task that carried it.
    """

    def __init__(self, resource: str, operation: str, constraint: str, trace_id: str) -> None:
        super().__init__(
            resource, f"{operation} refused by constraint {constraint} (trace {trace_id})"
        )
        self.operation = operation
        self.constraint = constraint
        self.trace_id = trace_id


class InvariantViolationError(ResourceError):
    """A write would have broken an invariant over the resource's whole state, whoever
    sent it. Nothing was applied; the attempt is logged (reason ``invariant``).

    Attributes:
        operation: the write's operation.
        invariant: the name of the ``@invariant`` method that failed.
    """

    def __init__(self, resource: str, operation: str, invariant: str) -> None:
        super().__init__(resource, f"{operation} would break invariant {invariant}")
        self.operation = operation
        self.invariant = invariant


class ConstraintLoosenedError(AgentcastError):
    """An agent handed on a constraint set that is not at least as strict as the one its
    task carries: a constraint was dropped or loosened. Only the system or a human may
    relax constraints (by starting a new root envelope).

    Attributes:
        sender: the agent that tried.
        missing: the constraints the handed set no longer implies.
    """

    def __init__(self, sender: str, missing: tuple[str, ...]) -> None:
        super().__init__(f"{sender} may not drop or loosen: {', '.join(missing)}")
        self.sender = sender
        self.missing = missing
