"""OpenTelemetry spans, with the SDK's in-memory exporter: they carry the envelope's W3C
ids, nest as the work nests, mark errors, and cost nothing (no SDK import) when off."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from runtime import Envelope, new_span_id, record_span, span, tracing_enabled
from runtime.testing import reset_tracing, trace_into

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def exported() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    trace_into(exporter)
    yield exporter
    trace_into(None)


def _hex(value: int, digits: int) -> str:
    return f"{value:0{digits}x}"


def test_a_span_continues_the_envelope_and_its_children_nest(
    exported: InMemorySpanExporter,
) -> None:
    envelope = Envelope()
    outer = span("invoke_agent a", envelope=envelope, attributes={"gen_ai.agent.name": "a"})
    with outer, span("chat m", kind="client") as inner:
        inner.set_attribute("gen_ai.usage.output_tokens", 7)
    chat, agent = exported.get_finished_spans()
    assert _hex(agent.context.trace_id, 32) == envelope.trace_id
    assert _hex(agent.parent.span_id, 16) == envelope.span_id
    assert chat.context.trace_id == agent.context.trace_id
    assert chat.parent.span_id == agent.context.span_id
    assert chat.attributes["gen_ai.usage.output_tokens"] == 7
    assert agent.attributes["gen_ai.agent.name"] == "a"
    assert agent.resource.attributes["service.name"] == "agentcast"


def test_an_exception_marks_the_span_failed_and_still_leaves(
    exported: InMemorySpanExporter,
) -> None:
    with pytest.raises(ValueError, match="boom"), span("agentcast.write r"):
        raise ValueError("boom")
    (failed,) = exported.get_finished_spans()
    assert failed.status.status_code.name == "ERROR"
    assert failed.attributes["error.type"] == "ValueError"
    with span("after"):
        pass  # the failed span is no longer current: this one is a root
    assert exported.get_finished_spans()[-1].parent is None


def test_a_recorded_span_keeps_its_ids_and_times(exported: InMemorySpanExporter) -> None:
    envelope = Envelope()
    span_id = new_span_id()
    start = datetime(2026, 1, 1, tzinfo=UTC)
    record_span(
        "agentcast.attempt w", trace_id=envelope.trace_id, span_id=span_id,
        parent_span_id=envelope.span_id, start=start, end=start + timedelta(seconds=2),
        attributes={"agentcast.attempt": 1}, error="deadline: ran 2 s",
    )  # fmt: skip
    (done,) = exported.get_finished_spans()
    assert (_hex(done.context.trace_id, 32), _hex(done.context.span_id, 16)) == (
        envelope.trace_id,
        span_id,
    )
    assert _hex(done.parent.span_id, 16) == envelope.span_id
    assert done.end_time - done.start_time == 2_000_000_000
    assert done.status.status_code.name == "ERROR"


def test_a_root_span_of_a_trace_takes_the_trace_id(exported: InMemorySpanExporter) -> None:
    envelope = Envelope()
    record_span(
        "agentcast.subtask w", trace_id=envelope.trace_id, span_id=envelope.span_id,
        parent_span_id=None, start=datetime.now(UTC), end=datetime.now(UTC),
    )  # fmt: skip
    (root,) = exported.get_finished_spans()
    assert root.parent is None
    assert _hex(root.context.trace_id, 32) == envelope.trace_id


@pytest.mark.parametrize(
    ("variables", "on"),
    [
        ({}, False),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:1"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"}, True),
        ({"OTEL_TRACES_EXPORTER": "console"}, True),
        ({"OTEL_TRACES_EXPORTER": "console", "OTEL_SDK_DISABLED": "true"}, False),
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, False),  # unsupported: a warning, no tracing
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, False),
    ],
)
def test_the_standard_variables_decide(
    variables: dict[str, str], on: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in [k for k in os.environ if k.startswith("OTEL_")]:
        monkeypatch.delenv(key)
    for key, value in variables.items():
        monkeypatch.setenv(key, value)
    reset_tracing()
    try:
        assert tracing_enabled() is on
    finally:
        reset_tracing()


def test_off_by_default_imports_no_sdk() -> None:
    """A process with no OTEL_ variable runs spans without loading the SDK."""
    code = (
        "import sys, runtime, actors\n"
        "from runtime import Envelope, span\n"
        "with span('x', envelope=Envelope()) as s:\n"
        "    s.set_attribute('k', 1)\n"
        "assert not runtime.tracing_enabled()\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('opentelemetry.sdk.trace'))\n"
        "assert not loaded, loaded\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr


def test_an_unreachable_collector_loses_spans_not_work() -> None:
    """Spans to a closed port: the block runs, flushing returns, the export fails alone."""
    code = (
        "import socket\n"
        "from runtime import Envelope, flush_spans, span, tracing_enabled\n"
        "with span('x', envelope=Envelope()) as s:\n"
        "    s.set_attribute('k', 1)\n"
        "assert tracing_enabled()\n"
        "flush_spans()\n"
        "print('done')\n"
    )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(
        PYTHONPATH=str(ROOT),
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{closed}",
        OTEL_EXPORTER_OTLP_TIMEOUT="1",
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert (done.returncode, done.stdout) == (0, "done\n"), done.stderr
