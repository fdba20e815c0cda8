"""What keeps the budget actor's memory and its log bounded: snapshots of the books (a
restart replays only the events after the last one) and the pruning of closed grants and
of runs gone quiet (``BudgetRetention``)."""

from __future__ import annotations

from typing import Any

from policies import BudgetRetention, Ledger, ScopeKind

from .book import ClosedGrant, LedgerBook, OpenGrant, SpendContext


def book_snapshot(book: LedgerBook) -> dict[str, Any]:
    """The book as plain data (JSON), for the budget's snapshot."""
    return {
        "limits": [[*key, cap] for key, cap in book.limits.items()],
        "ledgers": [[*k, v.cap, v.committed, v.outstanding] for k, v in book.ledgers.items()],
        "grants": [_grant_data(g) for g in book.grants.values()],
        "closed": [
            [gid, c.why, c.at, None if c.charged is None else _grant_data(c.charged)]
            for gid, c in book.closed.items()
        ],
        "spent": [[*key, totals] for key, totals in book.spent.items()],
        "runs_seen": book.runs_seen,
        "late_settles": book.late_settles,
    }  # fmt: skip


def restore_book(data: dict[str, Any]) -> LedgerBook:
    """The book ``book_snapshot`` described."""
    book = LedgerBook(late_settles=int(data["late_settles"]))
    book.limits = {(k, s, d): float(cap) for k, s, d, cap in data["limits"]}
    book.ledgers = {
        (a, b, c, d): Ledger(cap=cap, committed=committed, outstanding=outstanding)
        for a, b, c, d, cap, committed, outstanding in data["ledgers"]
    }
    book.grants = {g["id"]: _grant(g) for g in data["grants"]}
    book.closed = {
        gid: ClosedGrant(why, at, None if charged is None else _grant(charged))
        for gid, why, at, charged in data["closed"]
    }
    book.spent = {(run, agent, target): dict(t) for run, agent, target, t in data["spent"]}
    book.runs_seen = dict(data["runs_seen"])
    return book


def prune_book(book: LedgerBook, now: float, retention: BudgetRetention) -> list[str]:
    """Forget closed grants past ``retention.closed_grants`` and runs quiet past
    ``retention.runs`` (a run with an open grant is never quiet).

    Returns:
        The runs forgotten (their retry budgets go too).
    """
    closed_before = now - retention.closed_grants.total_seconds()
    for grant_id in [g for g, c in book.closed.items() if c.at < closed_before]:
        del book.closed[grant_id]
    runs_before = now - retention.runs.total_seconds()
    busy = {grant.context.run for grant in book.grants.values()}
    quiet = {run for run, at in book.runs_seen.items() if at < runs_before and run not in busy}
    if not quiet:
        return []
    for run in quiet:
        del book.runs_seen[run]
    for spent in [k for k in book.spent if k[0] in quiet]:
        del book.spent[spent]
    run_kind = ScopeKind.RUN.value
    for ledger in [k for k in book.ledgers if k[0] == run_kind and k[2] in quiet]:
        del book.ledgers[ledger]
    return sorted(quiet)


def _grant_data(grant: OpenGrant) -> dict[str, Any]:
    return {
        "id": grant.id, "ctx": grant.context.to_dict(), "amounts": grant.amounts,
        "ledgers": [list(k) for k in grant.ledgers], "expires_at": grant.expires_at,
        "holder": grant.holder,
    }  # fmt: skip


def _grant(data: dict[str, Any]) -> OpenGrant:
    return OpenGrant(
        id=data["id"], context=SpendContext(**data["ctx"]), amounts=dict(data["amounts"]),
        ledgers=[(k[0], k[1], k[2], k[3]) for k in data["ledgers"]],
        expires_at=float(data["expires_at"]), holder=data["holder"],
    )  # fmt: skip
