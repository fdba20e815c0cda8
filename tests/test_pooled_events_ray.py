"""Pooled agents that hear events, on a real Ray: a pooled subscriber gets each event's
effect once and in order, also when its host is SIGKILLed mid-stream; a pooled validator
vetoes; forged calls straight to a host's event methods are typed errors."""

from __future__ import annotations

import os
import signal
from datetime import timedelta

import pytest
import ray
from events_for_tests import Sink, SlowRecorder, Stock
from visibility_for_tests import Pricing, PromiseMade, Shop
from waiting import wait_until

from actors import Subscriptions, System, Visibility
from actors._agent.pooled import hosts
from actors._events.wire import EventBatch
from actors.lowlevel import EventRecord
from policies import Latency, VisibilityPolicy, VisibilityRule
from runtime import (
    AgentGoneError,
    InvalidArgumentError,
    MalformedEventError,
    UnknownEventTypeError,
    VetoedError,
)

pytestmark = pytest.mark.ray


def sink_items(system: System) -> list[str]:
    return list(system.log("sink").replay().get("recorder", []))


def host_pid(system: System) -> int:
    return int(ray.get(hosts(system.namespace)["agent-host:0"].status.remote(), timeout=60)["pid"])


@pytest.mark.timeout(300)
def test_a_pooled_subscriber_gets_each_event_once_in_order_across_a_host_kill(
    system: System,
) -> None:
    system.resource(Stock, name="stock")
    system.resource(Sink, name="sink")
    system.agent(SlowRecorder, name="recorder", placement="pooled")
    subs = Subscriptions(system.namespace)
    stock = system.get_resource("stock")
    skus = [f"s{i}" for i in range(60)]
    for sku in skus[:40]:
        stock.restock(sku, 1)
    wait_until(lambda: len(sink_items(system)) >= 5, "some handled", 120)
    pid = host_pid(system)
    os.kill(pid, signal.SIGKILL)  # mid-stream: Ray restarts the host with its agents
    for sku in skus[40:]:
        stock.restock(sku, 1)
    wait_until(lambda: len(sink_items(system)) >= 60, "all 60 handled", 240)
    subs.wait_caught_up(timedelta(seconds=120))
    assert sink_items(system) == skus
    assert host_pid(system) != pid  # it was restarted, not spared


@pytest.mark.timeout(300)
def test_a_pooled_validator_vetoes_and_forged_host_calls_are_typed(system: System) -> None:
    shop = system.resource(Shop, name="shop")
    system.agent(Pricing, name="pricing", placement="pooled")
    rule = VisibilityRule(
        notify=("pricing",), latency=Latency.WITHIN_TRANSACTION, deadline=timedelta(seconds=20)
    )
    Visibility.enforce(system, VisibilityPolicy(rules={"PromiseMade": rule}))
    shop.set_price("A", 10)
    assert shop.promise("A", 10) == 1
    shop.set_price("A", 12)
    with pytest.raises(VetoedError) as vetoed:
        shop.promise("A", 10)
    assert (vetoed.value.validator, vetoed.value.reason) == ("pricing", "quoted 10, price is 12")
    assert shop.promises() == 1
    host = hosts(system.namespace)["agent-host:0"]
    payload = PromiseMade(sku="A", price=12).model_dump_json().encode()
    validate = host.validate_event.remote
    forged = [
        (host.deliver.remote("nobody:0", []), AgentGoneError),
        (host.deliver.remote("pricing:0", {"not": "a batch"}), InvalidArgumentError),
        (validate("nobody:0", "PromiseMade", payload), AgentGoneError),
        (validate("pricing:0", "Nope", payload), UnknownEventTypeError),
        (validate("pricing:0", "PromiseMade", b"\x00junk"), MalformedEventError),
        (validate("pricing:0", "PromiseMade", payload, "t"), InvalidArgumentError),
        (host.event_types.remote(12), AgentGoneError),
    ]
    for ref, error in forged:
        with pytest.raises(error):
            ray.get(ref, timeout=60)
    record = EventRecord("shop", 1, "shop:1:0", 1, "Nope", b"{}", "0" * 32, "s", "w", "t")
    with pytest.raises(UnknownEventTypeError):  # a type it does not subscribe to
        ray.get(
            host.deliver.remote("pricing:0", EventBatch.of("shop", [record]).wire()), timeout=60
        )
    assert ray.get(host.validate_event.remote("pricing:0", "PromiseMade", payload)) is None
