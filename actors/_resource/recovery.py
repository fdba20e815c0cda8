"""What a resource's new incarnation starts from, as its log gives it back."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the log defines its records and imports this
    from .store import LogRecord


@dataclass(frozen=True, slots=True)
class Recovered:
    """What a new incarnation starts from: the last snapshot (its state and the provenance
    marks of its keys, None in a snapshot taken before marks were kept), the log after
    it, and the fences."""

    incarnation: int
    snapshot_version: int
    snapshot_state: bytes | None
    tail: list[LogRecord]
    writer_fences: dict[str, int]
    lease_fences: dict[str, int]
    snapshot_marks: bytes | None = None
