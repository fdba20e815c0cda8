"""The budget's metrics, on Ray's Prometheus endpoint."""

from __future__ import annotations

from policies import BreakerStatus, Dimension
from runtime import counter, gauge

from .book import SpendContext
from .core import BreakerView, BudgetCore

_BREAKER_VALUE = {BreakerStatus.CLOSED: 0, BreakerStatus.HALF_OPEN: 1, BreakerStatus.OPEN: 2}


def record_spend(context: SpendContext, used: dict[str, float]) -> None:
    """Tokens, cost and calls settled, by agent, model and run."""
    tags = {"agent": context.agent, "model": context.model or "", "run": context.run}
    tokens = counter("budget_tokens_total", "Tokens settled", ("agent", "model", "run", "kind"))
    for dim, kind in (
        (Dimension.PROMPT_TOKENS, "prompt"),
        (Dimension.COMPLETION_TOKENS, "completion"),
    ):
        amount = used.get(dim.value, 0.0)
        if amount > 0:
            tokens.inc(amount, tags={**tags, "kind": kind})
    cost = used.get(Dimension.COST.value, 0.0)
    if cost > 0:
        counter("budget_cost_total", "Cost settled", ("agent", "model", "run")).inc(cost, tags=tags)
    calls = used.get(Dimension.CALLS.value, 0.0)
    if calls > 0:
        counter("budget_model_calls_total", "Model calls settled", ("agent", "model", "run")).inc(
            calls, tags=tags
        )


def record_refusal(agent: str, reason: str) -> None:
    """A call refused: ``reason`` is ``budget``, ``circuit_open`` or ``configuration``."""
    counter("budget_calls_refused_total", "Calls refused", ("agent", "reason")).inc(
        1, tags={"agent": agent or "?", "reason": reason}
    )


def record_retry(run: str, reason: str) -> None:
    """A retry asked for: ``allowed`` or the refusal's reason."""
    outcome = "allowed" if reason == "ok" else reason
    counter("budget_retries_total", "Retries asked for, by outcome", ("run", "outcome")).inc(
        1, tags={"run": run, "outcome": outcome}
    )


def record_breaker(view: BreakerView) -> None:
    """The breaker's state: 0 closed, 1 half-open, 2 open."""
    gauge("breaker_state", "0 closed, 1 half-open, 2 open", ("dependency",)).set(
        _BREAKER_VALUE[view.status], tags={"dependency": view.dependency}
    )


def record_books(core: BudgetCore) -> None:
    """What remains under each cap, and what is outstanding."""
    remaining = gauge("budget_remaining", "Left under a cap", ("scope", "key", "dimension"))
    outstanding = gauge(
        "budget_outstanding", "Handed out, not settled", ("scope", "key", "dimension")
    )
    for key in core.book.ledgers:
        ledger = core.book.ledger(key)
        tags = {"scope": key[0], "key": key[2], "dimension": key[3]}
        remaining.set(ledger.remaining, tags=tags)
        outstanding.set(ledger.outstanding, tags=tags)
    gauge("budget_reservations_outstanding", "Open reservations and leases", ()).set(
        len(core.book.grants)
    )
