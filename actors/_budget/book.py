"""The budget's books: caps, one ledger per capped scope, and the open grants.

Every change is an event (declare, grant, settle, expire, charge) applied by ``apply``, both
live and when the durable log is replayed, so a recovered book is the book that was lost.
Deciding (``plan_grant``) never changes the book; only applying does.

A grant that expires, or whose holder is killed, is charged in full: its holder may have
spent all of it, and a strict cap must hold when the holder vanishes. A settle that comes
later (within ``BudgetRetention.closed_grants``) corrects the charge to what was really
spent, so the books still reconcile with the agents' own records to the token.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from policies import Dimension, LeaseMode, Ledger, ScopeKind
from runtime import BudgetExceededError, ConfigurationError

LedgerKey = tuple[str, str, str, str]
"""(scope kind, scope key of the limit, the concrete key spent against, dimension)."""

LimitKey = tuple[str, str, str]
"""(scope kind, scope key, dimension)."""

_COST_UNIT = 2.0**-20  # under a millionth of the currency: a power of two, so sums are exact


def _grant_unit(dim: str) -> float:
    """What a grant on ``dim`` is a whole number of: one call, token or retry, or
    ``_COST_UNIT`` of cost. Sums of whole units are exact in floating point (below 2**53
    units), so a ledger's ``outstanding`` is exactly the sum of its open grants and comes
    back to 0 when they are settled; a fraction of a unit (a tenth of what remains can be
    2.5 calls) left a residue that refused the last call under a cap, and could not be
    spent anyway."""
    return _COST_UNIT if dim == Dimension.COST.value else 1.0


@dataclass(frozen=True, slots=True, kw_only=True)
class SpendContext:
    """Who spends: the run (trace id), the agent, and the model or tool called.

    Attributes:
        run: the run's trace id; required.
        agent: the agent's name; required.
        model: the model called, or None.
        tool: the tool called, or None.
    """

    run: str
    agent: str
    model: str | None = None
    tool: str | None = None

    def key_for(self, kind: ScopeKind) -> str | None:
        """The key this context spends against in a scope of ``kind``, or None."""
        if kind is ScopeKind.CLUSTER:
            return "*"
        return {
            ScopeKind.RUN: self.run,
            ScopeKind.AGENT: self.agent,
            ScopeKind.MODEL: self.model,
            ScopeKind.TOOL: self.tool,
        }[kind]

    def to_dict(self) -> dict[str, str | None]:
        return {"run": self.run, "agent": self.agent, "model": self.model, "tool": self.tool}


@dataclass(slots=True, kw_only=True)
class OpenGrant:
    """A reservation or a lease handed out and not yet settled."""

    id: str
    context: SpendContext
    amounts: dict[str, float]
    ledgers: list[LedgerKey]
    expires_at: float
    holder: str


@dataclass(slots=True)
class ClosedGrant:
    """A grant no longer open, remembered for ``BudgetRetention.closed_grants``: a repeated
    settle is recognised, and a late one corrects the full charge of ``charged``.

    Attributes:
        why: ``settled``, ``expired``, ``killed`` (its holder was killed) or ``late``
            (expired or killed, then settled).
        at: wall-clock time it closed.
        charged: for ``expired`` and ``killed``, the grant charged in full; else None.
    """

    why: str
    at: float
    charged: OpenGrant | None = None


@dataclass(slots=True)
class LedgerBook:
    """Caps, ledgers, open grants and spend by (run, agent, model)."""

    limits: dict[LimitKey, float] = field(default_factory=dict)
    ledgers: dict[LedgerKey, Ledger] = field(default_factory=dict)
    grants: dict[str, OpenGrant] = field(default_factory=dict)
    closed: dict[str, ClosedGrant] = field(default_factory=dict)
    spent: dict[tuple[str, str, str], dict[str, float]] = field(default_factory=dict)
    runs_seen: dict[str, float] = field(default_factory=dict)
    late_settles: int = 0

    # -- deciding -------------------------------------------------------------------

    def matching(self, context: SpendContext, dimension: str) -> list[LedgerKey]:
        """The ledgers spending by ``context`` on ``dimension`` counts against."""
        keys: list[LedgerKey] = []
        for kind, scope_key, dim in self.limits:
            concrete = context.key_for(ScopeKind(kind))
            if dim == dimension and concrete is not None and scope_key in ("*", concrete):
                keys.append((kind, scope_key, concrete, dim))
        return keys

    def ledger(self, key: LedgerKey) -> Ledger:
        """The ledger of ``key``; a fresh one at its limit's cap if never used."""
        found = self.ledgers.get(key)
        if found is None:
            found = Ledger(cap=self.limits[(key[0], key[1], key[3])])
        return found

    def plan_grant(
        self,
        context: SpendContext,
        need: dict[str, float],
        want: dict[str, float],
        *,
        mode: LeaseMode,
        share: float = 1.0,
    ) -> tuple[dict[str, float], list[LedgerKey]]:
        """What to hand out: at least ``need``, at most ``want``, per dimension.

        Returns:
            ``(amounts, ledgers)``: the grant and the ledgers it counts against.

        Raises:
            BudgetExceededError: a ledger cannot cover ``need``.
            ConfigurationError: a cost cap covers the context but ``need`` has no cost
                (the model has no price).
        """
        if Dimension.COST.value not in need and self.matching(context, Dimension.COST):
            raise ConfigurationError(
                f"a cost cap covers model {context.model!r}, which has no price"
            )
        amounts: dict[str, float] = {}
        ledgers: list[LedgerKey] = []
        for dim, needed in need.items():
            keys = self.matching(context, dim)
            wanted = want.get(dim, needed)
            amounts[dim] = self._grant_dimension(dim, keys, needed, wanted, mode, share)
            ledgers.extend(keys)
        return amounts, ledgers

    def _grant_dimension(
        self,
        dim: str,
        keys: list[LedgerKey],
        needed: float,
        wanted: float,
        mode: LeaseMode,
        share: float,
    ) -> float:
        """What every ledger of ``keys`` can grant on ``dim``: at least ``needed``, at most
        ``wanted`` and at most ``share`` of the tightest ledger's remaining (not below
        ``needed``), in whole units of ``dim`` (``_grant_unit``: ``needed`` and
        ``wanted`` rounded up to them).

        Raises:
            BudgetExceededError: a ledger cannot cover ``needed``.
        """
        unit = _grant_unit(dim)
        least = math.ceil(needed / unit) * unit
        granted = max(math.ceil(wanted / unit) * unit, least)
        if keys:
            remaining = min(self.ledger(k).remaining for k in keys)
            granted = min(granted, max(least, math.floor(share * remaining / unit) * unit))
        for key in keys:
            ledger = self.ledger(key)
            got, _ = ledger.grant(granted, mode)
            got = math.floor(got / unit) * unit
            if got < least:
                raise BudgetExceededError(
                    scope=f"{key[0]}:{key[2]}", dimension=dim, cap=ledger.cap,
                    requested=needed, available=ledger.remaining,
                )  # fmt: skip
            granted = got
        return granted

    def plan_charge(self, context: SpendContext, amounts: dict[str, float]) -> list[LedgerKey]:
        """The ledgers an immediate charge of ``amounts`` goes to (strict: all of it fits).

        Raises:
            BudgetExceededError: a ledger cannot take the amount.
        """
        _, ledgers = self.plan_grant(context, amounts, amounts, mode=LeaseMode.STRICT)
        return ledgers

    # -- applying -------------------------------------------------------------------

    def apply(self, kind: str, data: dict[str, Any], at: float) -> None:
        """Apply one event of the durable log, logged at wall-clock time ``at``.

        Raises:
            ValueError: an unknown event kind.
        """
        if kind == "declare":
            self._declare((data["kind"], data["key"], data["dim"]), float(data["cap"]))
        elif kind == "grant":
            self._grant(data, at)
        elif kind == "settle":
            self._settle(data["id"], data["used"], at)
        elif kind == "expire":
            self._charge_in_full(data["id"], data.get("why", "expired"), at)
        elif kind == "charge":
            self._charge(data, at)
        else:
            raise ValueError(f"unknown budget event {kind!r}")

    def late_correction(
        self, grant_id: str, used: dict[str, float]
    ) -> tuple[SpendContext, dict[str, float], list[LedgerKey]] | None:
        """For a grant charged in full (expired or killed) and settled now: its context,
        ``used`` minus what was charged per dimension, and its ledgers; else None."""
        closed = self.closed.get(grant_id)
        if closed is None or closed.charged is None:
            return None
        grant = closed.charged
        dims = set(grant.amounts) | set(used)
        delta = {d: used.get(d, 0.0) - grant.amounts.get(d, 0.0) for d in dims}
        return grant.context, delta, grant.ledgers

    def _charge(self, data: dict[str, Any], at: float) -> None:
        """Spend committed at once: a retry, or the correction of a grant charged in full
        by its late settle (``late``: the grant's id; the amounts may be negative)."""
        for key in data["ledgers"]:
            k: LedgerKey = (key[0], key[1], key[2], key[3])
            old = self.ledger(k)
            committed = max(0.0, old.committed + data["amounts"].get(k[3], 0.0))
            self.ledgers[k] = Ledger(cap=old.cap, committed=committed, outstanding=old.outstanding)
        late = data.get("late")
        if late:
            self.late_settles += 1
            if isinstance(late, str) and late in self.closed:
                self.closed[late] = ClosedGrant("late", at)
        self._record_spend(SpendContext(**data["ctx"]), data["amounts"], at)

    def _declare(self, limit: LimitKey, cap: float) -> None:
        self.limits[limit] = cap
        for key, old in list(self.ledgers.items()):
            if (key[0], key[1], key[3]) == limit:
                self.ledgers[key] = Ledger(
                    cap=cap, committed=old.committed, outstanding=old.outstanding
                )

    def _grant(self, data: dict[str, Any], at: float) -> None:
        grant = OpenGrant(
            id=data["id"], context=SpendContext(**data["ctx"]), amounts=dict(data["amounts"]),
            ledgers=[(k[0], k[1], k[2], k[3]) for k in data["ledgers"]],
            expires_at=float(data["expires_at"]), holder=data["holder"],
        )  # fmt: skip
        for key in grant.ledgers:
            old = self.ledger(key)
            self.ledgers[key] = Ledger(
                cap=old.cap, committed=old.committed,
                outstanding=old.outstanding + grant.amounts.get(key[3], 0.0),
            )  # fmt: skip
        self.grants[grant.id] = grant
        self.runs_seen[grant.context.run] = at

    def _settle(self, grant_id: str, used: dict[str, float], at: float) -> None:
        grant = self.grants.pop(grant_id, None)
        if grant is None:
            return  # settled before (a repeat), or charged in full: see ``late_correction``
        for key in grant.ledgers:
            _, self.ledgers[key] = self.ledger(key).settle(
                grant.amounts.get(key[3], 0.0), used.get(key[3], 0.0)
            )
        self.closed[grant_id] = ClosedGrant("settled", at)
        self._record_spend(grant.context, used, at)

    def _charge_in_full(self, grant_id: str, why: str, at: float) -> None:
        """Close an unsettled grant as if all of it was spent (its holder may have)."""
        grant = self.grants.pop(grant_id, None)
        if grant is None:
            return
        for key in grant.ledgers:
            amount = grant.amounts.get(key[3], 0.0)
            _, self.ledgers[key] = self.ledger(key).settle(amount, amount)
        self.closed[grant_id] = ClosedGrant(why, at, grant)
        self._record_spend(grant.context, grant.amounts, at)

    def _record_spend(self, context: SpendContext, used: dict[str, float], at: float) -> None:
        key = (context.run, context.agent, context.model or context.tool or "")
        totals = self.spent.setdefault(key, {})
        for dim, amount in used.items():
            totals[dim] = totals.get(dim, 0.0) + amount
        self.runs_seen[context.run] = at
