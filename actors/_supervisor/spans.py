"""The supervisor's spans: one per subtask and one per attempt, exported when they end
(the supervisor knows both ends; nothing runs inside them in its process).

The subtask span takes the subtask envelope's span id and each attempt span the id its
envelope carries to the agent, whose ``invoke_agent`` span is the attempt's child: one
trace joins the delegation, its attempts and what each attempt did.
"""

from __future__ import annotations

from datetime import UTC, datetime

from runtime import AttemptRecord, Clock, record_span, tracing_enabled

from .state import Attempt, Live


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def attempt_span(live: Live, attempt: Attempt, record: AttemptRecord, clock: Clock) -> None:
    """Export the span of an attempt that just ended with ``record``."""
    if not tracing_enabled() or not attempt.span_id:
        return
    ended = clock.now()
    began = ended.timestamp()
    if attempt.queued_at:  # monotonic instants: measured back from now
        began -= clock.monotonic() - attempt.queued_at
    envelope = live.spec.envelope
    failed = record.outcome != "succeeded"
    record_span(
        f"agentcast.attempt {live.spec.to}", trace_id=envelope.trace_id,
        span_id=attempt.span_id, parent_span_id=envelope.span_id, start=_at(began), end=ended,
        attributes={
            "agentcast.subtask_id": live.spec.subtask_id,
            "agentcast.attempt": attempt.number,
            "agentcast.replica": attempt.replica or "",
            "agentcast.outcome": record.outcome,
            "gen_ai.conversation.id": envelope.trace_id,
        },
        error=f"{record.outcome}: {record.detail}" if failed else None,
    )  # fmt: skip


def subtask_span(live: Live, state: str, reason: str, at: float) -> None:
    """Export the span of a subtask that just finished (``state`` done or failed)."""
    if not tracing_enabled():
        return
    spec = live.spec
    record_span(
        f"agentcast.subtask {spec.to}", trace_id=spec.envelope.trace_id,
        span_id=spec.envelope.span_id, parent_span_id=spec.envelope.parent_span_id,
        start=_at(live.created or at), end=_at(at),
        attributes={
            "agentcast.subtask_id": spec.subtask_id,
            "agentcast.target": spec.to,
            "agentcast.expect": spec.expect.__name__ if spec.expect else "",
            "agentcast.state": state,
            "agentcast.reason": reason or "ok",
            "agentcast.attempts": len(live.history),
            "gen_ai.conversation.id": spec.envelope.trace_id,
        },
        error=None if state == "done" else reason,
    )  # fmt: skip
