"""Token and cost budgets: scopes, dimensions, caps, prices, and lease arithmetic.

The budget actor keeps, per limit, what was spent (``committed``) and what is handed out but
not yet settled (``outstanding``: reservations before a model call and leases drawn by
agents). ``grant`` decides how much of a request to hand out; ``settle`` returns what a
holder did not use. ``Ledger`` applies both to the three numbers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType


class Dimension(StrEnum):
    """What a budget counts."""

    PROMPT_TOKENS = "prompt_tokens"
    COMPLETION_TOKENS = "completion_tokens"
    TOKENS = "tokens"
    """Prompt and completion tokens together."""
    COST = "cost"
    CALLS = "calls"
    RETRIES = "retries"


class ScopeKind(StrEnum):
    """What a budget is shared by: the whole cluster, a run (trace), an agent, a model or a
    tool."""

    CLUSTER = "cluster"
    RUN = "run"
    AGENT = "agent"
    MODEL = "model"
    TOOL = "tool"


@dataclass(frozen=True, slots=True, kw_only=True)
class Scope:
    """Who shares a budget.

    Attributes:
        kind: the kind of scope; required.
        key: the run id, agent, model or tool name; ``"*"`` (the default) gives each of
            them a budget of its own. A cluster scope has only ``"*"``.
    """

    kind: ScopeKind
    key: str = "*"

    def __post_init__(self) -> None:
        if not self.key:
            raise ValueError("Scope.key must not be empty")
        if self.kind is ScopeKind.CLUSTER and self.key != "*":
            raise ValueError(f"a cluster scope has key '*', got {self.key!r}")

    def covers(self, kind: ScopeKind, key: str) -> bool:
        """Whether spending by ``kind``/``key`` counts against this scope."""
        return self.kind is kind and self.key in ("*", key)


@dataclass(frozen=True, slots=True, kw_only=True)
class BudgetLimit:
    """A cap on one dimension within one scope.

    Attributes:
        scope: who shares the cap; required.
        dimension: what is counted; required.
        cap: the most that may be spent, finite and at least 0 (0 forbids any spending);
            required.
    """

    scope: Scope
    dimension: Dimension
    cap: float

    def __post_init__(self) -> None:
        _check_amount("BudgetLimit.cap", self.cap)


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelPrice:
    """The price of one model, per 1,000 tokens.

    Attributes:
        prompt_per_1k: price of 1,000 prompt tokens, at least 0. Default 0.0.
        completion_per_1k: price of 1,000 completion tokens, at least 0. Default 0.0.
    """

    prompt_per_1k: float = 0.0
    completion_per_1k: float = 0.0

    def __post_init__(self) -> None:
        _check_amount("ModelPrice.prompt_per_1k", self.prompt_per_1k)
        _check_amount("ModelPrice.completion_per_1k", self.completion_per_1k)


class UnknownModelError(LookupError):
    """A model has no price and the price table has no default."""

    def __init__(self, model: str) -> None:
        super().__init__(model)
        self.model = model

    def __str__(self) -> str:
        return f"no price for model {self.model!r} and no default price"


@dataclass(frozen=True, slots=True, kw_only=True)
class PriceTable:
    """Prices by model name.

    Attributes:
        models: price of each model by name; stored read-only. Default empty.
        default: price of a model not in ``models``; None (the default) makes an unknown
            model an ``UnknownModelError``, so that an unpriced model is never free by
            accident.
    """

    models: Mapping[str, ModelPrice] = field(default_factory=dict)
    default: ModelPrice | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "models", MappingProxyType(dict(self.models)))

    def __hash__(self) -> int:
        return hash((frozenset(self.models.items()), self.default))

    def __reduce__(self) -> tuple[object, ...]:
        # A mappingproxy cannot be pickled; rebuild from a plain dict (e.g. across Ray).
        return (_price_table, (dict(self.models), self.default))

    def price(self, model: str) -> ModelPrice:
        """The price of ``model``.

        Raises:
            UnknownModelError: ``model`` is not listed and there is no default.
        """
        price = self.models.get(model, self.default)
        if price is None:
            raise UnknownModelError(model)
        return price

    def cost(self, model: str, prompt_tokens: int, completion_tokens: int) -> float:
        """The cost of one call.

        Raises:
            UnknownModelError: ``model`` is not listed and there is no default.
            ValueError: a token count is negative.
        """
        if prompt_tokens < 0 or completion_tokens < 0:
            raise ValueError("token counts must not be negative")
        price = self.price(model)
        return (
            prompt_tokens * price.prompt_per_1k + completion_tokens * price.completion_per_1k
        ) / 1000.0


class LeaseMode(StrEnum):
    """How allowances are handed out against a cap.

    STRICT: committed + outstanding never exceeds the cap; a request may be granted in part
        or not at all. Worst-case overspend: zero, as long as holders spend no more than
        they were granted.
    LOOSE: a request is granted whole while committed + outstanding is below the cap, and
        refused once it is not. Agents are never cut short mid-batch, at the price of
        crossing the cap with the last grant: worst-case overspend is less than the
        largest single request.
    """

    STRICT = "strict"
    LOOSE = "loose"


def grant(
    *,
    cap: float,
    committed: float,
    outstanding: float,
    requested: float,
    mode: LeaseMode = LeaseMode.STRICT,
) -> float:
    """How much of ``requested`` to hand out.

    In STRICT mode the result ``g`` satisfies ``committed + (outstanding + g) <= cap``
    evaluated in floating point, so a ledger storing ``outstanding + g`` keeps the bound
    exactly. See ``LeaseMode`` for the worst-case overspend of each mode.

    Args:
        cap: the limit.
        committed: spent and settled so far.
        outstanding: reservations and leases handed out and not yet settled.
        requested: the amount asked for.
        mode: STRICT (the default) or LOOSE.

    Returns:
        The amount granted, between 0 and ``requested``.

    Raises:
        ValueError: an amount is negative or not finite.
    """
    for name, value in (
        ("cap", cap),
        ("committed", committed),
        ("outstanding", outstanding),
        ("requested", requested),
    ):
        _check_amount(name, value)
    if mode is LeaseMode.LOOSE:
        return requested if committed + outstanding < cap else 0.0
    return _strict_grant(cap, committed, outstanding, requested)


def _strict_grant(cap: float, committed: float, outstanding: float, requested: float) -> float:
    """The most of ``requested`` that keeps ``committed + (outstanding + g) <= cap`` in
    floating point."""
    granted = min(requested, max(0.0, cap - committed - outstanding))
    while granted > 0.0 and committed + (outstanding + granted) > cap:
        # Rounding of the sums can cross the cap by a few ulps; step down by the sum's ulp.
        granted = max(0.0, granted - math.ulp(committed + outstanding + granted))
    return granted


def settle(*, granted: float, used: float) -> float:
    """The unused part of an allowance, returned when its holder settles.

    A holder that used more than it was granted (a reservation that underestimated the
    call) returns nothing; the excess is still spent and is charged in full.

    Raises:
        ValueError: an amount is negative or not finite.
    """
    _check_amount("granted", granted)
    _check_amount("used", used)
    return max(0.0, granted - used)


@dataclass(frozen=True, slots=True, kw_only=True)
class Ledger:
    """The spending against one limit: an immutable value, replaced on every grant and
    settlement.

    Attributes:
        cap: the limit; required.
        committed: spent and settled. Default 0.
        outstanding: handed out and not yet settled. Default 0.
    """

    cap: float
    committed: float = 0.0
    outstanding: float = 0.0

    def __post_init__(self) -> None:
        _check_amount("Ledger.cap", self.cap)
        _check_amount("Ledger.committed", self.committed)
        _check_amount("Ledger.outstanding", self.outstanding)

    @property
    def remaining(self) -> float:
        """What is neither spent nor handed out, at least 0."""
        return max(0.0, self.cap - self.committed - self.outstanding)

    def grant(self, requested: float, mode: LeaseMode = LeaseMode.STRICT) -> tuple[float, Ledger]:
        """Hand out part or all of ``requested``: ``(granted, new_ledger)``.

        Raises:
            ValueError: ``requested`` is negative or not finite.
        """
        granted = grant(
            cap=self.cap,
            committed=self.committed,
            outstanding=self.outstanding,
            requested=requested,
            mode=mode,
        )
        new = Ledger(cap=self.cap, committed=self.committed, outstanding=self.outstanding + granted)
        return granted, new

    def settle(self, granted: float, used: float) -> tuple[float, Ledger]:
        """Settle an allowance of ``granted`` of which ``used`` was spent:
        ``(unused, new_ledger)``.

        In STRICT mode the ledger's ``committed + outstanding <= cap`` survives settling
        (when ``used <= granted``): rounding that would cross the cap by an ulp is taken
        off ``outstanding``, never off what was spent.

        Raises:
            ValueError: an amount is negative or not finite, or ``granted`` exceeds
                ``outstanding`` by more than rounding.
        """
        unused = settle(granted=granted, used=used)
        if granted > self.outstanding * (1 + 1e-9) + 1e-12:
            raise ValueError(f"settling {granted} but only {self.outstanding} is outstanding")
        committed = self.committed + used
        outstanding = max(0.0, self.outstanding - granted)
        if used <= granted and self.committed + self.outstanding <= self.cap:
            while outstanding > 0.0 and committed + outstanding > self.cap:
                outstanding = max(0.0, outstanding - math.ulp(self.cap))
        return unused, Ledger(cap=self.cap, committed=committed, outstanding=outstanding)


def _price_table(models: dict[str, ModelPrice], default: ModelPrice | None) -> PriceTable:
    return PriceTable(models=models, default=default)


def _check_amount(name: str, value: float) -> None:
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be finite and at least 0, got {value!r}")
