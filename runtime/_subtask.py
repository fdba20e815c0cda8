"""What the supervisor says about a subtask: failure reasons and the attempt history.

Kept free of any other runtime import so that ``runtime.errors`` can name them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class FailureReason(StrEnum):
    """Why an attempt (and, once no plan applies, its subtask) failed.

    EXCEPTION: the handler raised.
    SCHEMA: the output does not validate as ``expect`` (an empty or truncated answer
        included), or the model's reply failed its schema inside the handler.
    QUEUE_TIMEOUT: no replica started it within ``Deadlines.queued``.
    DEADLINE: it ran longer than ``Deadlines.running``.
    HEARTBEAT_TIMEOUT: it ran silent longer than ``Deadlines.heartbeat``.
    AGENT_DIED: the replica's actor died while running it.
    NO_AGENT: no live replica of the target exists.
    CANCELLED: the subtask was cancelled through its handle.
    KILLED: the replica's agent was killed by the kill switch.
    BUDGET: the agent raised ``BudgetExceededError``.
    REJECTED: an escalation was answered with a rejection.
    UNVERIFIED: the stage's verifier rejected the output, or failed to check it.
    """

    EXCEPTION = "exception"
    SCHEMA = "schema"
    QUEUE_TIMEOUT = "queue_timeout"
    DEADLINE = "deadline"
    HEARTBEAT_TIMEOUT = "heartbeat_timeout"
    AGENT_DIED = "agent_died"
    NO_AGENT = "no_agent"
    CANCELLED = "cancelled"
    KILLED = "killed"
    BUDGET = "budget"
    REJECTED = "rejected"
    UNVERIFIED = "unverified"


@dataclass(frozen=True, slots=True, kw_only=True)
class AttemptRecord:
    """One attempt of a subtask, as kept in its history.

    Attributes:
        attempt_id: ``<subtask id>:<number>``.
        number: 1 for the first attempt.
        replica: the agent replica that ran it (``"name:i"``), or None if none started it.
        outcome: ``"succeeded"``, a ``FailureReason`` value, or ``"late:<outcome>"`` for
            the result of a superseded attempt that arrived after it was failed (recorded
            and discarded).
        detail: the error or validation message; empty on success.
        error_type: the exception's type name, when it raised.
        at: wall-clock time of the outcome, seconds since the epoch.
    """

    attempt_id: str
    number: int
    replica: str | None
    outcome: str
    detail: str = ""
    error_type: str | None = None
    at: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """The record as plain data (for storage and the command line)."""
        return {
            "attempt_id": self.attempt_id,
            "number": self.number,
            "replica": self.replica,
            "outcome": self.outcome,
            "detail": self.detail,
            "error_type": self.error_type,
            "at": self.at,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AttemptRecord:
        """The record from ``to_dict``'s plain data."""
        return cls(**data)
