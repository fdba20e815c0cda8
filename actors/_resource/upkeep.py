"""What a resource does for its log after a committed batch: snapshots and compaction.

Neither changes what the resource holds: a snapshot only shortens recovery and a
compaction pass only gives back space (``ResourceRetention``), so a failure of either
is left for the next batch.
"""

from __future__ import annotations

from typing import Any

from policies import ResourcePolicy
from runtime import Clock, StorageError, encode, trim_malloc

from .provenance import StateMarks
from .store import ResourceLog


class Upkeep:
    """Snapshots every ``snapshot_every`` versions and a bounded compaction pass when
    due, for one resource's log."""

    def __init__(self, log: ResourceLog, policy: ResourcePolicy, clock: Clock) -> None:
        self._log = log
        self._policy = policy
        self._clock = clock
        self._snapshot_version = 0
        self._compacted_at = clock.now()
        self._compact_more = True  # a new incarnation compacts after its first batch

    def recovered(self, snapshot_version: int) -> None:
        """The version of the snapshot recovery started from."""
        self._snapshot_version = snapshot_version

    def after_batch(self, version: int, state: dict[Any, Any], marks: StateMarks) -> None:
        """Snapshot ``state`` at ``version`` and compact, each if due."""
        self._maybe_snapshot(version, state, marks)
        self._maybe_compact()

    def _maybe_snapshot(self, version: int, state: dict[Any, Any], marks: StateMarks) -> None:
        if version - self._snapshot_version < self._policy.snapshot_every:
            return
        try:
            self._log.save_snapshot(version, encode(state), marks.saved())
        except StorageError:
            return  # a snapshot only shortens recovery; the log alone is the truth
        self._snapshot_version = version

    def _maybe_compact(self) -> None:
        """One bounded compaction pass when due: every ``compact_every`` while writes
        arrive, and after each batch while a pass left more to delete."""
        retention = self._policy.retention
        now = self._clock.now()
        if not self._compact_more and now < self._compacted_at + retention.compact_every:
            return
        self._compacted_at = now
        try:
            self._compact_more = self._log.compact(now, retention)
        except StorageError:
            self._compact_more = False  # compaction only saves space; tried again later
        if not self._compact_more:  # the pass is complete: give back disk and heap
            self._log.truncate_wal()
            trim_malloc()
