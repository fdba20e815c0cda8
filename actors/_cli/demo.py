"""``agentcast demo``: a small storefront on the embedded default, first the naive way and
then on agentcast.

Naive: two pricing agents raise prices by reading them from a plain Ray actor, thinking
and writing back; each overwrites the other's raises (``demo_naive``). agentcast: shop,
supplier, pricing and intern agents (``demo_agents``) work a shift each, every shift a
subtask of the supervisor with a deadline and an output schema; model calls are metered
against declared caps, retries against the run's retry budget, endpoints behind breakers;
the pricing agents take a lease on the sku they reprice. At the end every resource's state
is checked against the replay of its durable log, and no raise may be lost: the exit status
is 1 if agentcast fails either claim. ``agentcast check`` passes on it while it runs
(``--keep``).
"""

from __future__ import annotations

import signal
import sys
from datetime import timedelta
from typing import Any, cast

import ray

from policies import (
    BudgetLimit,
    BudgetPolicy,
    Deadlines,
    Dimension,
    LockPolicy,
    RetryBudget,
    RetryPolicy,
    SamplingPolicy,
    Scope,
    ScopeKind,
)
from runtime import SubtaskFailedError

from .._resource.state_view import replay
from .._system import System
from .demo_agents import (
    SHOPS,
    InternAgent,
    Inventory,
    OrderBook,
    Prices,
    PricingAgent,
    Shift,
    ShiftReport,
    ShopAgent,
    SupplierAgent,
    intern_truth,
    shop_model,
)
from .demo_naive import Raises, applied, run_naive
from .output import emit, progress, progress_for

NAIVE_ROUNDS = 20
CAPS = BudgetPolicy(
    limits=(
        BudgetLimit(scope=Scope(kind=ScopeKind.RUN), dimension=Dimension.CALLS, cap=100_000),
        BudgetLimit(scope=Scope(kind=ScopeKind.AGENT), dimension=Dimension.TOKENS, cap=2_000_000),
    ),
    retry_budget=RetryBudget(ratio=0.1, min_retries_per_window=5),
)
"""The demo's caps: far above what a shift spends, so they bound a runaway, not the work."""
GROUPS = (("shop", SHOPS), ("supplier", 1), ("pricing", 2), ("intern", 1))


def _start(system: System) -> None:
    """The locks actor, the resources with their writers, the agents, the sampled stage."""
    system.use_locks(LockPolicy())
    system.resource(Inventory, name="inventory", writers=["shop", "supplier", "system"])
    system.resource(OrderBook, name="orders", writers=["shop"])
    system.resource(Prices, name="prices", writers=["pricing"])
    model = shop_model()
    system.agent(ShopAgent, name="shop", replicas=SHOPS, model=model)
    system.agent(SupplierAgent, name="supplier")
    system.agent(PricingAgent, name="pricing", replicas=2, model=model)
    system.agent(InternAgent, name="intern")
    system.supervisor.sample("intern", intern_truth, policy=SamplingPolicy(rate=1.0))


def _shifts(system: System, seconds: float) -> dict[str, list[ShiftReport]]:
    """One shift per replica, each a supervised subtask; the reports by agent.

    Raises:
        SubtaskFailedError: a shift missed its deadline, failed its schema or raised.
    """
    deadline = Deadlines(running=timedelta(seconds=seconds + 60))
    once = RetryPolicy(max_attempts=1)  # a shift is not repeated: its failure is reported
    handles = [
        (group, system.supervisor.submit(
            Shift(seconds=seconds), to=f"{group}:{i}", expect=ShiftReport, deadline=deadline,
            retry=once,
        ))
        for group, replicas in GROUPS for i in range(replicas)
    ]  # fmt: skip
    progress_for(seconds, "demo: agents at work")
    reports: dict[str, list[ShiftReport]] = {}
    for group, handle in handles:
        reports.setdefault(group, []).append(
            cast(ShiftReport, handle.result(timeout=seconds + 120))
        )
    return reports


def _check(system: System, name: str, state: dict[str, Any], initial: dict[str, Any]) -> str:
    replayed = dict(initial)
    versions = replay(replayed, system.log(name).records())
    gap_free = versions == list(range(1, len(versions) + 1))
    return "OK" if replayed == state and gap_free else "MISMATCH"


def _summary(system: System) -> tuple[list[list[str]], bool, dict[str, int]]:
    rows: list[list[str]] = []
    ok, prices = True, dict[str, int]()
    for name, cls in (("inventory", Inventory), ("orders", OrderBook), ("prices", Prices)):
        rejections = system.log(name).rejections()
        state = system.get_resource(name).read("everything")
        check = _check(system, name, state.value, cls().initial_state())
        ok = ok and check == "OK"
        prices = state.value if name == "prices" else prices
        refused = [r.reason for r in rejections if r.reason != "conflict"]
        rows.append([
            name, str(state.version), str(len(rejections) - len(refused)), str(len(refused)),
            ",".join(sorted(set(refused))) or "-", check,
        ])  # fmt: skip
    return rows, ok, prices


def _print_table(rows: list[list[str]]) -> None:
    header = ["resource", "writes = version", "conflicts", "rejected", "why", "state vs log replay"]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        emit("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))


def _raises_line(who: str, raises: Raises, how: str) -> str:
    return (
        f"{who:<10} price raises made: {raises.made:>4}  applied: {raises.applied:>4}  "
        f"lost: {raises.lost:>3}  ({how})"
    )


def _announce(system: System, seconds: float) -> None:
    emit(
        f"storefront for {seconds:g} s: {SHOPS} shop, 1 supplier, 2 pricing, 1 intern agents, "
        "every shift a supervised subtask"
    )
    emit(f"namespace {system.namespace}; watch it from another terminal:")
    address = ray.get_runtime_context().gcs_address
    check = f"agentcast check --address {address} --namespace {system.namespace}"
    for command in [*system.watch_commands(), check]:
        emit(f"  {command}")


def run_demo(*, seconds: float, storage: str | None, keep: bool) -> int:
    """Run the naive pricers, then the storefront for ``seconds``, and print what happened;
    0 if agentcast held its claims, 1 if not."""
    progress("demo: starting Ray")
    with System.start(storage, namespace="demo", budgets=CAPS) as system:
        progress("demo: naive pricing on a plain Ray actor")
        naive = run_naive(NAIVE_ROUNDS)
        emit(_raises_line("naive", naive, "read, think, write on a plain Ray actor"))
        progress("demo: starting the resources, the agents, the supervisor and the locks")
        _start(system)
        _announce(system, seconds)
        try:
            reports = _shifts(system, seconds)
        except SubtaskFailedError as failed:
            emit(f"agentcast FAILED: a shift failed: {failed}")
            return 1
        progress("demo: checking every resource against the replay of its log")
        rows, ok, prices = _summary(system)
        ours = Raises(made=sum(r.done for r in reports["pricing"]), applied=applied(prices))
        emit(_raises_line("agentcast", ours, "a lease on prices:<sku> around read, think, write"))
        shops = reports["shop"]
        emit(f"orders placed: {sum(r.done for r in shops)}, "
             f"out of stock: {sum(r.refused for r in shops)}")  # fmt: skip
        _print_table(rows)
        ok = ok and ours.lost == 0
        emit(f"verdict: {'agentcast held' if ok else 'agentcast FAILED'}: no raise lost, "
             f"every resource equals the replay of its log (naive lost {naive.lost})")  # fmt: skip
        emit(f"dashboard: {system.dashboard_url or 'not running'}")
        if keep:
            _wait_for_interrupt()
    return 0 if ok else 1


def _wait_for_interrupt() -> None:
    emit("--keep: Ray stays up; press Ctrl-C to stop.")
    # A SIGTERM (a test, a process manager) stops it as cleanly as Ctrl-C: Ray shut down.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        signal.pause() if hasattr(signal, "pause") else input()
    except KeyboardInterrupt:
        print("stopping", file=sys.stderr)
