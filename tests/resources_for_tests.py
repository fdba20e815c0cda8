"""Resources and agents shared by the tests (importable by Ray workers by reference)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from actors import Resource, read, write


class OutOfStockError(Exception):
    def __init__(self, sku: str, qty: int) -> None:
        super().__init__(sku, qty)
        self.sku = sku
        self.qty = qty


class Unpicklable(Exception):
    def __init__(self, lock: Any) -> None:
        super().__init__("holds a lock")
        self.lock = lock

    def __reduce__(self) -> Any:
        raise TypeError("cannot pickle")


class Item(BaseModel):
    sku: str
    qty: int


class Inventory(Resource):
    @write
    def restock(self, state: dict[str, int], sku: str, qty: int) -> int:
        state[sku] = state.get(sku, 0) + qty
        return state[sku]

    @write
    def reserve(self, state: dict[str, int], sku: str, qty: int) -> int:
        if state.get(sku, 0) < qty:
            raise OutOfStockError(sku, qty)
        state[sku] -= qty
        return state[sku]

    @write
    def add_item(self, state: dict[str, int], item: Item) -> int:
        state[item.sku] = state.get(item.sku, 0) + item.qty
        return state[item.sku]

    @write
    def half_then_fail(self, state: dict[str, int], sku: str) -> None:
        state[sku] = -999
        state["other"] = 1
        raise ValueError("failed after mutating")

    @write
    def unpicklable_failure(self, state: dict[str, int]) -> None:
        import threading

        raise Unpicklable(threading.Lock())

    @write
    def store_object(self, state: dict[str, Any], key: str) -> None:
        state[key] = object()

    @read
    def available(self, state: dict[str, int], sku: str) -> int:
        return state.get(sku, 0)

    @read
    def everything(self, state: dict[str, int]) -> dict[str, int]:
        return dict(state)


class Tags(Resource):
    """Operations whose keyword arguments are named like the handles' own parameters."""

    @write
    def tag(this, state: dict[str, Any], self: str, op: str, write: str) -> list[str]:
        state["tag"] = [self, op, write]
        return list(state["tag"])

    @read
    def echo(this, state: dict[str, Any], self: str, op: str, write: str) -> list[str]:
        return [self, op, write]


class Ledger(Resource):
    """Nested state: accounts holding lists of entries, mutated in place."""

    def initial_state(self) -> dict[str, Any]:
        return {"accounts": {}}

    @write
    def post(self, state: dict[str, Any], account: str, amount: int) -> int:
        entries = state["accounts"].setdefault(account, [])
        entries.append(amount)
        if sum(entries) < 0:
            raise ValueError("overdrawn")
        return sum(entries)


# -- agents -----------------------------------------------------------------------------

from actors import Agent, Write, handler  # noqa: E402


class WriteBurst(BaseModel):
    resource: str
    prefix: str
    count: int
    explicit_keys: bool = True


class Acked(BaseModel):
    keys: list[str]
    versions: list[int]


class Writer(Agent):
    """Restocks one unit at a time and reports what was acknowledged."""

    @handler
    async def burst(self, burst: WriteBurst) -> Acked:
        handle = self.resource(burst.resource)
        keys, versions = [], []
        for i in range(burst.count):
            key = f"{burst.prefix}:{i}" if burst.explicit_keys else None
            result = await handle.write(Write(op="restock", args=("A", 1), key=key))
            result.unwrap()
            keys.append(key or "")
            versions.append(result.version)
        return Acked(keys=keys, versions=versions)


class Order(BaseModel):
    sku: str
    qty: int


class Placed(BaseModel):
    left: int


class Buyer(Agent):
    @handler
    async def place(self, order: Order) -> Placed:
        return Placed(left=await self.resource("inventory").reserve(order.sku, order.qty))


class Liar(Agent):
    """Returns something that is not its declared output."""

    @handler
    async def place(self, order: Order) -> Placed:
        return {"wrong": True}  # type: ignore[return-value]


# -- the same calls through both faces of a handle ----------------------------------------

# Each probe is one call on a handle to an ``Inventory`` with ``max_payload_bytes=1024``:
# a value on the blocking face, an awaitable on the async one.
FACE_PROBES: dict[str, Callable[[Any], Any]] = {
    "unknown op": lambda h: h.nope(1),
    "read of an unknown op": lambda h: h.read("nope"),
    "read of a write op": lambda h: h.read("restock", "A", 1),
    "not plain data": lambda h: h.restock({1, 2}, 1),
    "too large": lambda h: h.restock("A" * 5000, 1),
    "a write that raises": lambda h: h.reserve("A", 99),
    "a write of an unknown op": lambda h: h.write("nope"),
    "bad arguments to a read": lambda h: h.read("available", "A", "B"),
}


def outcome(value: Any) -> list[str]:
    """``[type, message]`` of a probe's error (raised, or carried by a ``WriteResult``),
    or ``["ok", repr(value)]``."""
    error = value if isinstance(value, BaseException) else getattr(value, "error", None)
    if error is None:
        return ["ok", repr(value)]
    return [type(error).__name__, str(error)]


def probe_blocking(handle: Any) -> dict[str, list[str]]:
    found = {}
    for name, probe in FACE_PROBES.items():
        try:
            found[name] = outcome(probe(handle))
        except Exception as error:
            found[name] = outcome(error)
    return found


async def probe_async(handle: Any) -> dict[str, list[str]]:
    found = {}
    for name, probe in FACE_PROBES.items():
        try:
            found[name] = outcome(await probe(handle))
        except Exception as error:
            found[name] = outcome(error)
    return found


class Probe(BaseModel):
    resource: str


class ProbeReport(BaseModel):
    outcomes: dict[str, list[str]]


class FaceProber(Agent):
    """Runs ``FACE_PROBES`` through its own (async) handle."""

    @handler
    async def probe(self, probe: Probe) -> ProbeReport:
        return ProbeReport(outcomes=await probe_async(self.resource(probe.resource)))


# -- resources for the trust-boundary tests ------------------------------------------------


class Store(Resource):
    """Keeps whatever it is given, as given: a value's type must survive a restart."""

    @write
    def put(self, state: dict[str, Any], key: str, value: Any) -> None:
        state[key] = value

    @write
    def put_pair(self, state: dict[str, Any], key: str, first: Any, second: Any) -> None:
        state[key] = (first, second)

    @write
    def put_item(self, state: dict[str, Any], key: str, item: Item) -> None:
        state[key] = item

    @write
    def put_in(self, state: dict[str, Any], key: str, inner: str, value: Any) -> None:
        state.setdefault(key, {})[inner] = value

    @write
    def drop(self, state: dict[str, Any], key: str) -> None:
        state.pop(key, None)

    @write
    def scale(self, state: dict[str, Any], key: str, factor: float) -> float:
        state[key] = state.get(key, 1.0) * factor
        return float(state[key])

    @read
    def get(self, state: dict[str, Any], key: str) -> Any:
        return state.get(key)


class Stalling(Resource):
    """A write that blocks the actor's event loop: the actor is alive but answers nothing."""

    @write
    def stall(self, state: dict[str, Any], seconds: float) -> None:
        import time

        time.sleep(seconds)

    @read
    def ping(self, state: dict[str, Any]) -> str:
        return "pong"


class Whoami(BaseModel):
    pass


class Capability(BaseModel):
    token: str
    epoch: int


class Leaker(Agent):
    """Hands out its own writer token: what a buggy agent could leak (tests only)."""

    @handler
    async def leak(self, ask: Whoami) -> Capability:
        return Capability(token=self._runtime.token, epoch=self._runtime.epoch)
