"""Breakers and the shared error registry of the budget actor (``BreakerBoard``).

Each change of a breaker's state is logged as a snapshot whose instants are wall-clock
times, and replayed onto the monotonic clock of the process that recovers it, so a restart
of the budget actor does not close an open breaker. The error registry is logged as its
reports (``incident``) and clearings (``cleared``).

One view, whoever asks: a breaker whose open period is over is half-open to ``breaker``,
``admit`` and a retry alike (``BreakerState.refreshed``), so an agent that honours
``retry_after`` is admitted once it has waited, without anyone probing first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from policies import BreakerState, BreakerStatus, BudgetPolicy
from runtime import CircuitOpenError, Clock

REGISTRY_EVENTS = ("breaker", "incident", "cleared")
"""Events of the breakers and the error registry in the budget's log."""


@dataclass(frozen=True, slots=True, kw_only=True)
class BreakerView:
    """A breaker as an agent sees it.

    Attributes:
        dependency: the dependency's name.
        status: closed, open or half-open.
        allowed: whether a call asking now may go ahead (for ``admit``: whether the call
            that asked was admitted). Never True while ``status`` is open.
        probe: whether that call is a half-open probe (its result must be reported).
        retry_after: seconds until the breaker admits a probe, or None.
    """

    dependency: str
    status: BreakerStatus
    allowed: bool = True
    probe: bool = False
    retry_after: float | None = None

    def refusal(self) -> CircuitOpenError:
        """The error for a refused call."""
        after = None if self.retry_after is None else timedelta(seconds=self.retry_after)
        return CircuitOpenError(self.dependency, retry_after=after)


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


Log = Callable[[str, dict[str, Any]], None]
"""Buffers one event for the durable log."""


class BreakerBoard:
    """Every breaker and the error registry.

    Args:
        policy: the budget's policy (breaker thresholds, ``block_after_agents``).
        clock: the budget's clock.
        log: buffers an event (already applied) for the durable log.
    """

    def __init__(self, policy: BudgetPolicy, clock: Clock, log: Log) -> None:
        self.policy = policy
        self._clock = clock
        self._log = log
        self.states: dict[str, BreakerState] = {}
        self.incidents: dict[str, Incident] = {}

    def view(self, dependency: str) -> BreakerView:
        """The breaker of ``dependency`` as it stands, without admitting a call."""
        state = self._current(dependency)
        now = self._clock.monotonic()
        allowed = state.status is BreakerStatus.CLOSED or (
            state.status is BreakerStatus.HALF_OPEN
            and state.probes < self.policy.breaker.half_open_probes
        )
        return self._view(dependency, state, now, allowed=allowed)

    def admit(self, dependency: str) -> BreakerView:
        """Admit one call to ``dependency`` if its breaker allows (a probe when half-open)."""
        now = self._clock.monotonic()
        allowed, state, probe = self._current(dependency).allow(now)
        self._set(dependency, state)
        return self._view(dependency, state, now, allowed=allowed, probe=probe)

    def report(
        self, dependency: str, *, ok: bool, fingerprint: str | None = None, agent: str = ""
    ) -> BreakerView:
        """Report a call's outcome. A failure counts toward the breaker; its fingerprint
        is counted once in the registry, and once ``block_after_agents`` agents report
        the same one, the breaker opens at once. A success that leaves the breaker closed
        clears the dependency's incidents."""
        now = self._clock.monotonic()
        state = self._current(dependency)
        if ok:
            state = state.on_success(now)
            if state.status is BreakerStatus.CLOSED and any(
                i.dependency == dependency for i in self.incidents.values()
            ):
                self._registry("cleared", {"dep": dependency})
        else:
            state = state.on_failure(now)
            if fingerprint is not None:
                self._registry("incident", {"fp": fingerprint, "dep": dependency, "agent": agent})
                shared = len(self.incidents[fingerprint].agents) >= self.policy.block_after_agents
                if shared and state.status is BreakerStatus.CLOSED:
                    state = BreakerState(policy=state.policy, status=BreakerStatus.OPEN, since=now)
        self._set(dependency, state)
        return self.view(dependency)

    def all(self) -> dict[str, BreakerView]:
        """Every breaker known, by dependency."""
        return {dep: self.view(dep) for dep in self.states}

    def apply(self, kind: str, data: dict[str, Any], *, wall: float) -> None:
        """Apply one logged event of the breakers or the registry (live or replayed)."""
        if kind == "incident":
            incident = self.incidents.setdefault(data["fp"], Incident(data["dep"]))
            incident.reports += 1
            incident.agents.add(data["agent"])
        elif kind == "cleared":
            for key in [k for k, i in self.incidents.items() if i.dependency == data["dep"]]:
                del self.incidents[key]
        else:  # "breaker", replayed: its instants move to this process's monotonic clock
            mono = self._clock.monotonic()
            self.states[data["dep"]] = breaker_state(data, self.policy, wall=wall, mono=mono)

    def snapshot(self, wall: float) -> dict[str, Any]:
        """The breakers and the registry as plain data, for the budget's snapshot."""
        mono = self._clock.monotonic()
        states = self.states.items()
        return {
            "breakers": [breaker_snapshot(d, s, wall=wall, mono=mono) for d, s in states],
            "incidents": [
                [fp, i.dependency, i.reports, sorted(i.agents)] for fp, i in self.incidents.items()
            ],
        }  # fmt: skip

    def restore(self, data: dict[str, Any], *, wall: float) -> None:
        """Load what ``snapshot`` returned."""
        for breaker in data["breakers"]:
            self.apply("breaker", breaker, wall=wall)
        for fp, dep, reports, agents in data["incidents"]:
            self.incidents[fp] = Incident(dep, reports, set(agents))

    def _current(self, dependency: str) -> BreakerState:
        state = self.states.get(dependency) or BreakerState(policy=self.policy.breaker)
        return state.refreshed(self._clock.monotonic())

    def _set(self, dependency: str, state: BreakerState) -> None:
        """Keep ``state``, and log it when it changed, so a restart finds it again."""
        if state == self.states.get(dependency, BreakerState(policy=self.policy.breaker)):
            return
        self.states[dependency] = state
        wall = self._clock.now().timestamp()
        snapshot = breaker_snapshot(dependency, state, wall=wall, mono=self._clock.monotonic())
        self._log("breaker", snapshot)

    def _registry(self, kind: str, data: dict[str, Any]) -> None:
        self.apply(kind, data, wall=self._clock.now().timestamp())
        self._log(kind, data)

    def _view(
        self,
        dependency: str,
        state: BreakerState,
        now: float,
        *,
        allowed: bool,
        probe: bool = False,
    ) -> BreakerView:
        at = state.next_probe_at()
        after = None if at is None else max(0.0, at - now)
        return BreakerView(
            dependency=dependency, status=state.status, allowed=allowed, probe=probe,
            retry_after=after,
        )  # fmt: skip


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
