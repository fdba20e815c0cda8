"""Dead letters on a real Ray, on both storage backends: an always-failing handler among
good events; every good event handled once and in order, the bad one set aside with its
error, shown by ``agentcast status``; redelivered once its condition is fixed, its effects
applied once; the dispatcher killed between failures still buries the event after exactly
``max_delivery_attempts`` runs of the handler."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import ray
from backends import any_system as any_system
from events_for_tests import Doomed, Gate, Picky, Sink, Stock
from waiting import wait_until

from actors import Subscriptions, System
from actors._cli.main import main
from actors._events.checkpoints import CheckpointStore
from actors.lowlevel import DeadLetter
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


def stored_failures(system: System) -> dict[tuple[str, str], tuple[int, int]]:
    """The dispatcher's stored failure counts: partition -> (event, failures in a row)."""
    store = CheckpointStore(system.root)
    try:
        return store.failures()
    finally:
        store.close()


def letters(subs: Subscriptions, group: str) -> list[DeadLetter]:
    """The group's dead letters; none while the dispatcher restarts."""
    try:
        return subs.dead_letters(group)
    except ray.exceptions.ActorUnavailableError:
        return []


@pytest.mark.timeout(240)
def test_a_dispatcher_killed_between_failures_buries_after_exactly_the_limit(
    any_system: System,
) -> None:
    # A 2 s backoff between attempts: the kill lands after a failure is stored and
    # before the next attempt.
    slow = timedelta(seconds=2)
    subs = Subscriptions.start(
        any_system, EventsPolicy(max_delivery_attempts=3, retry_backoff=slow, max_backoff=slow)
    )
    for cls, name in ((Stock, "stock"), (Sink, "sink")):
        any_system.resource(cls, name=name)
    any_system.agent(Doomed, name="doomed")
    any_system.get_resource("stock").restock("bad", 1)
    dispatcher = ray.get_actor("events", namespace=any_system.namespace)
    for failures in (1, 2):
        wait_until(
            lambda n=failures: stored_failures(any_system) == {("doomed", "stock"): (1, n)},
            f"failure {failures} stored", 120,
        )  # fmt: skip
        ray.kill(dispatcher, no_restart=False)
    (letter,) = wait_until(lambda: letters(subs, "doomed"), "the letter", 120)
    assert (letter.record.seq, letter.attempts, letter.error) == (1, 3, "bad is poison")
    assert items(any_system, "runs") == ["bad"] * 3
    assert stored_failures(any_system) == {}  # deleted with the letter
