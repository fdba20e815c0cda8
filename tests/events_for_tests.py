"""Resources and agents of the events tests: a stock that emits, stages that subscribe."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from pydantic import BaseModel

from actors import Agent, Resource, Write, read, subscribe, write


class Restocked(BaseModel):
    sku: str
    qty: int
    level: int


class SoldOut(BaseModel):
    sku: str


class Unlisted(BaseModel):
    note: str


class Stock(Resource):
    """Emits ``Restocked`` and ``SoldOut``; declares them, so anything else is refused."""

    emits = (Restocked, SoldOut)

    @write
    def restock(self, state: dict[str, Any], sku: str, qty: int) -> int:
        state[sku] = state.get(sku, 0) + qty
        self.emit(Restocked(sku=sku, qty=qty, level=state[sku]))
        return int(state[sku])

    @write
    def sell(self, state: dict[str, Any], sku: str, qty: int) -> int:
        if state.get(sku, 0) < qty:
            raise ValueError(f"only {state.get(sku, 0)} of {sku}")
        state[sku] -= qty
        if state[sku] == 0:
            self.emit(SoldOut(sku=sku))
        return int(state[sku])

    @write
    def restock_twice(self, state: dict[str, Any], sku: str, qty: int) -> int:
        for _ in range(2):
            state[sku] = state.get(sku, 0) + qty
            self.emit(Restocked(sku=sku, qty=qty, level=state[sku]))
        return int(state[sku])

    @write
    def restock_then_fail(self, state: dict[str, Any], sku: str, qty: int) -> int:
        state[sku] = state.get(sku, 0) + qty
        self.emit(Restocked(sku=sku, qty=qty, level=state[sku]))
        raise ValueError("changed my mind")

    @write
    def emit_unlisted(self, state: dict[str, Any]) -> None:
        state["x"] = 1
        self.emit(Unlisted(note="not declared"))

    @write
    def emit_plain(self, state: dict[str, Any]) -> None:
        state["x"] = 1
        self.emit({"sku": "A"})  # type: ignore[arg-type]

    @write
    def emit_huge(self, state: dict[str, Any], size: int) -> None:
        state["x"] = 1
        self.emit(Restocked(sku="A" * size, qty=1, level=1))


class Open(Resource):
    """Declares no ``emits``: any pydantic event is accepted."""

    @write
    def note(self, state: dict[str, Any], text: str) -> int:
        state["n"] = state.get("n", 0) + 1
        self.emit(Unlisted(note=text))
        return int(state["n"])


class Sink(Resource):
    """Where handlers record what they handled, per group, in order."""

    @write
    def append(self, state: dict[str, Any], group: str, item: str) -> int:
        state.setdefault(group, []).append(item)
        return len(state[group])


class Gate(Resource):
    """The skus a ``Picky`` subscriber refuses (the condition an operator fixes)."""

    @write
    def refuse(self, state: dict[str, Any], sku: str) -> None:
        state[sku] = True

    @write
    def allow(self, state: dict[str, Any], sku: str) -> None:
        state.pop(sku, None)

    @read
    def refused(self, state: dict[str, Any], sku: str) -> bool:
        return sku in state


class Picky(Agent):
    """Notes each sku under its name (an effect made before it may fail), then raises
    while the gate refuses the sku, else records it under ``<name>-done``."""

    @subscribe(Restocked)
    async def on_restock(self, event: Restocked) -> None:
        sink = self.resource("sink")
        await sink.append(self.name, event.sku)
        if (await self.resource("gate").read("refused", event.sku)).value:
            raise ValueError(f"the gate refuses {event.sku}")
        await sink.append(f"{self.name}-done", event.sku)


class Doomed(Agent):
    """Notes every run of its handler under ``runs`` (a fresh idempotency key each time,
    so no run is deduplicated), then raises for the sku ``bad``."""

    @subscribe(Restocked)
    async def on_restock(self, event: Restocked) -> None:
        run = Write(op="append", args=["runs", event.sku], key=uuid.uuid4().hex)
        await self.resource("sink").write(run)
        if event.sku == "bad":
            raise ValueError("bad is poison")


class Recorder(Agent):
    """Appends each restocked sku to the sink under its own name: a write whose key the
    runtime derives from the event id, so a redelivery does not append twice."""

    @subscribe(Restocked)
    async def on_restock(self, event: Restocked) -> None:
        await self.resource("sink").append(self.name, event.sku)


class SlowRecorder(Recorder):
    """Takes its time per event, so that a kill lands mid-stream."""

    @subscribe(Restocked)
    async def on_restock(self, event: Restocked) -> None:
        await asyncio.sleep(0.02)
        await self.resource("sink").append(self.name, event.sku)


class Plodder(Agent):
    """Notes every run of its handler under ``runs`` (a fresh key each time, so no run is
    deduplicated), then takes 0.4 s: a batch of a few events outlasts a short
    ``delivery_timeout``."""

    @subscribe(Restocked)
    async def on_restock(self, event: Restocked) -> None:
        run = Write(op="append", args=["runs", event.sku], key=uuid.uuid4().hex)
        await self.resource("sink").write(run)
        await asyncio.sleep(0.4)
        await self.resource("sink").append(self.name, event.sku)
