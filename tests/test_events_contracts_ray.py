"""On a real Ray: an event stored under another contract version than its subscriber's
handler speaks stops that partition at the event with ``ContractMismatchError`` in the
status (the dispatcher keeps serving); a replay past it moves the partition on."""

from __future__ import annotations

from typing import Any

import pytest
from contract_events_for_tests import AnyOrders, Ledger, PlacedV2Recorder
from waiting import wait_until

from actors import Subscriptions, System
from policies import EventsPolicy


def ledger(system: System) -> list[str]:
    return list(system.log("ledger").replay().get("items", []))


def partition(subs: Subscriptions) -> dict[str, Any]:
    (row,) = [r for r in subs.status() if r["resource"] == "orders"]
    return row


@pytest.mark.timeout(240)
def test_a_mismatched_version_stops_its_partition_until_replayed_past(system: System) -> None:
    # One failure would dead-letter a handler's failure: a refusal is never counted.
    subs = Subscriptions.start(system, EventsPolicy(max_delivery_attempts=1))
    system.resource(AnyOrders, name="orders")
    system.resource(Ledger, name="ledger")
    system.agent(PlacedV2Recorder, name="rec")
    orders = system.get_resource("orders")
    for sku, version in (("a", 2), ("b", 1), ("c", 2)):
        orders.place(sku, version)
    stuck = wait_until(
        lambda: (row := partition(subs))["error"] and row, "the mismatch reported", 120
    )
    assert stuck["error"].startswith("contract: orders:2:0: ContractMismatchError")
    assert "expects 'order_placed' version 2, got version 1" in stuck["error"]
    assert (stuck["checkpoint"], stuck["last_seq"], ledger(system)) == (1, 3, ["a"])
    orders.place("d", 2)  # still stopped: nothing after the refused event is delivered
    wait_until(lambda: partition(subs)["last_seq"] == 4, "the fourth event seen", 60)
    assert (partition(subs)["checkpoint"], ledger(system)) == (1, ["a"])
    assert (partition(subs)["dead_letters"], subs.dead_letters("rec")) == (0, [])
    subs.replay("rec", "orders", after=2)  # the operator's decision: pass the v1 event
    wait_until(lambda: ledger(system) == ["a", "c", "d"], "the rest handled", 120)
    subs.wait_caught_up()
    assert partition(subs)["error"] is None
