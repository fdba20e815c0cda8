"""Resources on a real local Ray: ordering, durability, idempotency, fencing, bad input."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
import ray
from resources_for_tests import (
    Acked,
    Buyer,
    FaceProber,
    Inventory,
    Order,
    OutOfStockError,
    Probe,
    WriteBurst,
    Writer,
    probe_blocking,
)

from actors import System, Write
from actors._resource.state_view import replay
from actors.lowlevel import ResourceHost
from policies import Durability, ResourcePolicy, WriteAuthority
from runtime import (
    ConflictError,
    FencedError,
    InvalidArgumentError,
    PayloadTooLargeError,
    UnauthorizedWriterError,
)

pytestmark = pytest.mark.ray


def replayed_state(system: System, name: str) -> dict[str, Any]:
    state: dict[str, Any] = {}
    replay(state, system.log(name).records())
    return state


def wait_until(condition: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_concurrent_agents_get_gap_free_versions(system: System) -> None:
    inventory = system.resource(Inventory, name="inv")
    writers = system.agent(Writer, name="writers", replicas=8)
    bursts = [WriteBurst(resource="inv", prefix=f"w{i}", count=25) for i in range(8)]
    acked: list[Acked] = ray.get([writers.call(b, replica=i) for i, b in enumerate(bursts)])
    versions = sorted(v for a in acked for v in a.versions)
    assert versions == list(range(1, 201))
    assert inventory.read("available", "A").value == 200
    assert [r.version for r in system.log("inv").records()] == versions


@pytest.mark.timeout(300)
@pytest.mark.parametrize("durability", [Durability.FULL, Durability.PROCESS])
def test_kill_storm_loses_nothing_and_applies_nothing_twice(
    system: System, durability: Durability
) -> None:
    # FULL: the kills land while replies wait for the fsync on its own thread
    # (``runtime.GroupSync``): writes committed but not yet acknowledged are answered
    # from the log when the writer retries their keys, never applied again.
    name = f"inv-{durability.value}"
    inventory = system.resource(Inventory, name=name, policy=ResourcePolicy(durability=durability))
    writers = system.agent(Writer, name="writers", replicas=4)
    refs = [writers.call(WriteBurst(resource=name, prefix=f"p{i}", count=60), replica=i)
            for i in range(4)]  # fmt: skip
    actor = ray.get_actor(f"resource:{name}", namespace=system.namespace)
    for kill in range(4):
        floor = 20 * (kill + 1)
        wait_until(lambda floor=floor: len(list(system.log(name).records())) >= floor)
        ray.kill(actor, no_restart=False)
    acked: list[Acked] = ray.get(refs)
    acked_keys = [k for a in acked for k in a.keys]
    records = list(system.log(name).records())
    logged_keys = [r.idem_key for r in records]
    assert sorted(logged_keys) == sorted(acked_keys)  # every ack once, nothing else
    assert len(set(logged_keys)) == len(logged_keys) == 240
    assert [r.version for r in records] == list(range(1, 241))
    assert len({r.incarnation for r in records}) >= 2
    assert inventory.read("available", "A").value == 240
    assert replayed_state(system, name) == {"A": 240}


def test_a_retried_write_after_restart_returns_the_stored_result(system: System) -> None:
    inventory = system.resource(Inventory, name="inv")
    first = inventory.write(Write(op="restock", args=("A", 7), key="order-42"))
    ray.kill(ray.get_actor("resource:inv", namespace=system.namespace), no_restart=False)
    again = inventory.write(Write(op="restock", args=("A", 7), key="order-42"))
    assert again.duplicate and not first.duplicate
    assert (again.value, again.version) == (first.value, first.version) == (7, 1)
    assert inventory.read("available", "A").value == 7


def test_conflicting_write_raises_conflict_with_current_version(system: System) -> None:
    inventory = system.resource(Inventory, name="inv")
    inventory.restock("A", 1)
    result = inventory.write(Write(op="restock", args=("A", 1), expected_version=0))
    with pytest.raises(ConflictError) as error:
        result.unwrap()
    assert error.value.current == 1
    assert inventory.read("available", "A").value == 1


def test_an_undeclared_writer_is_refused_and_logged(system: System) -> None:
    system.resource(Inventory, name="inventory", writers=["buyers", "system"])
    system.get_resource("inventory").restock("A", 5)
    intruders = system.agent(Buyer, name="intruder")
    with pytest.raises(UnauthorizedWriterError) as error:
        intruders.ask(Order(sku="A", qty=1))
    assert error.value.writer == "intruder"
    buyers = system.agent(Buyer, name="buyers")
    assert buyers.ask(Order(sku="A", qty=1)).left == 4
    rejections = system.log("inventory").rejections()
    assert [(r.writer, r.reason) for r in rejections] == [("intruder", "unauthorized")]


def test_a_zombie_incarnation_is_refused(system: System) -> None:
    old = system.resource(Inventory, name="inv")
    old.restock("A", 1)
    # A second incarnation on the same storage, e.g. after a partition: the old one is
    # still running but must not commit any more.
    newer = ray.remote(ResourceHost).options(name="resource-newer", namespace=system.namespace)
    newer_actor = newer.remote(
        Inventory, "inv", str(system.root), ResourcePolicy(), WriteAuthority()
    )
    ray.get(newer_actor.status.remote())
    with pytest.raises(FencedError):
        old.restock("A", 100)
    assert ray.get(newer_actor.read.remote("available", b"\x92\x91\xa1A\x80")).value == 1
    ray.kill(newer_actor)


def test_bad_input_never_reaches_the_applier(system: System) -> None:
    policy = ResourcePolicy(max_payload_bytes=1024)
    inventory = system.resource(Inventory, name="inv", policy=policy)
    inventory.restock("A", 2)
    with pytest.raises(InvalidArgumentError):
        inventory.restock(threading.Lock(), 1)
    with pytest.raises(PayloadTooLargeError):
        inventory.restock("A" * 5000, 1)
    with pytest.raises(OutOfStockError):
        inventory.reserve("A", 3)
    with pytest.raises(ValueError):
        inventory.half_then_fail("A")
    assert inventory.read("everything").value == {"A": 2}
    assert inventory.status()["version"] == 1


def test_errors_are_caught_by_their_own_class_through_agents(system: System) -> None:
    system.resource(Inventory, name="inventory")
    buyers = system.agent(Buyer, name="buyers")
    with pytest.raises(OutOfStockError) as error:
        buyers.ask(Order(sku="A", qty=1))
    assert (error.value.sku, error.value.qty) == ("A", 1)


def test_the_driver_and_an_agent_get_identical_outcomes_for_the_same_calls(
    system: System,
) -> None:
    policy = ResourcePolicy(max_payload_bytes=1024)
    inventory = system.resource(Inventory, name="inventory", policy=policy)
    from_agent = system.agent(FaceProber, name="prober").ask(Probe(resource="inventory"))
    from_driver = probe_blocking(inventory)
    assert from_driver == from_agent.outcomes
    assert from_driver["unknown op"] == [
        "UnknownOperationError",
        "inventory: no @write or @read method named 'nope'",
    ]


def test_write_many_is_one_call_with_a_version_per_write(system: System) -> None:
    inventory = system.resource(Inventory, name="inv")
    writes = [Write(op="restock", args=("A", 1)) for _ in range(100)]
    writes.insert(50, Write(op="reserve", args=("B", 1)))
    results = inventory.write_many(writes)
    assert isinstance(results[50].error, OutOfStockError)
    ok = [r.version for r in results if r.error is None]
    assert ok == list(range(1, 101))
    assert inventory.read("available", "A").value == 100


def test_reads_see_every_acknowledged_write(system: System) -> None:
    inventory = system.resource(Inventory, name="inv")
    for n in range(1, 51):
        acked = inventory.write("restock", "A", 1)
        seen = inventory.read("available", "A")
        # One writer: the read sees exactly the state its last acknowledged write left.
        assert (acked.version, seen.version, seen.value) == (n, n, n)


def test_storage_survives_a_new_system_on_the_same_folder(
    ray_session: None, tmp_path: Path
) -> None:
    with System.start(tmp_path, namespace="first") as first:
        first.resource(Inventory, name="inv").restock("A", 3)
    with System.start(tmp_path, namespace="second") as second:
        assert second.resource(Inventory, name="inv").read("available", "A").value == 3
