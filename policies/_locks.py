"""Policies of the locks actor: lease lengths, the lock manager's tick, the global order of
keys, the wait alert, and how long the locks log is kept; and the pure rules of ordering."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from ._resource import Durability

PREFIX_LABEL_CHARS = 32
"""At most this many characters of a key's prefix go into a metric label."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LockPolicy:
    """How the ``locks`` actor grants, expires and watches leases.

    Attributes:
        tick: how often the lock manager expires leases, times out waits, raises wait
            alerts and looks for deadlock cycles (a cycle is also looked for at once
            whenever a caller starts to wait). Default 100 ms.
        default_ttl: a lease's time to live when the caller names none. Default 10 s.
        max_ttl: the longest time to live a caller may ask for. Default 10 min.
        default_wait: how long a caller waits for its keys when it names no timeout.
            Default 30 s.
        renew_fraction: a held lease is renewed by its holder's runtime every
            ``ttl * renew_fraction``. Default 1/3 (two renewals may fail before it expires).
        order: key prefixes in their global order (``("inventory", "pricing")``): keys
            sort by the position of their prefix (the text before the first ``:``), then
            by name; prefixes not listed come after the listed ones. Default empty: keys
            sort by name alone.
        enforce_order: refuse with ``LockOrderError`` a lease whose keys do not all sort
            after every key its owner already holds (nested leases). Default True; turned
            off only to study deadlocks, which the detector then breaks.
        alert_factor: a wait longer than ``alert_factor`` times the lease's declared
            ``expected`` hold time raises the ``lock_wait_exceeded`` alert. Default 2.0.
        max_keys: most keys one lease may take. Default 64.
        events: how long the locks log keeps events. Default 7 days.
        durability: what a grant survives once answered (a grant is stored before it is
            answered). Default ``Durability.FULL``: an fsync per group commit.
    """

    tick: timedelta = timedelta(milliseconds=100)
    default_ttl: timedelta = timedelta(seconds=10)
    max_ttl: timedelta = timedelta(minutes=10)
    default_wait: timedelta = timedelta(seconds=30)
    renew_fraction: float = 1 / 3
    order: tuple[str, ...] = ()
    enforce_order: bool = True
    alert_factor: float = 2.0
    max_keys: int = 64
    events: timedelta = timedelta(days=7)
    durability: Durability = Durability.FULL

    def __post_init__(self) -> None:
        for name in ("tick", "default_ttl", "max_ttl", "default_wait", "events"):
            if getattr(self, name) <= timedelta(0):
                raise ValueError(f"LockPolicy.{name} must be positive")
        if self.default_ttl > self.max_ttl:
            raise ValueError("LockPolicy.default_ttl must not exceed max_ttl")
        if not 0 < self.renew_fraction < 1:
            raise ValueError("LockPolicy.renew_fraction must be between 0 and 1")
        if self.alert_factor <= 0 or self.max_keys < 1:
            raise ValueError("LockPolicy.alert_factor and max_keys must be positive")
        if len(set(self.order)) != len(self.order):
            raise ValueError("LockPolicy.order names a prefix twice")


def key_prefix(key: str) -> str:
    """The family of ``key``: the text before its first ``:`` (the whole key without one)."""
    return key.split(":", 1)[0]


def prefix_label(key: str) -> str:
    """The metric label of ``key``: its prefix, cut to ``PREFIX_LABEL_CHARS`` characters.

    Keys are unbounded (one per SKU, per draft); their prefixes name a kind of entity
    and are few, which keeps the labels' cardinality bounded.
    """
    return key_prefix(key)[:PREFIX_LABEL_CHARS]


def order_rank(key: str, order: tuple[str, ...] = ()) -> tuple[int, str]:
    """Where ``key`` stands in the global order declared by ``order`` (see ``LockPolicy``)."""
    prefix = key_prefix(key)
    return (order.index(prefix) if prefix in order else len(order), key)


def in_lock_order(keys: Iterable[str], order: tuple[str, ...] = ()) -> tuple[str, ...]:
    """``keys`` without repeats, in the one global order, whatever order they came in."""
    return tuple(sorted(set(keys), key=lambda key: order_rank(key, order)))


def breaks_order(held: Iterable[str], wanted: Iterable[str], order: tuple[str, ...] = ()) -> str:
    """The first of ``held`` that some key of ``wanted`` does not sort strictly after, or
    ``""`` when taking ``wanted`` while holding ``held`` keeps the global order."""
    wanted_ranks = [order_rank(key, order) for key in wanted]
    if not wanted_ranks:
        return ""
    lowest = min(wanted_ranks)
    for key in sorted(held, key=lambda k: order_rank(k, order), reverse=True):
        if order_rank(key, order) >= lowest:
            return key
    return ""
