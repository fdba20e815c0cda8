"""The budget core under random agent deaths, kills, idle periods, lease expiries and
restarts of the budget actor, on a fake clock (issue 10): the tokens really consumed never
exceed a strict cap, and once everything is settled or expired the books reconcile with
the agents' own records to the token (an agent's grant counts what it said it used when
it settled, and all of it when it never did)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors.lowlevel import BudgetCore, SpendContext
from policies import (
    BudgetLimit,
    BudgetPolicy,
    BudgetRetention,
    Dimension,
    Durability,
    Scope,
    ScopeKind,
)
from runtime import BudgetExceededError
from runtime.testing import FakeClock

CAP = 2_000.0
AGENTS = 3
LEASE_TTL_S = 30.0


@dataclass
class SimAgent:
    """One agent process: its allowances (grant id -> [granted, used, drawn at]) and what
    it knows it consumed."""

    name: str
    replica: int = 0
    alive: bool = True
    held: dict[str, list[float]] = field(default_factory=dict)

    @property
    def holder(self) -> str:
        return f"{self.name}:{self.replica}"

    def context(self) -> SpendContext:
        return SpendContext(run="run", agent=self.name, model="m")


@dataclass
class World:
    core: BudgetCore
    clock: FakeClock
    agents: list[SimAgent]
    consumed: float = 0.0  # tokens really consumed, by every agent, ever
    expected: dict[str, float] = field(default_factory=dict)  # per grant, what the books owe
    draws: int = 0


def _policy() -> BudgetPolicy:
    cap = BudgetLimit(scope=Scope(kind=ScopeKind.CLUSTER), dimension=Dimension.TOKENS, cap=CAP)
    # Idle periods add up to at most an hour: every late settle is within the retention.
    retention = BudgetRetention(closed_grants=timedelta(hours=2))
    return BudgetPolicy(
        limits=(cap,), lease_share=0.5, lease_ttl=timedelta(seconds=LEASE_TTL_S),
        durability=Durability.PROCESS, retention=retention,
    )  # fmt: skip


def _draw(world: World, agent: SimAgent, want: int) -> None:
    world.draws += 1
    grant_id = f"g{world.draws}"
    try:
        grant = world.core.reserve(
            grant_id=grant_id, context=agent.context(), need={"tokens": 1.0},
            want={"tokens": float(want)}, holder=agent.holder,
        )  # fmt: skip
    except BudgetExceededError:
        return
    granted = grant.amounts["tokens"]
    agent.held[grant_id] = [granted, 0.0, world.clock.monotonic()]
    world.expected[grant_id] = granted  # all of it, until a settle says otherwise


def _spend(world: World, agent: SimAgent, amount: int) -> None:
    """Consume real tokens against an allowance still usable (as ``Allowance.need``:
    not past three quarters of its life)."""
    now = world.clock.monotonic()
    for allowance in agent.held.values():
        granted, used, drawn_at = allowance
        if now < drawn_at + LEASE_TTL_S * 3 / 4 and used < granted:
            spent = min(float(amount), granted - used)
            allowance[1] += spent
            world.consumed += spent
            return


def _settle(world: World, agent: SimAgent) -> None:
    if agent.held:
        grant_id, (_, used, _) = next(iter(agent.held.items()))
        del agent.held[grant_id]
        outcome = world.core.settle(
            grant_id=grant_id, context=agent.context(), used={"tokens": used}
        )
        assert outcome in ("settled", "late")
        world.expected[grant_id] = used


def _step(world: World, op: str, who: int, amount: int, root: Path) -> World:
    agent = world.agents[who]
    if op == "draw" and agent.alive:
        _draw(world, agent, amount * 10)
    elif op == "spend" and agent.alive:
        _spend(world, agent, amount)
    elif op == "settle" and agent.alive:
        _settle(world, agent)
    elif op in ("die", "kill") and agent.alive:
        agent.alive, agent.held = False, {}  # its allowances are gone with it, unsettled
        if op == "kill":
            world.core.charge_holder(agent.name)
    elif op == "revive" and not agent.alive:
        agent.alive, agent.replica = True, agent.replica + 1
    elif op == "idle":
        world.clock.advance(timedelta(seconds=amount))
        world.core.expire_due()
    elif op == "restart":
        world.core.close()
        world.core = BudgetCore(root, _policy(), clock=world.clock)
    world.core.commit()  # the budget actor answers only after its commit
    return world


_OPS = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "draw",
                "draw",
                "spend",
                "spend",
                "spend",
                "settle",
                "die",
                "kill",
                "revive",
                "idle",
                "restart",
            ]
        ),
        st.integers(0, AGENTS - 1),
        st.integers(1, 60),
    ),
    min_size=1,
    max_size=60,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=_OPS)
def test_real_spend_never_crosses_a_strict_cap_and_the_books_reconcile(
    tmp_path_factory: pytest.TempPathFactory, ops: list[tuple[str, int, int]]
) -> None:
    root, clock = tmp_path_factory.mktemp("budget"), FakeClock()
    core = BudgetCore(root, _policy(), clock=clock)
    world = World(core, clock, [SimAgent(f"agent{i}") for i in range(AGENTS)])
    key = ("cluster", "*", "*", "tokens")
    for op, who, amount in ops:
        world = _step(world, op, who, amount, root)
        ledger = world.core.book.ledger(key)
        assert world.consumed <= CAP
        assert ledger.committed + ledger.outstanding <= CAP
        assert world.consumed <= ledger.committed + ledger.outstanding
    for agent in world.agents:  # the living settle what they hold
        while agent.alive and agent.held:
            _settle(world, agent)
    clock.advance(timedelta(seconds=LEASE_TTL_S + 1))
    world.core.expire_due()
    world.core.commit()
    ledger = world.core.book.ledger(key)
    assert ledger.outstanding == 0
    assert ledger.committed == sum(world.expected.values())
    assert world.consumed <= ledger.committed <= CAP
    by_agent = {k[1]: v["tokens"] for k, v in world.core.book.spent.items()}
    assert sum(by_agent.values()) == ledger.committed
    replayed = BudgetCore(root, _policy(), clock=clock)
    assert replayed.book.ledgers == world.core.book.ledgers
    replayed.close()
    world.core.close()
