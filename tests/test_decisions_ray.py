"""The decision log and fresh context on a real Ray: agents briefed at different versions,
forged calls straight to the actors, the decision log killed mid-append."""

from __future__ import annotations

import threading

import pytest
import ray
from context_for_tests import (
    Catalog,
    Coordinator,
    Decide,
    Decider,
    Forge,
    Forger,
    Look,
    Pricer,
    Reader,
    Reprice,
    Repriced,
)
from waiting import wait_until

from actors import System, Write
from actors._decisions.log import Decision
from actors._resource.calls import WriteCall, pack_calls, unpack_results
from policies import Provenance
from runtime import (
    Envelope,
    InvalidArgumentError,
    StaleContextError,
    UnauthorizedWriterError,
    decode,
    encode,
    resource_actor_name,
)

pytestmark = pytest.mark.timeout(300)


def test_agents_and_the_driver_share_one_decision_log(system: System) -> None:
    first = system.decisions.record("pricing", "raise 5%", rationale="costs up")
    assert (first.version, first.author, first.supersedes) == (1, "system", None)
    system.resource(Catalog, name="catalog")
    readers = system.agent(Reader, name="reader")
    looked = ray.get(readers.call(Look(topic="pricing", then_write=True)), timeout=120)
    assert (looked.version, looked.decision, looked.history) == (1, "raise 5%", 1)
    assert looked.wrote == 1  # a task that read the latest decision is briefed on it
    deciders = system.agent(Decider, name="decider")
    envelope = Envelope(trace_id="f" * 32)
    decided = ray.get(deciders.call(Decide(topic="pricing", decision="raise 8%", supersedes=1),
                                    envelope=envelope), timeout=120)  # fmt: skip
    assert (decided.version, decided.author, decided.trace_id) == (2, "decider", "f" * 32)
    latest = system.decisions.latest("pricing")
    assert latest is not None and latest.provenance == Provenance.UNVERIFIED_AGENT
    assert [e.version for e in system.decisions.history("pricing")] == [1, 2]
    records = list(system.log("decisions").records())
    assert [r.writer for r in records] == ["system", "decider"]  # the authenticated writers
    assert [r.provenance for r in records] == [Provenance.SYSTEM, latest.provenance]


def test_the_agent_briefed_on_an_older_decision_is_refused(system: System) -> None:
    system.decisions.record("pricing", "hold prices")
    catalog = system.resource(Catalog, name="catalog", writers=["early", "late"])
    early_brief = system.decisions.brief("pricing")
    system.decisions.record("pricing", "raise 8%", supersedes=1)
    late_brief = system.decisions.brief("pricing")
    early = system.agent(Pricer, name="early")
    late = system.agent(Pricer, name="late")
    stale_env = Envelope(briefed=early_brief)
    with pytest.raises(StaleContextError) as refused:
        ray.get(early.call(Reprice(sku="A", price=9), envelope=stale_env), timeout=120)
    assert (refused.value.topic, refused.value.briefed, refused.value.latest) == ("pricing", 1, 2)
    fresh_env = Envelope(briefed=late_brief)
    assert ray.get(late.call(Reprice(sku="A", price=12), envelope=fresh_env), timeout=120)
    assert catalog.price("A") == 12
    (rejection,) = system.log("catalog").rejections()
    assert (rejection.writer, rejection.reason, rejection.trace_id) == (
        "early", "stale_context", stale_env.trace_id,
    )  # fmt: skip


def test_the_driver_writes_fresh_only_when_briefed(system: System) -> None:
    catalog = system.resource(Catalog, name="catalog")
    assert catalog.set_price("A", 1) == 1  # no decision on pricing yet: nothing to be stale on
    system.decisions.record("pricing", "raise")
    with pytest.raises(StaleContextError):
        catalog.set_price("A", 2)
    with system.decisions.briefed("pricing"):
        assert catalog.set_price("A", 3) == 3
    assert catalog.note("B", 1) == 1  # a write that declares no fresh context is not checked


def test_forged_calls_straight_to_the_actors_are_refused_typed(system: System) -> None:
    system.decisions.record("pricing", "raise")
    system.resource(Catalog, name="catalog")
    early = system.agent(Pricer, name="early")
    forged = Envelope()
    object.__setattr__(forged, "briefed", (("pricing", "latest"),))  # past the constructor
    with pytest.raises(InvalidArgumentError, match="briefed"):
        ray.get(early.actors[0].handle.remote(Reprice(sku="A", price=1), forged), timeout=120)
    catalog = ray.get_actor(resource_actor_name("catalog"), namespace=system.namespace)
    token = system._driver_identity.token  # a valid writer: the briefing itself is forged
    future = WriteCall("set_price", encode([["A", 1], {}]), "system", 0, "k1", "a" * 32,
                       token=token, briefed=(("pricing", 99),))  # fmt: skip
    wire = decode(pack_calls([future]))
    wire[0][11] = [["pricing", "latest"]]
    results = [unpack_results(ray.get(catalog.submit.remote(blob)))[0]
               for blob in (pack_calls([future]), encode(wire))]  # fmt: skip
    assert [type(r.error) for r in results] == [InvalidArgumentError, InvalidArgumentError]
    assert system.get_resource("catalog").price("A") is None
    assert [r.reason for r in system.log("catalog").rejections()] == ["malformed", "malformed"]
    log = ray.get_actor(resource_actor_name("decisions"), namespace=system.namespace)
    bad = WriteCall("append", encode([[{"topic": "x"}], {}]), "system", 0, "k2", "a" * 32)
    (entry,) = unpack_results(ray.get(log.submit.remote(pack_calls([bad]))))
    assert entry.error is not None
    with pytest.raises(InvalidArgumentError):
        ray.get(log.submit.remote(b"\x01not a batch"))
    assert system.decisions.versions("pricing", "x") == {"pricing": 1, "x": 0}


def test_a_subtask_writes_on_the_decision_its_parent_task_made(system: System) -> None:
    system.decisions.record("pricing", "hold prices")
    catalog = system.resource(Catalog, name="catalog")
    system.agent(Pricer, name="pricer")
    coordinator = system.agent(Coordinator, name="coordinator")
    assert system.supervisor is not None  # started: the coordinator delegates through it
    decide = Decide(topic="pricing", decision="raise 10%", supersedes=1)
    assert ray.get(coordinator.call(decide), timeout=120) == Repriced(version=1)
    assert (catalog.price("A"), system.decisions.versions("pricing")) == (11, {"pricing": 2})
    assert system.log("catalog").rejections() == []


def test_an_agent_cannot_record_a_decision_as_someone_else(system: System) -> None:
    assert system.decisions.versions("pricing") == {"pricing": 0}  # the log is started
    forger = system.agent(Forger, name="forger")
    with pytest.raises(UnauthorizedWriterError, match="as 'system'"):
        ray.get(forger.call(Forge(author="system")), timeout=120)
    own = ray.get(forger.call(Forge(author="forger")), timeout=120)
    assert (own.version, own.author, own.trace_id) == (1, "forger", "unverified_agent")
    assert [(r.writer, r.reason) for r in system.log("decisions").rejections()] == [
        ("forger", "unauthorized")
    ]
    latest = system.decisions.latest("pricing")
    assert latest is not None and latest.provenance == Provenance.UNVERIFIED_AGENT


@pytest.mark.timeout(400)
def test_killing_the_decision_log_mid_append_loses_and_doubles_nothing(system: System) -> None:
    system.decisions.record("chain", "v1")
    handle = system.get_resource("decisions")
    total = 30
    done: list[int] = []

    def append_chain() -> None:
        for version in range(2, total + 1):
            entry = Decision(
                topic="chain", decision=f"v{version}", supersedes=version - 1, author="system",
                provenance=Provenance.SYSTEM,
            )  # fmt: skip
            write = Write(op="append", args=(entry,), key=f"chain-{version}")
            done.append(handle.write(write).unwrap()["version"])

    appender = threading.Thread(target=append_chain)
    appender.start()
    wait_until(lambda: len(done) >= 8, "eight appends acknowledged", limit=120)
    actor = ray.get_actor(resource_actor_name("decisions"), namespace=system.namespace)
    ray.kill(actor, no_restart=False)
    appender.join(timeout=300)
    assert not appender.is_alive()
    assert done == list(range(2, total + 1))
    history = system.decisions.history("chain")
    assert [(e.version, e.decision, e.supersedes) for e in history] == [
        (v, f"v{v}", v - 1 or None) for v in range(1, total + 1)
    ]
    records = list(system.log("decisions").records())
    assert len(records) == total and [r.version for r in records] == list(range(1, total + 1))
    assert len({r.idem_key for r in records}) == total


def test_a_decision_log_killed_for_good_is_started_again_from_storage(system: System) -> None:
    """A resource never takes a missing decision log for an empty one: the log is started
    again from its storage, and a write briefed on nothing is still stale."""
    system.decisions.record("pricing", "raise")
    catalog = system.resource(Catalog, name="catalog")
    log = ray.get_actor(resource_actor_name("decisions"), namespace=system.namespace)
    ray.kill(log, no_restart=True)
    wait_until(lambda: _gone(system), "the decision log is gone", limit=60)
    try:
        with pytest.raises(StaleContextError) as refused:
            catalog.set_price("A", 1)
        assert (refused.value.briefed, refused.value.latest) == (0, 1)
    finally:  # the resource started it detached: it outlives this system
        ray.kill(ray.get_actor(resource_actor_name("decisions"), namespace=system.namespace))


def _gone(system: System) -> bool:
    try:
        ray.get_actor(resource_actor_name("decisions"), namespace=system.namespace)
    except ValueError:
        return True
    return False
