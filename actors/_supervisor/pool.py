"""The supervisor's view of agent replicas: who is alive, who is busy, who runs next.

A replica runs at most ``capacity`` supervised attempts at once (its agent's
``max_concurrency``); attempts wait in the supervisor's queue until a replica is free, so
the time queued is measured by the supervisor, and the time running starts when the
replica is handed the attempt.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from .types import ReplicaInfo

# How far down a queue to look for an attempt the free replica has not failed yet.
_SCAN = 64


@dataclass(slots=True)
class Replica:
    """A replica as the supervisor sees it; ``generation`` tells a restarted replica from
    the incarnation it replaced (whose attempts must not release the new one's slots)."""

    name: str
    group: str
    capacity: int
    busy: int = 0
    generation: int = 0


def _nothing(subtask_id: str) -> frozenset[str]:
    return frozenset()


def group_of(target: str) -> str:
    """The agent group of a target: ``"name"`` or ``"name:i"``."""
    return target.split(":", 1)[0]


@dataclass(slots=True)
class Pool:
    """Replicas by name and the queues of waiting attempts by target."""

    replicas: dict[str, Replica] = field(default_factory=dict)
    queues: dict[str, deque[str]] = field(default_factory=dict)
    fenced: dict[str, int] = field(default_factory=dict)
    _generations: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def known(self, group: str) -> bool:
        return any(r.group == group for r in self.replicas.values())

    def add(self, group: str, infos: list[ReplicaInfo]) -> None:
        """Replace ``group``'s replicas with ``infos``, except fenced (killed) ones; a
        replica seen before keeps its busy slots and generation."""
        old = {n: r for n, r in self.replicas.items() if r.group == group}
        for name in old:
            del self.replicas[name]
        floor = self.fenced.get(group, 0)
        for info in infos:
            if info.epoch >= floor:
                seen = old.get(info.name)
                self.replicas[info.name] = Replica(
                    info.name, group, max(1, info.capacity),
                    0 if seen is None else seen.busy, 0 if seen is None else seen.generation,
                )  # fmt: skip

    def renew(self, info: ReplicaInfo) -> None:
        """A restarted replica: a new generation, with no busy slot."""
        self.replicas[info.name] = Replica(
            info.name, group_of(info.name), max(1, info.capacity), 0, next(self._generations)
        )

    def generation(self, replica: str) -> int | None:
        """The replica's current generation, or None if it is not in the pool."""
        found = self.replicas.get(replica)
        return None if found is None else found.generation

    def remove(self, replica: str, generation: int | None = None) -> None:
        """Forget ``replica`` (only if still at ``generation``, when given)."""
        found = self.replicas.get(replica)
        if found is not None and generation in (None, found.generation):
            del self.replicas[replica]

    def fence(self, group: str, min_epoch: int) -> list[str]:
        """Drop ``group``'s replicas and refuse any below ``min_epoch`` from now on."""
        self.fenced[group] = max(self.fenced.get(group, 0), min_epoch)
        names = [n for n, r in self.replicas.items() if r.group == group]
        for name in names:
            del self.replicas[name]
        return names

    def enqueue(self, target: str, subtask_id: str) -> None:
        self.queues.setdefault(target, deque()).append(subtask_id)

    def dequeue(self, target: str, subtask_id: str) -> None:
        queue = self.queues.get(target)
        if queue is not None and subtask_id in queue:
            queue.remove(subtask_id)

    def release(self, replica: str, generation: int) -> None:
        """Free a slot of ``replica`` taken at ``generation`` (a restart freed it already)."""
        found = self.replicas.get(replica)
        if found is not None and found.generation == generation and found.busy > 0:
            found.busy -= 1

    def next_assignments(
        self, target: str, avoid: Callable[[str], frozenset[str]]
    ) -> list[tuple[str, str]]:
        """Pairs (subtask id, replica) to start now from ``target``'s queue.

        A subtask sent to a group avoids the replicas it already failed on while any other
        replica of its group is alive; ``avoid(subtask_id)`` says which. One pinned to a
        replica runs there whatever it failed on.
        """
        queue = self.queues.get(target)
        if not queue:
            return []
        if ":" in target:
            avoid = _nothing
        pairs: list[tuple[str, str]] = []
        for replica in self._candidates(target):
            while replica.busy < replica.capacity and queue:
                chosen = self._pick(queue, replica, avoid)
                if chosen is None:
                    break
                replica.busy += 1
                pairs.append((chosen, replica.name))
        return pairs

    def _candidates(self, target: str) -> list[Replica]:
        if ":" in target:
            found = self.replicas.get(target)
            return [] if found is None else [found]
        group = [r for r in self.replicas.values() if r.group == target]
        return sorted(group, key=lambda r: r.busy / r.capacity)

    def _pick(
        self, queue: deque[str], replica: Replica, avoid: Callable[[str], frozenset[str]]
    ) -> str | None:
        alive = {n for n, r in self.replicas.items() if r.group == replica.group}
        for index, subtask_id in enumerate(queue):
            if index >= _SCAN:
                break
            avoided = avoid(subtask_id)
            if replica.name not in avoided or alive <= avoided:
                del queue[index]
                return subtask_id
        return None
