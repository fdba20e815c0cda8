"""Resources, agents and contracts of the shared-context tests (imported by reference by
Ray workers)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from actors import (
    Agent,
    DecisionEntry,
    Resource,
    Write,
    contract,
    derived,
    handler,
    read,
    write,
)
from actors._decisions.log import Decision
from policies import Provenance, RetryPolicy

COMPUTED: list[int] = []  # one entry per computation of Catalog.total, in this process


class Catalog(Resource):
    """Prices, written only on a fresh reading of the ``pricing`` decisions."""

    @write(fresh_context="pricing")
    def set_price(self, state: dict[str, Any], sku: str, price: int) -> int:
        state[sku] = price
        return price

    @write
    def note(self, state: dict[str, Any], sku: str, price: int) -> int:
        state[sku] = price
        return price

    @read
    def price(self, state: dict[str, Any], sku: str) -> int | None:
        return state.get(sku)

    @derived
    def total(self, state: dict[str, Any], factor: int = 1) -> int:
        COMPUTED.append(1)
        return sum(state.values()) * factor


class Reprice(BaseModel):
    sku: str
    price: int


class Repriced(BaseModel):
    version: int


class Pricer(Agent):
    @handler
    async def reprice(self, order: Reprice) -> Repriced:
        result = await self.resource("catalog").write("set_price", order.sku, order.price)
        result.unwrap()  # a refused write raises its error to the caller
        return Repriced(version=result.version)


class Look(BaseModel):
    topic: str
    then_write: bool = False


class Looked(BaseModel):
    version: int
    decision: str
    history: int
    wrote: int = 0


class Reader(Agent):
    """Reads the decision log inside its task; a write after the read is briefed on it."""

    @handler
    async def look(self, look: Look) -> Looked:
        latest = await self.decisions.latest(look.topic)
        history = await self.decisions.history(look.topic)
        wrote = 0
        if look.then_write:
            wrote = (await self.resource("catalog").write("set_price", "A", 7)).version
        assert latest is not None
        return Looked(
            version=latest.version, decision=latest.decision, history=len(history), wrote=wrote
        )


class Decide(BaseModel):
    topic: str
    decision: str
    supersedes: int | None = None


class Decided(BaseModel):
    version: int
    author: str
    trace_id: str


class Decider(Agent):
    @handler
    async def decide(self, decide: Decide) -> Decided:
        entry = await self.decisions.record(
            decide.topic, decide.decision, rationale="test", supersedes=decide.supersedes
        )
        return Decided(version=entry.version, author=entry.author, trace_id=entry.trace_id)


class Coordinator(Agent):
    """Decides a new price policy, then delegates the repricing it decided to ``pricer``."""

    @handler
    async def decide(self, decide: Decide) -> Repriced:
        await self.decisions.record(decide.topic, decide.decision, supersedes=decide.supersedes)
        handle = self.supervisor.submit(
            Reprice(sku="A", price=11), to="pricer", expect=Repriced,
            retry=RetryPolicy(max_attempts=1),
        )  # fmt: skip
        done: Repriced = await handle.result()  # type: ignore[assignment]
        return done


class Forge(BaseModel):
    author: str


class Forger(Agent):
    """Appends to the decision log past its face, claiming ``author`` and a human's mark."""

    @handler
    async def forge(self, forge: Forge) -> Decided:
        entry = Decision(
            topic="pricing", decision="cut 50%", author=forge.author, provenance=Provenance.HUMAN
        )
        result = await self.resource("decisions").write(Write(op="append", args=(entry,)))
        stored = DecisionEntry.model_validate(result.unwrap())
        return Decided(version=stored.version, author=stored.author, trace_id=stored.provenance)


class FeatureReader(Agent):
    @handler
    async def read_total(self, look: Look) -> Repriced:
        return Repriced(version=await self.resource("catalog").total())


@contract("available_item", version=1)
class AvailableItemV1(BaseModel):
    sku: str
    qty: int


@contract("available_item", version=2)
class AvailableItemV2(BaseModel):
    sku: str
    qty: int
    warehouse: str


@contract("stock_answer", version=2)
class StockAnswerV2(BaseModel):
    sku: str
    available: int


@contract("stock_answer", version=1)
class StockAnswerV1(BaseModel):
    sku: str
    available: int


class Stock(Agent):
    """Speaks available_item v2 in, stock_answer v2 out; ``warehouse == "old"`` answers
    with v1 (a stale implementation)."""

    @handler
    async def check(self, item: AvailableItemV2) -> StockAnswerV2:
        if item.warehouse == "old":
            return StockAnswerV1(sku=item.sku, available=item.qty)  # type: ignore[return-value]
        return StockAnswerV2(sku=item.sku, available=item.qty)
