"""The OpenTelemetry SDK side of ``runtime._tracing``: imported only when tracing is on.

Spans take their ids from the envelope (W3C already): an id generator hands the SDK the
ids the caller chose, so the exported trace and span ids are agentcast's own.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from contextvars import ContextVar
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
)

from .errors import ConfigurationError

_KINDS = {
    "internal": SpanKind.INTERNAL,
    "client": SpanKind.CLIENT,
    "server": SpanKind.SERVER,
    "producer": SpanKind.PRODUCER,
    "consumer": SpanKind.CONSUMER,
}
_forced: ContextVar[tuple[int, int]] = ContextVar("agentcast_forced_ids", default=(0, 0))


class _EnvelopeIds(RandomIdGenerator):
    """Gives the SDK the ids the caller chose (0: let it draw one)."""

    def generate_span_id(self) -> int:
        return _forced.get()[1] or super().generate_span_id()

    def generate_trace_id(self) -> int:
        return _forced.get()[0] or super().generate_trace_id()


def exporters_named(names: Sequence[str]) -> list[SpanExporter]:
    """The exporters ``OTEL_TRACES_EXPORTER`` names: ``otlp`` (OTLP over HTTP/protobuf,
    configured by the ``OTEL_EXPORTER_OTLP_*`` variables) and ``console``.

    Raises:
        ConfigurationError: another exporter, or OTLP over gRPC.
    """
    found: list[SpanExporter] = []
    for name in names:
        if name == "console":
            found.append(ConsoleSpanExporter())
        elif name == "otlp":
            found.append(_otlp_http())
        else:
            raise ConfigurationError(f"unsupported OTEL_TRACES_EXPORTER {name!r}")
    return found


def _otlp_http() -> SpanExporter:
    protocol = os.environ.get(
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "")
    )
    if protocol not in ("", "http/protobuf"):
        raise ConfigurationError(f"OTLP protocol {protocol!r}: agentcast exports http/protobuf")
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


def _resource() -> Resource:
    # OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win: the SDK reads them itself.
    named = "OTEL_SERVICE_NAME" in os.environ or "service.name=" in os.environ.get(
        "OTEL_RESOURCE_ATTRIBUTES", ""
    )
    return Resource.create({} if named else {"service.name": "agentcast"})


def _parent_context(parent: tuple[str, str | None] | None) -> Any:
    """The context a span starts in: the current one (no parent given), an empty one (a
    root of a given trace), or one whose span is the given remote parent."""
    if parent is None:
        return None
    trace_id, span_id = parent
    if span_id is None:
        return otel_context.Context()
    remote = SpanContext(
        int(trace_id, 16), int(span_id, 16), is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )  # fmt: skip
    return trace.set_span_in_context(NonRecordingSpan(remote))


class SdkTracer:
    """A private tracer provider with its exporters (the global provider is left to the
    application)."""

    def __init__(self, exporters: Sequence[SpanExporter], *, batch: bool) -> None:
        self._provider = TracerProvider(resource=_resource(), id_generator=_EnvelopeIds())
        for exporter in exporters:
            processor = BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
            self._provider.add_span_processor(processor)
        self._tracer = self._provider.get_tracer("agentcast")

    def start(
        self, name: str, kind: str, parent: tuple[str, str | None] | None, attributes: Any
    ) -> tuple[Any, Any]:
        """Start a span and make it current; returns it and the token to detach."""
        trace_id = 0 if parent is None else int(parent[0], 16)
        forced = _forced.set((trace_id, 0))
        try:
            span = self._tracer.start_span(
                name, context=_parent_context(parent), kind=_KINDS[kind], attributes=attributes
            )
        finally:
            _forced.reset(forced)
        return span, otel_context.attach(trace.set_span_in_context(span))

    def finish(self, span: Any, token: Any, error: BaseException | None) -> None:
        """Detach and end a span from ``start``; ``error`` marks it failed."""
        otel_context.detach(token)
        if error is not None:
            span.set_attribute("error.type", type(error).__name__)
            span.set_status(Status(StatusCode.ERROR, str(error)[:500]))
        span.end()

    def record(
        self,
        name: str,
        parent: tuple[str, str | None],
        span_id: str,
        start_ns: int,
        end_ns: int,
        attributes: Any,
        error: str | None,
    ) -> None:
        """Export a span that already ended, with the given ids and times."""
        forced = _forced.set((int(parent[0], 16), int(span_id, 16)))
        try:
            span = self._tracer.start_span(
                name, context=_parent_context(parent), attributes=attributes, start_time=start_ns
            )
        finally:
            _forced.reset(forced)
        if error is not None:
            span.set_status(Status(StatusCode.ERROR, error[:500]))
        span.end(end_time=end_ns)

    def flush(self) -> None:
        """Export what is buffered."""
        self._provider.force_flush()
