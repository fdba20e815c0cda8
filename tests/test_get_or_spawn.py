"""``runtime.get_or_spawn``: the one way the named state actors (budget, locks, supervisor,
events dispatcher, decision log) are started on first use or joined."""

from __future__ import annotations

import uuid

import pytest
import ray

from runtime import get_or_spawn

pytestmark = [pytest.mark.ray, pytest.mark.timeout(120)]


class Counter:
    def __init__(self, start: int) -> None:
        self.value = start

    def bump(self) -> int:
        self.value += 1
        return self.value


def test_the_first_call_starts_the_actor_and_later_ones_join_it(ray_session: None) -> None:
    namespace = f"gos-{uuid.uuid4().hex[:8]}"
    first, started = get_or_spawn(Counter, 10, name="counter", namespace=namespace)
    again, started_again = get_or_spawn(Counter, 99, name="counter", namespace=namespace)
    try:
        assert (started, started_again) == (True, False)
        assert ray.get(first.bump.remote(), timeout=60) == 11
        assert ray.get(again.bump.remote(), timeout=60) == 12  # the same actor, not a new one
    finally:
        ray.kill(first, no_restart=True)


def test_processes_starting_it_at_once_get_one_actor(ray_session: None) -> None:
    namespace = f"gos-{uuid.uuid4().hex[:8]}"
    starts = [Starter.remote() for _ in range(4)]  # four processes, each starting it
    try:
        answers = ray.get([s.start.remote(namespace) for s in starts], timeout=90)
        assert sorted(started for started, _ in answers) == [False, False, False, True]
        assert sorted(value for _, value in answers) == [1, 2, 3, 4]  # one actor's count
    finally:
        for starter in starts:
            ray.kill(starter, no_restart=True)
        ray.kill(ray.get_actor("counter", namespace=namespace), no_restart=True)


@ray.remote(num_cpus=0)
class Starter:
    def start(self, namespace: str) -> tuple[bool, int]:
        actor, started = get_or_spawn(
            Counter, 0, name="counter", namespace=namespace, detached=True
        )  # detached, as agents start state actors: it outlives this call's handle
        return started, ray.get(actor.bump.remote())
