"""The trust boundary on a real local Ray: calls sent straight to a resource actor, a
silent actor, a zombie incarnation, and thousands of generated bad calls."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import ray
from resources_for_tests import Inventory, Leaker, OutOfStockError, Stalling, Whoami
from waiting import wait_until

from actors import Reconnect, ResourceHandle, System, Write
from actors._resource.calls import WriteCall, pack_calls, unpack_results
from actors._system import _DriverKeys
from actors.lowlevel import ResourceHost
from policies import ResourcePolicy, WriteAuthority
from runtime import (
    AgentcastError,
    FencedError,
    ResourceUnavailableError,
    UnauthorizedWriterError,
    encode,
)

pytestmark = [pytest.mark.ray, pytest.mark.timeout(300)]


def forged(
    writer: str, epoch: int, token: str, *, op: str = "restock", args: tuple[Any, ...] = ("A", 1)
) -> WriteCall:
    return WriteCall(
        op, encode([list(args), {}]), writer, epoch, f"forged-{random.random()}", "f" * 32,
        None, token,
    )  # fmt: skip


def submit(actor: Any, calls: list[WriteCall]) -> list[Any]:
    return unpack_results(ray.get(actor.submit.remote(pack_calls(calls)), timeout=60))


def test_forged_direct_calls_never_commit_and_a_killed_token_is_refused(system: System) -> None:
    inventory = system.resource(Inventory, name="orders-inv", writers=["orders", "system"])
    inventory.restock("A", 5)
    actor = ray.get_actor("resource:orders-inv", namespace=system.namespace)
    claims = [
        forged(writer, epoch, token)
        for writer in ("orders", "system")
        for epoch in range(1, 6)
        for token in ("", "not-a-token", "x" * 43)
    ]
    results = submit(actor, claims)
    assert [type(r.error) for r in results] == [UnauthorizedWriterError] * len(claims)
    leaked = system.agent(Leaker, name="orders").ask(Whoami(), timeout=60)
    ok = submit(actor, [forged("system", 99, leaked.token)])[0]
    assert ok.error is None  # the token alone is the identity ...
    assert list(system.log("orders-inv").records())[-1].writer == "orders"  # ... not the claim
    system.kill("orders")
    after_kill = [forged("orders", e, leaked.token) for e in (leaked.epoch, leaked.epoch + 1, 9)]
    assert [type(r.error) for r in submit(actor, after_kill)] == [FencedError] * 3
    assert inventory.read("available", "A").value == 6
    reasons = [r.reason for r in system.log("orders-inv").rejections()]
    assert reasons == ["unauthenticated"] * len(claims) + ["fenced_writer"] * 3


def test_a_silent_actor_is_given_up_at_the_reconnect_deadline(system: System) -> None:
    system.resource(Stalling, name="stall")
    actor = ray.get_actor("resource:stall", namespace=system.namespace)
    handle = ResourceHandle(
        actor, "stall", system._driver_identity, _DriverKeys(system.trace_id),
        reconnect=Reconnect(give_up_after=timedelta(seconds=2)),
    )  # fmt: skip
    handle.operations()
    for attempt in (lambda: handle.stall(30), lambda: handle.ping()):
        started = time.monotonic()
        with pytest.raises(ResourceUnavailableError):
            attempt()
        assert time.monotonic() - started < 10
    ray.kill(actor, no_restart=True)


def test_a_fenced_zombie_refuses_reads_and_exits(system: System) -> None:
    old = system.resource(Inventory, name="inv")
    old.restock("A", 1)
    newer = ray.remote(ResourceHost).options(name="resource-newer", namespace=system.namespace)
    newer_actor = newer.remote(
        Inventory, "inv", str(system.root), ResourcePolicy(), WriteAuthority()
    )
    ray.get(newer_actor.status.remote())
    with pytest.raises(FencedError):
        old.read("available", "A")

    zombie = ray.get_actor("resource:inv", namespace=system.namespace)

    def gone() -> bool:
        try:
            ray.get(zombie.status.remote(), timeout=30)
        except ray.exceptions.ActorDiedError:
            return True
        except ray.exceptions.ActorUnavailableError:
            return False  # on its way out: Ray has not declared it dead yet
        return False

    wait_until(gone, "the zombie exits (and is not restarted)")
    assert ray.get(newer_actor.status.remote())["version"] == 1
    ray.kill(newer_actor)


# -- thousands of bad calls -------------------------------------------------------------------

NASTY: list[Any] = [
    0, -1, 2**63, 1.5, math.nan, math.inf, -math.inf, True, None, "", "A", b"bytes", [], {},
    [1, [2]], {"k": 1}, {1: "x"}, ["A"], "x" * 3000,
]  # fmt: skip


def bad_writes(rng: random.Random) -> list[Write]:
    """Writes every one of which the resource must refuse (or fail as the op's own)."""
    sku_bad = [v for v in NASTY if not isinstance(v, str)]
    qty_bad = [v for v in NASTY if type(v) is not int]
    kinds: list[Callable[[], Write]] = [
        lambda: Write(op="restock", args=(rng.choice(sku_bad), 1)),
        lambda: Write(op="restock", args=("A", rng.choice(qty_bad))),
        lambda: Write(op="restock", args=("A",)),
        lambda: Write(op="restock", args=("A", 1, 2)),
        lambda: Write(op="restock", kwargs={"self": 1, "sku": "A", "qty": 1}),
        lambda: Write(op="restock", kwargs={"state": {}, "sku": "A", "qty": 1}),
        lambda: Write(op="restock", args=("A", 1), kwargs={"nope": 1}),
        lambda: Write(op=rng.choice(["nope", "available", "", "__init__", "_admit"]), args=()),
        lambda: Write(op=rng.choice([None, 1, ["restock"], b"restock"]), args=("A", 1)),  # type: ignore[arg-type]
        lambda: Write(op="restock", args=("A", 1), key=rng.choice([["k"], 5, {"k": 1}])),  # type: ignore[arg-type]
        lambda: Write(op="restock", args=("A", 1), expected_version=rng.choice([7, "1", 1.5])),  # type: ignore[arg-type]
        lambda: Write(op="reserve", args=("A", rng.randint(6, 10**6))),  # domain error
        lambda: Write(op="restock", args=("A", 1), key="seeded"),  # a key of other content
        lambda: Write(op="store_object", args=("k",)),
        lambda: Write(op="half_then_fail", args=("A",)),
        lambda: Write(op="unpicklable_failure", args=()),
    ]
    return [rng.choice(kinds)() for _ in range(1200)]


CALLER_SIDE: list[Callable[[Any], Any]] = [
    lambda h: h.restock({1, 2}, 1),
    lambda h: h.restock({(1, 2): 1}, 1),
    lambda h: h.restock(object(), 1),
    lambda h: h.restock(memoryview(b"x"), 1),
    lambda h: h.restock("A" * 70_000, 1),
    lambda h: h.restock(_deep(200), 1),
    lambda h: h.read(["available"], "A"),
    lambda h: h.read("available", "A", "B"),
    lambda h: h.read("available", self="A"),
    lambda h: h.read("restock", "A", 1),
    lambda h: h.read("nope"),
    lambda h: h.nope(1),
    lambda h: h.write_many([("restock", "A", 1)]),
    lambda h: h.write(Write(op="restock", args="AB")),
    lambda h: h.fence_writer("system", "x"),
    lambda h: h.fence_writer(None, 1),
    lambda h: h.fence_writer("system", -5),
]


def _deep(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def direct_garbage(rng: random.Random) -> list[tuple[str, tuple[Any, ...]]]:
    """Calls straight to the actor's methods, as no handle would make them."""
    blobs = [
        b"", b"\xc1", b"\x92\x91", encode({"a": 1}), encode([[1, 2]]), encode([None]),
        encode([["restock", "notbytes", "w", 1, "k", "t", None, ""]]), "text", None, 7,
    ]  # fmt: skip
    reads = [
        (["x"], encode([[], {}])), ("available", b"\xc1"), ("available", "x"),
        ("available", encode([["A"], {1: 2}])), (None, None), ("everything", encode([[1], {}])),
    ]  # fmt: skip
    fences = [("system", "x"), ("system", True), (None, 1), ("", 0), ("system", -1), (["w"], 1)]
    calls: list[tuple[str, tuple[Any, ...]]] = []
    for _ in range(300):
        kind = rng.randrange(3)
        if kind == 0:
            calls.append(("submit", (rng.choice(blobs),)))
        elif kind == 1:
            calls.append(("read", rng.choice(reads)))
        else:
            calls.append(("fence_writer", rng.choice(fences)))
    return calls


def _typed(outcome: BaseException | None) -> bool:
    """An agentcast error, or the op's own domain error (``reserve``, ``half_then_fail``)."""
    if isinstance(outcome, ValueError):
        return str(outcome) == "failed after mutating"
    return isinstance(outcome, (AgentcastError, OutOfStockError))


def test_thousands_of_bad_calls_change_nothing_and_get_typed_errors(system: System) -> None:
    rng = random.Random(8)
    inventory = system.resource(
        Inventory, name="inventory", writers=["system", "orders"],
        policy=ResourcePolicy(max_payload_bytes=65_536),
    )  # fmt: skip
    inventory.write(Write(op="restock", args=("A", 5), key="seeded"))
    actor = ray.get_actor("resource:inventory", namespace=system.namespace)
    before = inventory.read("everything")
    outcomes: list[tuple[str, BaseException | None]] = []
    # 1. forged calls straight to the actor (600)
    claims = [forged(rng.choice(["orders", "system", "x"]), rng.randint(0, 9),
                     rng.choice(["", "forged", "y" * 43])) for _ in range(600)]  # fmt: skip
    for start in range(0, 600, 100):
        batch = claims[start : start + 100]
        outcomes += [(repr(c), r.error) for c, r in zip(batch, submit(actor, batch), strict=True)]
    # 2. bad writes through the handle, batched (1,200)
    writes = bad_writes(rng)
    for start in range(0, len(writes), 100):
        batch = writes[start : start + 100]
        results = inventory.write_many(batch)
        outcomes += [(repr(w), r.error) for w, r in zip(batch, results, strict=True)]
    # 3. bad calls refused on the caller's side (200)
    for _ in range(200):
        index = rng.randrange(len(CALLER_SIDE))
        try:
            CALLER_SIDE[index](inventory)
            outcomes.append((f"caller side {index}", None))
        except Exception as error:
            outcomes.append((f"caller side {index}", error))
    # 4. garbage straight to the actor's methods (300)
    garbage = direct_garbage(rng)
    refs = [getattr(actor, method).remote(*args) for method, args in garbage]
    for call, ref in zip(garbage, refs, strict=True):
        try:
            answer = ray.get(ref, timeout=60)
            errors = [r.error for r in unpack_results(answer)] if call[0] == "submit" else [None]
            outcomes += [(repr(call), error) for error in errors]
        except ray.exceptions.RayTaskError as error:
            cause = error.cause if isinstance(error.cause, AgentcastError) else error
            outcomes.append((repr(call), cause))
    assert len(outcomes) >= 2_000
    untyped = [f"{what[:150]} -> {o!r}"[:300] for what, o in outcomes if not _typed(o)]
    assert sorted(set(untyped)) == []
    after = inventory.read("everything")
    assert (after.value, after.version) == (before.value, before.version) == ({"A": 5}, 1)
    good = inventory.write(Write(op="restock", args=("A", 1)))
    assert (good.error, good.version, good.value) == (None, 2, 6)


# -- clear errors for the careless ------------------------------------------------------------


def test_a_second_system_on_other_storage_is_refused(system: System, tmp_path: Any) -> None:
    from runtime import ConfigurationError

    with pytest.raises(ConfigurationError):
        System.start(tmp_path / "elsewhere", namespace="other")
    with System.start(system.root, namespace=system.namespace) as same:  # the same storage
        assert same.root == system.root


def test_the_log_of_an_unknown_resource_raises_and_creates_no_file(system: System) -> None:
    from runtime import ConfigurationError

    with pytest.raises(ConfigurationError):
        system.log("never-declared")
    assert not (system.root / "resources" / "never-declared.sqlite").exists()


def test_a_local_module_shadowing_a_package_is_one_clear_import_error(tmp_path: Any) -> None:
    import subprocess
    import sys
    from pathlib import Path

    (tmp_path / "policies.py").write_text("LIMIT = 1\n")
    repo = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, "-c", "import actors"], cwd=tmp_path, capture_output=True, text=True,
        env={"PYTHONPATH": f"{tmp_path}:{repo}", "PATH": "/usr/bin:/bin"}, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last == (
        f"ImportError: {tmp_path / 'policies.py'} shadows agentcast's 'policies' package "
        "(it comes first on sys.path): rename that file or folder"
    )


def test_a_malformed_write_among_concurrent_callers_fails_no_one_else(system: System) -> None:
    import threading

    inventory = system.resource(Inventory, name="inv")
    failed: list[Any] = []

    def good(i: int) -> None:
        for j in range(3):
            result = inventory.write(Write(op="restock", args=(f"s{i}", 1), key=f"g{i}.{j}"))
            if result.error is not None:
                failed.append(result.error)

    def bad() -> None:
        for _ in range(20):
            result = inventory.write(Write(op=None, args=("A", 1)))  # type: ignore[arg-type]
            failed.append(None if result.error is None else "refused")

    threads = [threading.Thread(target=good, args=(i,)) for i in range(24)]
    threads.append(threading.Thread(target=bad))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert failed == ["refused"] * 20  # the 72 good writes all committed
    assert inventory.status()["version"] == 72
