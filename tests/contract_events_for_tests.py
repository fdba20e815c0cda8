"""Versioned event types (two versions of ``order_placed``, both named ``Placed``, as
events are routed by class name), a resource that emits them and a subscriber of v2."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from actors import Agent, Resource, contract, subscribe, write


@contract("order_placed", version=1)
class Placed(BaseModel):
    sku: str


class V2:
    """The next version, under the same class name."""

    @contract("order_placed", version=2)
    class Placed(BaseModel):
        sku: str
        qty: int = 1


class Unversioned:
    """A class of the same name that speaks no contract."""

    class Placed(BaseModel):
        sku: str


class Orders(Resource):
    """Declares v2: an emitted v1, or an unversioned ``Placed``, fails its contract."""

    emits = (V2.Placed,)

    @write
    def place(self, state: dict[str, Any], sku: str) -> int:
        state[sku] = state.get(sku, 0) + 1
        self.emit(V2.Placed(sku=sku))
        return len(state)

    @write
    def place_v1(self, state: dict[str, Any], sku: str) -> None:
        state[sku] = 1
        self.emit(Placed(sku=sku))

    @write
    def place_unversioned(self, state: dict[str, Any], sku: str) -> None:
        state[sku] = 1
        self.emit(Unversioned.Placed(sku=sku))


class AnyOrders(Resource):
    """Declares no ``emits``: stores any version, each under the contract it speaks."""

    @write
    def place(self, state: dict[str, Any], sku: str, version: int) -> None:
        state[sku] = version
        self.emit(Placed(sku=sku) if version == 1 else V2.Placed(sku=sku, qty=version))


class Ledger(Resource):
    """Where the subscriber records the skus it handled."""

    @write
    def append(self, state: dict[str, Any], item: str) -> int:
        state.setdefault("items", []).append(item)
        return len(state["items"])


class PlacedV2Recorder(Agent):
    """Speaks ``order_placed`` v2 only."""

    @subscribe(V2.Placed)
    async def on_placed(self, event: V2.Placed) -> None:
        await self.resource("ledger").append(event.sku)
