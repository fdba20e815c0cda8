"""Identifiers: W3C trace-context compatible trace and span ids, task ids."""

from __future__ import annotations

import secrets


def new_trace_id() -> str:
    """A 32-hex-digit trace id, as in a W3C ``traceparent`` header."""
    return secrets.token_hex(16)


def new_span_id() -> str:
    """A 16-hex-digit span id, as in a W3C ``traceparent`` header."""
    return secrets.token_hex(8)


def new_task_id() -> str:
    """A task id: unique, sortable by nothing, safe in keys and file names."""
    return "t-" + secrets.token_hex(10)
