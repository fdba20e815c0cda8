"""Policies of a resource actor: limits, batching, snapshots, durability."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from ._conflict import ConflictPolicy
from ._retention import ResourceRetention


class Durability(StrEnum):
    """What an acknowledged write survives.

    FULL: an fsync per group commit before any reply that shows it: survives a power
    loss. A resource actor commits with ``synchronous=NORMAL`` and fsyncs the WAL on a
    thread of its own while it applies the next writes (``runtime.GroupSync``); other
    SQLite stores use ``synchronous=FULL``.
    PROCESS: SQLite WAL with ``synchronous=NORMAL``: survives the death of any process,
    including the resource actor's, but the last commits may be lost if the machine loses
    power.
    """

    FULL = "full"
    PROCESS = "process"


@dataclass(frozen=True, slots=True, kw_only=True)
class ResourcePolicy:
    """How a resource actor applies and stores writes.

    Attributes:
        max_payload_bytes: largest encoded arguments of one write; larger ones are refused
            before they reach the applier. Default 1 MiB.
        max_batch: most writes applied and committed in one group commit. Default 512.
        snapshot_every: write a full snapshot after this many versions, so that recovery
            replays at most this many records. Default 5,000.
        durability: what an acknowledged write survives. Default ``Durability.FULL``.
        idempotency_cache: idempotency keys kept in memory; older ones are looked up in
            storage. Default 100,000.
        retention: how long the log keeps records, rejections and idempotency keys.
            Default ``ResourceRetention()``.
        conflicts: the ladder a refused write's ``ConflictError`` climbs. Default
            ``ConflictPolicy()``, which climbs nothing.
    """

    max_payload_bytes: int = 1 << 20
    max_batch: int = 512
    snapshot_every: int = 5_000
    durability: Durability = Durability.FULL
    idempotency_cache: int = 100_000
    retention: ResourceRetention = field(default_factory=ResourceRetention)
    conflicts: ConflictPolicy = field(default_factory=ConflictPolicy)

    def __post_init__(self) -> None:
        for name in ("max_payload_bytes", "max_batch", "snapshot_every", "idempotency_cache"):
            if getattr(self, name) < 1:
                raise ValueError(f"ResourcePolicy.{name} must be at least 1")
