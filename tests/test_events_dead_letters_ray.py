"""Dead letters on a real Ray, on both storage backends: an always-failing handler among
good events; every good event handled once and in order, the bad one set aside with its
error, shown by ``agentcast status``; redelivered once its condition is fixed, its effects
applied once."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import ray
from backends import any_system as any_system
from events_for_tests import Gate, Picky, Sink, Stock
from waiting import wait_until

from actors import Subscriptions, System
from actors._cli.main import main
from policies import EventsPolicy
from runtime import UnknownDeadLetterError

POLICY = EventsPolicy(
    max_delivery_attempts=3,
    retry_backoff=timedelta(milliseconds=10),
    max_backoff=timedelta(milliseconds=50),
)


def items(system: System, group: str) -> list[str]:
    return list(system.log("sink").replay().get(group, []))


SKUS = ["a", "b", "bad", "c", "d"]


def poisoned(system: System, placement: str = "dedicated") -> Subscriptions:
    """A picky subscriber that refuses ``bad`` among good skus; returns once the good ones
    are handled and the bad one is dead-lettered."""
    subs = Subscriptions.start(system, POLICY)
    for cls, name in ((Stock, "stock"), (Sink, "sink"), (Gate, "gate")):
        system.resource(cls, name=name)
    system.get_resource("gate").refuse("bad")
    system.agent(Picky, name="picky", placement=placement)
    stock = system.get_resource("stock")
    for sku in SKUS:
        stock.restock(sku, 1)
    wait_until(lambda: items(system, "picky-done") == ["a", "b", "c", "d"], "the good", 180)
    subs.wait_caught_up()
    assert items(system, "picky") == SKUS  # bad's first effect once, for 3 deliveries
    return subs


@pytest.mark.timeout(240)
def test_a_poison_event_is_set_aside_and_redelivered_once_fixed(
    any_system: System, capfd: pytest.CaptureFixture[str]
) -> None:
    subs = poisoned(any_system)
    (letter,) = subs.dead_letters("picky")
    assert (letter.record.event_id, letter.record.seq, letter.attempts) == ("stock:3:0", 3, 3)
    assert (letter.error_type, letter.error) == ("ValueError", "the gate refuses bad")
    (row,) = [r for r in subs.status() if r["resource"] == "stock"]
    assert (row["checkpoint"], row["dead_letters"], row["error"]) == (5, 1, None)
    assert main(["status", "--namespace", any_system.namespace]) == 0
    text = capfd.readouterr().out.splitlines()
    assert "    subscriber picky on stock: checkpoint 5 of 5, lag 0, dead letters 1" in text
    assert not subs.redeliver("picky", "stock:3:0")  # still refused: counted, kept
    (again,) = subs.dead_letters("picky")
    assert (again.attempts, again.error) == (4, "the gate refuses bad")
    any_system.get_resource("gate").allow("bad")
    assert subs.redeliver("picky", "stock:3:0")
    assert items(any_system, "picky-done") == ["a", "b", "c", "d", "bad"]
    assert items(any_system, "picky") == SKUS  # the effect made before: not applied again
    assert subs.dead_letters("picky") == []
    with pytest.raises(UnknownDeadLetterError):
        subs.redeliver("picky", "stock:3:0")
    assert main(["status", "--namespace", any_system.namespace, "--json"]) == 0
    (found,) = json.loads(capfd.readouterr().out)["systems"]
    (part,) = [p for p in found["subscribers"]["partitions"] if p["resource"] == "stock"]
    assert part["dead_letters"] == 0


@pytest.mark.timeout(300)
def test_a_pooled_subscriber_s_poison_event_is_set_aside_and_redelivered(system: System) -> None:
    subs = poisoned(system, placement="pooled")
    assert [d.record.event_id for d in subs.dead_letters("picky")] == ["stock:3:0"]
    system.get_resource("gate").allow("bad")
    assert subs.redeliver("picky", "stock:3:0")
    assert items(system, "picky-done") == ["a", "b", "c", "d", "bad"]
    assert (items(system, "picky"), subs.dead_letters("picky")) == (SKUS, [])


@pytest.mark.timeout(180)
def test_forged_dead_letter_calls_are_typed_errors(system: System) -> None:
    Subscriptions.start(system, POLICY)
    system.resource(Stock, name="stock")
    dispatcher = ray.get_actor("events", namespace=system.namespace)
    with pytest.raises(UnknownDeadLetterError):
        ray.get(dispatcher.redeliver.remote("picky", "stock:1:0"))
    with pytest.raises(Exception) as caught:
        ray.get(dispatcher.redeliver.remote("picky", {"not": "an id"}))
    assert "InvalidArgumentError" in type(caught.value).__name__ + str(caught.value)
    assert ray.get(dispatcher.dead_letters.remote("nobody")) == []
