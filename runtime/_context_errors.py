"""The shared-context errors of the tree drawn in ``runtime.errors``: a write made on a
stale reading of the decision log, and a message that speaks another version of a
contract than the one its receiver declares."""

from __future__ import annotations

from .errors import AgentcastError, ResourceError


class StaleContextError(ResourceError):
    """A write declared ``fresh_context=topic`` came from a task briefed on an older
    decision of ``topic`` than the newest one in the decision log. Nothing was applied;
    the attempt is logged as a rejection (reason ``stale_context``) with the writer and
    the trace.

    Attributes:
        operation: the write's operation.
        topic: the decision topic the write depends on.
        briefed: the version of ``topic`` the task was briefed with (0: never briefed).
        latest: the newest version of ``topic`` in the decision log.
        trace_id: the trace of the task that made the write.
    """

    def __init__(
        self, resource: str, operation: str, topic: str, briefed: int, latest: int, trace_id: str
    ) -> None:
        super().__init__(
            resource,
            f"{operation} refused: briefed on {topic!r} version {briefed}, but version "
            f"{latest} is the latest (trace {trace_id})",
        )
        self.operation = operation
        self.topic = topic
        self.briefed = briefed
        self.latest = latest
        self.trace_id = trace_id


class ContractMismatchError(AgentcastError):
    """A message names another contract version than the one its receiver declares (a
    handler's input or output, a supervisor's ``expect``, an event). Refused at the
    boundary: nothing was handled.

    Attributes:
        where: the boundary (``"agent pricing, handler quote: input"``).
        contract: the contract's name.
        expected: the version the receiver declares.
        got: the version the message speaks (None: another contract, or none).
    """

    def __init__(self, where: str, contract: str, expected: int, got: int | None) -> None:
        spoken = "no version of it" if got is None else f"version {got}"
        super().__init__(f"{where}: expects {contract!r} version {expected}, got {spoken}")
        self.where = where
        self.contract = contract
        self.expected = expected
        self.got = got
