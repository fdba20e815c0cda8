"""Breakers in the budget's durable log: each change of a breaker's state is logged as a
snapshot whose instants are wall-clock times, and replayed onto the monotonic clock of the
process that recovers it, so a restart of the budget actor does not close an open breaker.
The error registry is logged as its reports (``incident``) and clearings (``cleared``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from policies import BreakerState, BreakerStatus, BudgetPolicy

REGISTRY_EVENTS = ("breaker", "incident", "cleared")
"""Events of the breakers and the error registry in the budget's log."""


@dataclass(slots=True)
class Incident:
    """One failure fingerprint in the shared error registry, counted once.

    Attributes:
        dependency: what failed.
        reports: how many times it was reported, by any agent.
        agents: the agents that reported it.
    """

    dependency: str
    reports: int = 0
    agents: set[str] = field(default_factory=set)


def breaker_snapshot(
    dependency: str, state: BreakerState, *, wall: float, mono: float
) -> dict[str, Any]:
    """A breaker's state as a logged event, its instants as wall-clock times."""

    def at(t: float) -> float:
        return wall - (mono - t)

    return {
        "dep": dependency, "status": state.status.value, "probes": state.probes,
        "since": None if state.since is None else at(state.since),
        "failures": [at(t) for t in state.failures],
    }  # fmt: skip


def breaker_state(
    data: dict[str, Any], policy: BudgetPolicy, *, wall: float, mono: float
) -> BreakerState:
    """A logged breaker state, its instants on this process's monotonic clock (never
    later than now, so an open breaker has been open at least as long as it had)."""

    def at(t: float) -> float:
        return min(mono, mono - (wall - t))

    return BreakerState(
        policy=policy.breaker, status=BreakerStatus(data["status"]), probes=data["probes"],
        since=None if data["since"] is None else at(data["since"]),
        failures=tuple(at(t) for t in data["failures"]),
    )  # fmt: skip
