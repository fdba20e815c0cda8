"""OpenTelemetry spans that carry the envelope's trace context.

Off by default, at no cost: unless the standard variables configure an exporter
(``OTEL_TRACES_EXPORTER`` other than ``none``, or ``OTEL_EXPORTER_OTLP_ENDPOINT`` /
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``), ``span`` hands back one shared object that does
nothing and the OpenTelemetry SDK is never imported. The decision is taken once per
process, on the first span; ``runtime.spawn`` copies the driver's ``OTEL_*`` variables to
every actor it starts, so each Ray worker that runs agentcast code decides the same way.

Spans use the envelope's W3C ids, so one trace id joins the subtask, its attempts, the
handler run, and the model calls, tool calls and writes made inside it. New kinds of work
(leases, events) open theirs with ``span(...)`` or, after the fact, ``record_span(...)``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any

from ._envelope import Envelope

_log = logging.getLogger(__name__)

Attributes = Mapping[str, str | int | float | bool]
"""Span attributes: plain values only (OpenTelemetry's rule)."""

_ENDPOINTS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


class _NoSpan:
    """What ``span`` returns when tracing is off: every method does nothing."""

    def __enter__(self) -> _NoSpan:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def set_attribute(self, key: str, value: str | int | float | bool) -> None:
        """Does nothing: tracing is off."""

    @property
    def span_id(self) -> str:
        """``""``: no span is exported."""
        return ""

    @property
    def trace_id(self) -> str:
        """``""``: no span is exported."""
        return ""


_NO_SPAN = _NoSpan()
_tracer: Any = None  # None: not decided yet; False: off; else an ``_otel_sdk.SdkTracer``


def tracing_enabled() -> bool:
    """Whether this process exports spans (decided on first use, from the environment)."""
    return (_tracer if _tracer is not None else _current()) is not False  # one call, not two


def _current() -> Any:
    global _tracer
    if _tracer is None:
        _tracer = _from_environment()
    return _tracer


def _from_environment() -> Any:
    """The tracer the standard variables ask for, or False (tracing off)."""
    env = os.environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    names = [n.strip() for n in env.get("OTEL_TRACES_EXPORTER", "").lower().split(",")]
    names = [n for n in names if n and n != "none"]
    if not names and "OTEL_TRACES_EXPORTER" in env:
        return False  # explicitly none
    if not names and not any(env.get(v) for v in _ENDPOINTS):
        return False
    try:
        from ._otel_sdk import SdkTracer, exporters_named

        return SdkTracer(exporters_named(names or ["otlp"]), batch=True)
    except ImportError as error:
        _log.warning("OpenTelemetry tracing is off (pip install 'agentcast[otel]'): %s", error)
        return False
    except Exception as error:  # a bad setting must not break the work: say it, trace nothing
        _log.warning("OpenTelemetry tracing is off: %s", error)
        return False


_watchers: list[Callable[[], None]] = []


def on_tracing_change(callback: Callable[[], None]) -> None:
    """Call ``callback`` whenever this process's tracing is switched (``trace_into``,
    ``reset_tracing``): what was decided while tracing was off may no longer hold."""
    _watchers.append(callback)


def _changed() -> None:
    for callback in _watchers:
        callback()


def trace_into(exporter: Any) -> None:
    """Export every span of this process to ``exporter`` (an OpenTelemetry SDK
    ``SpanExporter``), at once and unbatched; ``None`` turns tracing off again. For tests
    (``InMemorySpanExporter``) and for code that builds its own exporter."""
    global _tracer
    if exporter is None:
        _tracer = False
    else:
        from ._otel_sdk import SdkTracer

        _tracer = SdkTracer([exporter], batch=False)
    _changed()


def reset_tracing() -> None:
    """Forget this process's decision: the next span decides again from the environment."""
    global _tracer
    _tracer = None
    _changed()


def flush_spans() -> None:
    """Export the spans this process has buffered (a no-op when tracing is off)."""
    tracer = _current()
    if tracer is not False:
        tracer.flush()


def otel_environment() -> dict[str, str]:
    """This process's ``OTEL_*`` variables, to hand to the actors it spawns."""
    return {k: v for k, v in os.environ.items() if k.startswith("OTEL_")}


def span(
    name: str,
    *,
    kind: str = "internal",
    envelope: Envelope | None = None,
    attributes: Attributes | None = None,
) -> Any:
    """A context manager around one unit of work, exported as a span.

    With ``envelope``, the span is a child of the envelope's span in the envelope's
    trace; without, a child of the span around the caller (a root if there is none).
    The span is current inside the block, so spans opened there are its children. An
    exception leaving the block marks the span as an error. The object it yields has
    ``set_attribute(key, value)``, ``span_id`` and ``trace_id`` (``""`` when tracing is
    off).

    Args:
        name: the span's name, e.g. ``"chat gpt-4o"``.
        kind: ``"internal"``, ``"client"``, ``"server"``, ``"producer"`` or ``"consumer"``.
        envelope: the task whose trace the span belongs to.
        attributes: initial attributes.
    """
    tracer = _tracer if _tracer is not None else _current()
    if tracer is False:
        return _NO_SPAN
    parent = None if envelope is None else (envelope.trace_id, envelope.span_id)
    return _LiveSpan(tracer, name, kind, parent, dict(attributes or {}))


def record_span(
    name: str,
    *,
    trace_id: str,
    span_id: str,
    parent_span_id: str | None,
    start: datetime,
    end: datetime,
    attributes: Attributes | None = None,
    error: str | None = None,
) -> None:
    """Export a span that already ended, with the ids it had (an attempt's, a subtask's).

    Args:
        name: the span's name.
        trace_id: its 32-hex-digit trace id.
        span_id: its 16-hex-digit span id.
        parent_span_id: its parent's span id; None for a root.
        start: when it started (timezone-aware).
        end: when it ended.
        attributes: its attributes.
        error: why it failed, if it did.
    """
    tracer = _tracer if _tracer is not None else _current()
    if tracer is False:
        return
    tracer.record(
        name, (trace_id, parent_span_id), span_id, _ns(start), _ns(end),
        dict(attributes or {}), error,
    )  # fmt: skip


def _ns(at: datetime) -> int:
    return int(at.timestamp() * 1_000_000_000)


class _LiveSpan:
    """One exported span, current between ``__enter__`` and ``__exit__``."""

    def __init__(
        self,
        tracer: Any,
        name: str,
        kind: str,
        parent: tuple[str, str | None] | None,
        attributes: dict[str, Any],
    ) -> None:
        self._tracer = tracer
        self._args = (name, kind, parent, attributes)
        self._span: Any = None
        self._token: Any = None

    def __enter__(self) -> _LiveSpan:
        self._span, self._token = self._tracer.start(*self._args)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._tracer.finish(self._span, self._token, exc)

    def set_attribute(self, key: str, value: str | int | float | bool) -> None:
        """Set one attribute of the span."""
        self._span.set_attribute(key, value)

    @property
    def span_id(self) -> str:
        """The span's 16-hex-digit id once entered (``""`` before), to hand to work it
        causes in another process as its parent."""
        return "" if self._span is None else f"{self._span.get_span_context().span_id:016x}"

    @property
    def trace_id(self) -> str:
        """The span's 32-hex-digit trace id once entered (``""`` before)."""
        return "" if self._span is None else f"{self._span.get_span_context().trace_id:032x}"
