"""Agents on a real local Ray: typed handlers, named replicas, typed failures."""

from __future__ import annotations

import pytest
import ray
from pydantic import BaseModel
from resources_for_tests import Buyer, Inventory, Liar, Order, Placed

from actors import Agent, System, handler
from runtime import ConfigurationError, HandlerOutputError, UnknownHandlerError

pytestmark = pytest.mark.ray


class Unrelated(BaseModel):
    x: int


def test_replicas_are_named_actors_and_handlers_are_typed(system: System) -> None:
    system.resource(Inventory, name="inventory").restock("A", 10)
    buyers = system.agent(Buyer, name="buyers", replicas=3)
    # Replica i is the named actor agent:buyers:i (get_actor raises for an unknown name).
    named = [ray.get_actor(f"agent:buyers:{i}", namespace=system.namespace) for i in range(3)]
    assert named == buyers.actors
    outputs = [buyers.ask(Order(sku="A", qty=1)) for _ in range(3)]
    assert all(isinstance(o, Placed) for o in outputs)
    assert sorted(o.left for o in outputs) == [7, 8, 9]


def test_bad_output_and_unknown_message_are_typed_failures(system: System) -> None:
    system.resource(Inventory, name="inventory")
    liar = system.agent(Liar, name="liar")
    with pytest.raises(HandlerOutputError) as error:
        liar.ask(Order(sku="A", qty=1))
    assert error.value.handler == "place"
    with pytest.raises(UnknownHandlerError):
        liar.ask(Unrelated(x=1))


class SyncHandler(Agent):
    @handler
    def place(self, order: Order) -> Placed:  # type: ignore[misc]
        return Placed(left=0)


class UntypedHandler(Agent):
    @handler
    async def place(self, order):  # type: ignore[no-untyped-def]
        return order


def test_bad_declarations_are_refused_before_anything_starts(system: System) -> None:
    with pytest.raises(ConfigurationError):
        system.agent(SyncHandler, name="sync")
    with pytest.raises(ConfigurationError):
        system.agent(UntypedHandler, name="untyped")
    with pytest.raises(ConfigurationError):
        system.agent(Buyer, name="bad name!")
    with pytest.raises(ConfigurationError):
        system.resource(int, name="x")  # type: ignore[arg-type]
