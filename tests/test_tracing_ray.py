"""Spans from real Ray workers reach a real OTLP/HTTP receiver: the supervisor's subtask
and attempt, the agent's handler run, its model call, tool call and write, all under the
envelope's one trace id and nested as the work was, with the GenAI attributes."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from otlp_receiver import ReceivedSpan, otlp_receiver
from resources_for_tests import Inventory
from traced_agents_for_tests import Clerk, Order, Placed
from waiting import wait_until

from actors import System
from runtime import Envelope
from runtime.testing import ScriptedModel, reset_tracing

pytestmark = pytest.mark.ray

KINDS = (
    "agentcast.subtask clerks",
    "agentcast.attempt clerks",
    "invoke_agent clerks",
    "chat scripted",
    "execute_tool tool:lookup",
    "agentcast.write inventory",
)


def _by_name(spans: list[ReceivedSpan]) -> dict[str, ReceivedSpan]:
    return {s.name: s for s in spans}


@pytest.mark.timeout(300)
def test_one_trace_joins_everything_a_subtask_did(
    ray_session: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with otlp_receiver() as receiver:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
        monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")  # ms: export soon after
        monkeypatch.setenv("OTEL_SERVICE_NAME", "agentcast-test")
        system = System.start(tmp_path / "storage", namespace=f"test-{uuid.uuid4().hex[:12]}")
        try:
            system.resource(Inventory, name="inventory", writers=["clerks"])
            system.agent(Clerk, name="clerks", model=ScriptedModel(default_reply="ok"))
            envelope = Envelope()
            handle = system.supervisor.submit(
                Order(sku="a", qty=2), to="clerks", expect=Placed,
                deadline=timedelta(seconds=120), envelope=envelope,
            )  # fmt: skip
            assert handle.result(timeout=180) == Placed(left=2, tokens=1)
            spans = wait_until(
                lambda: (
                    (got := _by_name(receiver.in_trace(envelope.trace_id)))
                    and all(k in got for k in KINDS)
                    and got
                ),
                f"spans {KINDS} of trace {envelope.trace_id}",
                limit=120,
            )
        finally:
            system.shutdown()
            reset_tracing()  # this process decides again, without the receiver's variables
    subtask, attempt, agent, chat, tool, write = (spans[k] for k in KINDS)
    assert subtask.span_id == envelope.span_id
    assert attempt.parent_span_id == subtask.span_id
    assert agent.parent_span_id == attempt.span_id
    assert {chat.parent_span_id, tool.parent_span_id, write.parent_span_id} == {agent.span_id}
    assert {s.service for s in (subtask, agent, chat, write)} == {"agentcast-test"}
    assert agent.attributes["gen_ai.operation.name"] == "invoke_agent"
    assert agent.attributes["gen_ai.agent.name"] == "clerks"
    assert chat.attributes["gen_ai.operation.name"] == "chat"
    assert chat.attributes["gen_ai.request.model"] == "scripted"
    assert chat.attributes["gen_ai.usage.output_tokens"] == 1
    assert chat.attributes["gen_ai.conversation.id"] == envelope.trace_id
    assert tool.attributes["gen_ai.operation.name"] == "execute_tool"
    assert write.attributes["agentcast.resource"] == "inventory"
    assert write.attributes["agentcast.write.version"] == 1
    assert attempt.attributes["agentcast.outcome"] == "succeeded"
    assert subtask.attributes["agentcast.state"] == "done"
    assert not any(s.failed for s in spans.values())
