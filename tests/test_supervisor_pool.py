"""The supervisor's replica pool (``actors/_supervisor/pool.py``): a pick takes the least
loaded live replica with a free slot from its group's heap. Against a model of every
replica's load, under random releases, deaths, restarts and queued subtasks that avoid
replicas they failed on: a pick never chooses a busy or dead replica, never a more loaded
one while a less loaded one could take the subtask, and a pump leaves no queued subtask
that a free replica could run."""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from actors._supervisor.pool import Pool
from actors._supervisor.types import ReplicaInfo

GROUPS = ("a", "b")
Ops = list[tuple[str, int, int]]


def _ops() -> st.SearchStrategy[Ops]:
    op = st.tuples(
        st.sampled_from(["enqueue", "enqueue", "release", "release", "remove", "renew"]),
        st.integers(0, 11),
        st.integers(1, 4),
    )
    return st.lists(op, max_size=60)


class Model:
    """The pool's replicas as a test sees them: (busy, capacity, generation) by name."""

    def __init__(self, pool: Pool, capacities: list[int]) -> None:
        self.pool = pool
        self.load: dict[str, list[int]] = {}
        self.avoid: dict[str, frozenset[str]] = {}
        self.ids = itertools.count()
        for group in GROUPS:
            names = [f"{group}:{i}" for i in range(len(capacities))]
            pool.add(group, [ReplicaInfo(n, c, 0) for n, c in zip(names, capacities, strict=True)])
            self.load.update(
                {n: [0, c, pool.generation(n) or 0] for n, c in zip(names, capacities, strict=True)}
            )

    def may_run(self, subtask_id: str, replica: str) -> bool:
        members = {n for n in self.load if n.split(":")[0] == replica.split(":")[0]}
        avoided = self.avoid[subtask_id]
        return replica not in avoided or members <= avoided

    def free(self, group: str) -> dict[str, float]:
        return {
            n: busy / cap
            for n, (busy, cap, _) in self.load.items()
            if n.startswith(f"{group}:") and busy < cap
        }

    def pump(self, group: str) -> None:
        for subtask_id, replica in self.pool.next_assignments(group, self.avoid.__getitem__):
            free = self.free(group)
            assert replica in free  # alive, of the group, with a free slot
            assert self.may_run(subtask_id, replica)
            for other, load in free.items():  # a less loaded one could not take it
                assert load >= free[replica] or not self.may_run(subtask_id, other)
            self.load[replica][0] += 1
        for subtask_id in self.pool.queues.get(group, ()):  # nothing left a free one could run
            assert not any(self.may_run(subtask_id, r) for r in self.free(group))

    def apply(self, kind: str, index: int, count: int, names: list[str]) -> None:
        group = GROUPS[index % 2]
        name = names[index % len(names)] if names else None
        if kind == "enqueue" and len(self.pool.queues.get(group, ())) + count < 60:
            members = sorted(n for n in self.load if n.startswith(f"{group}:"))
            for k in range(count):
                subtask_id = f"s{next(self.ids)}"
                self.avoid[subtask_id] = frozenset(members[: (index + k) % 3])
                self.pool.enqueue(group, subtask_id)
        elif kind == "release" and name in self.load and self.load[name][0] > 0:
            self.pool.release(name, self.load[name][2])
            self.load[name][0] -= 1
        elif kind == "remove" and name in self.load:
            self.pool.remove(name, self.load.pop(name)[2])
        elif kind == "renew" and name is not None:
            self.pool.renew(ReplicaInfo(name, count, 1))
            self.load[name] = [0, count, self.pool.generation(name) or 0]
        self.pump(group)

    def check(self) -> None:
        seen = {n: [r.busy, r.capacity, r.generation] for n, r in self.pool.replicas.items()}
        assert seen == self.load


@settings(max_examples=150, deadline=None)
@given(capacities=st.lists(st.integers(1, 3), min_size=1, max_size=6), ops=_ops())
def test_a_pick_takes_the_least_loaded_free_live_replica_that_may_run_the_subtask(
    capacities: list[int], ops: Ops
) -> None:
    model = Model(Pool(), capacities)
    names = [f"{g}:{i}" for g in GROUPS for i in range(len(capacities))]
    for kind, index, count in ops:
        model.apply(kind, index, count, names)
        model.check()


def test_many_releases_keep_the_heap_bounded_by_the_replicas() -> None:
    pool = Pool()
    pool.add("a", [ReplicaInfo(f"a:{i}", 2, 0) for i in range(10)])
    avoid: Any = lambda subtask_id: frozenset()  # noqa: E731
    for i in range(5_000):
        pool.enqueue("a", f"s{i}")
        [(_, replica)] = pool.next_assignments("a", avoid)
        pool.release(replica, pool.generation(replica) or 0)
    assert len(pool._groups["a"].free) <= 2 * 10 + 64
    assert {r.busy for r in pool.replicas.values()} == {0}


def test_a_replica_found_again_after_it_died_is_a_new_generation_the_old_one_cannot_release() -> (
    None
):
    pool = Pool()
    pool.add("a", [ReplicaInfo("a:0", 2, 1)])
    avoid: Any = lambda subtask_id: frozenset()  # noqa: E731
    old = pool.generation("a:0")
    pool.enqueue("a", "s0")
    pool.enqueue("a", "s1")
    assert [r for _, r in pool.next_assignments("a", avoid)] == ["a:0", "a:0"]
    pool.remove("a:0", old)  # its first attempt failed: agent_died (Ray restarts it)
    pool.add("a", [ReplicaInfo("a:0", 2, 1)])  # found again, restarted
    new = pool.generation("a:0")
    assert new is not None and new != old
    pool.enqueue("a", "s2")
    assert [r for _, r in pool.next_assignments("a", avoid)] == ["a:0"]
    pool.release("a:0", old or 0)  # the old incarnation's second attempt ends: agent_died
    assert pool.replicas["a:0"].busy == 1  # the new incarnation's running attempt keeps its slot
