"""Pooled agents: how many agents share one host actor, and how many hosts there are."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class HostPolicy:
    """How pooled agents (``placement="pooled"``) are spread over host actors.

    A host is one Ray actor (one process) running many agents, each with its own mailbox
    and ``max_concurrency``. An idle Ray actor costs about 50 MB proportional; an agent in
    a host costs what its instance holds.

    Attributes:
        agents_per_host: agents placed on a host before another host is started. A host
            crash restarts all of them at once, so this is also the blast radius of a
            process crash. Default 250.
        max_hosts: at most this many hosts; once they are all full, new agents go to the
            least loaded one. None: as many as needed. Default None.
        spread: start hosts with Ray's ``SPREAD`` scheduling, one per node in turn,
            rather than packed on the first node that fits. Default True.
        calls_per_host: Ray calls a host runs at once (its ``max_concurrency``); calls to
            its agents beyond their own ``max_concurrency`` wait in their mailboxes, so
            this only needs to cover the calls of all its agents. Default 10,000.

    Raises:
        ValueError: a count below 1.
    """

    agents_per_host: int = 250
    max_hosts: int | None = None
    spread: bool = True
    calls_per_host: int = 10_000

    def __post_init__(self) -> None:
        for field, value in (
            ("agents_per_host", self.agents_per_host),
            ("max_hosts", 1 if self.max_hosts is None else self.max_hosts),
            ("calls_per_host", self.calls_per_host),
        ):
            if value < 1:
                raise ValueError(f"HostPolicy.{field} must be at least 1, not {value}")

    def place(self, loads: list[int], count: int) -> list[int]:
        """Where ``count`` new agents go, given the agents each host holds now.

        Fills the least loaded host that has room, starts a new host (index
        ``len(loads)``, then the next) when none has and ``max_hosts`` allows, and else
        overfills the least loaded one.

        Returns:
            The host index of each new agent, in order.
        """
        loads = list(loads)
        placed: list[int] = []
        for _ in range(count):
            room = [i for i, n in enumerate(loads) if n < self.agents_per_host]
            if room:
                chosen = min(room, key=lambda i: (loads[i], i))
            elif self.max_hosts is None or len(loads) < self.max_hosts:
                loads.append(0)
                chosen = len(loads) - 1
            else:
                chosen = min(range(len(loads)), key=lambda i: (loads[i], i))
            loads[chosen] += 1
            placed.append(chosen)
        return placed
