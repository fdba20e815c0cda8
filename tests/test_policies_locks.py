"""The pure rules of lock ordering and the lock policy's checks."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from policies import (
    LockPolicy,
    breaks_order,
    in_lock_order,
    key_prefix,
    order_rank,
    prefix_label,
)

KEYS = st.lists(
    st.sampled_from(["inventory:A", "inventory:B", "pricing:A", "stock:A", "zeta", "alpha:1"]),
    max_size=6,
)
ORDERS = st.sampled_from([(), ("pricing",), ("pricing", "inventory"), ("zeta", "alpha")])


@given(keys=KEYS, order=ORDERS, seed=st.randoms())
def test_the_order_is_one_whatever_order_the_keys_come_in(
    keys: list[str], order: tuple[str, ...], seed: Any
) -> None:
    shuffled = list(keys)
    seed.shuffle(shuffled)
    ordered = in_lock_order(keys, order)
    assert ordered == in_lock_order(shuffled, order)
    assert sorted(ordered) == sorted(set(keys))
    ranks = [order_rank(key, order) for key in ordered]
    assert ranks == sorted(ranks)


@given(held=KEYS, wanted=KEYS, order=ORDERS)
def test_a_break_is_a_held_key_not_below_every_wanted_one(
    held: list[str], wanted: list[str], order: tuple[str, ...]
) -> None:
    found = breaks_order(held, wanted, order)
    if not wanted or not held:
        assert found == ""
        return
    lowest = min(order_rank(key, order) for key in wanted)
    offending = [key for key in held if order_rank(key, order) >= lowest]
    assert found == (max(offending, key=lambda k: order_rank(k, order)) if offending else "")


def test_declared_prefixes_come_first_in_their_order() -> None:
    order = ("pricing", "inventory")
    keys = ["stock:A", "inventory:A", "pricing:B", "pricing:A"]
    assert in_lock_order(keys, order) == ("pricing:A", "pricing:B", "inventory:A", "stock:A")
    assert breaks_order(["pricing:A"], ["inventory:A"], order) == ""
    assert breaks_order(["inventory:A"], ["pricing:A"], order) == "inventory:A"


def test_the_label_of_a_key_is_its_prefix_cut_short() -> None:
    assert key_prefix("inventory:sku:42") == "inventory"
    assert key_prefix("plain") == "plain"
    assert prefix_label("x" * 50 + ":1") == "x" * 32


@pytest.mark.parametrize(
    "change",
    [
        {"tick": timedelta(0)},
        {"default_ttl": timedelta(minutes=20)},
        {"renew_fraction": 1.0},
        {"alert_factor": 0.0},
        {"max_keys": 0},
        {"order": ("a", "a")},
        {"events": timedelta(seconds=-1)},
    ],
)
def test_a_policy_that_cannot_work_is_refused(change: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        LockPolicy(**change)
