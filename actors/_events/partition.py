"""One partition (consumer group x resource) as the dispatcher sees it: the batch it
has pending, and where its checkpoint stands against the resource's newest event."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .store import EventRecord


@dataclass(frozen=True, slots=True)
class Pending:
    """What one partition has to deliver now.

    Attributes:
        after: the checkpoint the events were read after.
        events: up to ``max_in_flight`` events of the group's types, in order.
        upto: the checkpoint once ``events`` are done: the last of them, or, when fewer
            than a full batch matched, the newest sequence number seen (the events of
            other types in between are passed with them).
        wire: ``events`` as the replica's ``deliver`` takes them (``EventBatch.wire()``),
            built once per shared read.
        replays: how many replays of the partition came before the read: a report on a
            batch read before the latest replay moves nothing (``acked``).
    """

    after: int
    events: list[EventRecord]
    upto: int
    wire: Sequence[Any] = ()
    replays: int = 0


@dataclass(frozen=True, slots=True)
class Lag:
    """One partition's position: ``lag`` events committed past ``checkpoint``."""

    group: str
    resource: str
    checkpoint: int
    last_seq: int

    @property
    def lag(self) -> int:
        return max(self.last_seq - self.checkpoint, 0)
