"""The budget's metrics, on Ray's Prometheus endpoint.

Labels have bounded cardinality: agents, models, dependencies, cap scopes and outcomes,
never a run (trace) id, which grows without bound on a long-running cluster. Spend per run
is in ``BudgetHandle.status()``.
"""

from __future__ import annotations

from policies import BreakerStatus, Dimension, ScopeKind
from runtime import counter, gauge

from .book import SpendContext
from .core import BreakerView, BudgetCore

_BREAKER_VALUE = {BreakerStatus.CLOSED: 0, BreakerStatus.HALF_OPEN: 1, BreakerStatus.OPEN: 2}
_RUN = ScopeKind.RUN.value


def record_spend(context: SpendContext, used: dict[str, float]) -> None:
    """Tokens, cost and calls settled, by agent and model."""
    tags = {"agent": context.agent, "model": context.model or ""}
    tokens = counter("budget_tokens_total", "Tokens settled", ("agent", "model", "kind"))
    for dim, kind in (
        (Dimension.PROMPT_TOKENS, "prompt"),
        (Dimension.COMPLETION_TOKENS, "completion"),
    ):
        amount = used.get(dim.value, 0.0)
        if amount > 0:
            tokens.inc(amount, tags={**tags, "kind": kind})
    cost = used.get(Dimension.COST.value, 0.0)
    if cost > 0:
        counter("budget_cost_total", "Cost settled", ("agent", "model")).inc(cost, tags=tags)
    calls = used.get(Dimension.CALLS.value, 0.0)
    if calls > 0:
        counter("budget_model_calls_total", "Model calls settled", ("agent", "model")).inc(
            calls, tags=tags
        )


def record_refusal(agent: str, reason: str) -> None:
    """A call refused: ``reason`` is ``budget``, ``circuit_open`` or ``configuration``."""
    counter("budget_calls_refused_total", "Calls refused", ("agent", "reason")).inc(
        1, tags={"agent": agent or "?", "reason": reason}
    )


def record_retry(reason: str) -> None:
    """A retry asked for: ``allowed`` or the refusal's reason."""
    outcome = "allowed" if reason == "ok" else reason
    counter("budget_retries_total", "Retries asked for, by outcome", ("outcome",)).inc(
        1, tags={"outcome": outcome}
    )


def record_breaker(view: BreakerView) -> None:
    """The breaker's state: 0 closed, 1 half-open, 2 open."""
    gauge("breaker_state", "0 closed, 1 half-open, 2 open", ("dependency",)).set(
        _BREAKER_VALUE[view.status], tags={"dependency": view.dependency}
    )


def record_books(core: BudgetCore) -> None:
    """What remains under each cap, and what is outstanding. A cap per run (key ``*``)
    is reported as one series: the least remaining and the total outstanding over runs."""
    remaining: dict[tuple[str, str, str], float] = {}
    outstanding: dict[tuple[str, str, str], float] = {}
    for ledger_key, ledger in core.book.ledgers.items():
        scope, _, spender, dim = ledger_key
        series = (scope, "*" if scope == _RUN else spender, dim)
        remaining[series] = min(remaining.get(series, ledger.remaining), ledger.remaining)
        outstanding[series] = outstanding.get(series, 0.0) + ledger.outstanding
    labels = ("scope", "key", "dimension")
    left = gauge("budget_remaining", "Left under a cap", labels)
    held = gauge("budget_outstanding", "Handed out, not settled", labels)
    for (scope, key, dim), value in remaining.items():
        tags = {"scope": scope, "key": key, "dimension": dim}
        left.set(value, tags=tags)
        held.set(outstanding[scope, key, dim], tags=tags)
    gauge("budget_reservations_outstanding", "Open reservations and leases", ()).set(
        len(core.book.grants)
    )
