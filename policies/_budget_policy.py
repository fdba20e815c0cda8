"""Everything the budget actor enforces, as one value: caps, prices, leases, retry budget and
breakers."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum

from ._breaker import BreakerPolicy
from ._budget import BudgetLimit, LeaseMode, PriceTable
from ._resource import Durability
from ._retry_budget import RetryBudget
from ._yaml import PolicySet


class Metering(StrEnum):
    """How an agent's model calls reach the budget actor.

    LEASE: the agent process draws an allowance worth many calls and settles in batches;
        the budget actor is off the path of most calls.
    PER_CALL: every call reserves its upper bound before it is made and settles after:
        two budget-actor calls per model call (the call waits for the reserve only), the
        tightest accounting.
    """

    LEASE = "lease"
    PER_CALL = "per_call"


@dataclass(frozen=True, slots=True, kw_only=True)
class BudgetRetention:
    """What the budget actor keeps, and for how long, so that nothing it holds grows
    without bound on a long-running cluster.

    Attributes:
        closed_grants: how long a grant is remembered once settled, expired or killed: a
            repeated settle within it changes nothing, and a late settle of a grant charged
            in full corrects the charge to what was spent; a settle later than this is
            ignored (the grant stays charged in full). Default 10 minutes.
        runs: a run (trace id) with no grant, settle or charge for this long is forgotten:
            its spend by (agent, model), its ledgers under run-scoped caps (a run coming
            back after it starts from zero) and its retry budget. Default 1 day.
        snapshot_every: a snapshot of the books is written after this many events, so a
            restart replays at most this many; at least 1. Default 10,000.
        log: events older than this and covered by a snapshot are deleted from the durable
            log (``BudgetHandle.events`` reads what is left). Default 7 days.
    """

    closed_grants: timedelta = timedelta(minutes=10)
    runs: timedelta = timedelta(days=1)
    snapshot_every: int = 10_000
    log: timedelta = timedelta(days=7)

    def __post_init__(self) -> None:
        if self.snapshot_every < 1:
            raise ValueError("BudgetRetention.snapshot_every must be at least 1")
        for name in ("closed_grants", "runs", "log"):
            if getattr(self, name) <= timedelta(0):
                raise ValueError(f"BudgetRetention.{name} must be positive")


@dataclass(frozen=True, slots=True, kw_only=True)
class BudgetPolicy:
    """What the budget actor enforces.

    Attributes:
        limits: the caps, by scope and dimension. Default none (everything is metered,
            nothing is capped).
        mode: how allowances are handed out against a cap (see ``LeaseMode`` for the
            worst overspend of each). Default ``LeaseMode.STRICT``.
        prices: model prices, for the cost dimension. Default an empty table: an unpriced
            model is refused when a cost cap covers it.
        retry_budget: the retry budget of each run. Default ``RetryBudget()``.
        breaker: the breaker of each dependency. Default ``BreakerPolicy()``.
        block_after_agents: a failure fingerprint reported by this many distinct agents
            opens its dependency's breaker at once, until a probe succeeds; at least 1.
            Default 2.
        metering: how agents reach the budget actor. Default ``Metering.LEASE``.
        lease_calls: how many calls' worth of upper bounds a lease asks for at first; at
            least 1. Default 64.
        max_lease_calls: the most calls' worth a lease grows to: an agent whose allowance
            runs out before the next one (drawn in the background) arrives makes its
            later leases four times larger, up to this. Default 4096.
        lease_share: the most of what remains under a cap one lease takes (never less than
            the call at hand), so that the last part of a cap is not all held by one agent;
            in (0, 1]. Default 0.1.
        lease_ttl: how long a lease lives; its holder renews it sooner (at half). An
            unsettled lease counts as spent until it expires. Default 60 seconds.
        reservation_ttl: how long a per-call reservation lives if never settled.
            Default 10 minutes.
        breaker_refresh: how stale an agent's view of a closed breaker may get before it
            asks the budget actor again (lease metering only). Default 1 second.
        durability: what a settled spend survives. Default ``Durability.FULL``.
        retention: what the budget actor keeps and for how long. Default
            ``BudgetRetention()``.
        settle_idle: an agent process settles the allowances of a lease unused for this
            long (its handler ended without settling, or it meters outside handlers).
            Default 5 seconds.
    """

    limits: tuple[BudgetLimit, ...] = ()
    mode: LeaseMode = LeaseMode.STRICT
    prices: PriceTable = field(default_factory=PriceTable)
    retry_budget: RetryBudget = field(default_factory=RetryBudget)
    breaker: BreakerPolicy = field(default_factory=BreakerPolicy)
    block_after_agents: int = 2
    metering: Metering = Metering.LEASE
    lease_calls: int = 64
    max_lease_calls: int = 4096
    lease_share: float = 0.1
    lease_ttl: timedelta = timedelta(seconds=60)
    reservation_ttl: timedelta = timedelta(minutes=10)
    breaker_refresh: timedelta = timedelta(seconds=1)
    durability: Durability = Durability.FULL
    retention: BudgetRetention = field(default_factory=BudgetRetention)
    settle_idle: timedelta = timedelta(seconds=5)

    def __post_init__(self) -> None:
        object.__setattr__(self, "limits", tuple(self.limits))
        if min(self.block_after_agents, self.lease_calls, self.max_lease_calls) < 1:
            raise ValueError("block_after_agents and lease sizes must be at least 1")
        if not 0.0 < self.lease_share <= 1.0:
            raise ValueError(f"lease_share must be in (0, 1], got {self.lease_share}")
        for name in ("lease_ttl", "reservation_ttl", "settle_idle"):
            if getattr(self, name) <= timedelta(0):
                raise ValueError(f"BudgetPolicy.{name} must be positive")
        if self.breaker_refresh < timedelta(0):
            raise ValueError("BudgetPolicy.breaker_refresh must not be negative")

    @classmethod
    def from_policies(cls, policies: PolicySet, **overrides: object) -> BudgetPolicy:
        """The budget part of a policy file (``load_policies``): budgets, lease mode,
        prices, retry budget and breaker; ``overrides`` set the other fields.

        Raises:
            ValueError: an override is out of range.
            TypeError: an override is not a field.
        """
        values: dict[str, object] = {
            "limits": policies.budgets,
            "mode": policies.lease_mode,
            "prices": policies.prices,
            "retry_budget": policies.retry_budget,
            "breaker": policies.breaker,
        }
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]
