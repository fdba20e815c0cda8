"""A committed write as values, for reading the audit (``ResourceLog.audit``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One committed write as values, for reading the audit (``ResourceLog.audit``).

    Attributes:
        version: the version it committed as.
        op: the ``@write`` method.
        args: its positional arguments. kwargs: its keyword arguments.
        result: what it returned.
        writer: the writer its token was issued to. writer_epoch: that writer's epoch.
        incarnation: the resource incarnation that committed it.
        idem_key: its idempotency key. trace_id: its trace. at: when (ISO 8601, UTC).
        changes: ``[key, had_before, before, has_after, after]`` per changed key.
        provenance: the write's mark, as the resource believed it.
    """

    version: int
    op: str
    args: list[Any]
    kwargs: dict[str, Any]
    result: Any
    writer: str
    writer_epoch: int
    incarnation: int
    idem_key: str
    trace_id: str
    at: str
    changes: list[list[Any]]
    provenance: str
