"""The two faces of the resource, subtask and budget handles, without Ray: same logic,
same arguments, same errors; the blocking face only blocks where the other awaits.

A fake actor answers in this process: ``.method.remote(...)`` returns a coroutine that
the async face awaits and the blocking face's ``ray.get`` (patched) runs on one loop.
"""

from __future__ import annotations

import asyncio
import copy
import pickle
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import ray
from pydantic import BaseModel
from ray.exceptions import ActorUnavailableError, GetTimeoutError
from resources_for_tests import Inventory, Tags, probe_async, probe_blocking

import actors._budget.client as budget_client
from actors import (
    AsyncResourceHandle,
    AsyncSubtaskHandle,
    BudgetHandle,
    Reconnect,
    ResourceHandle,
    ResourceLog,
    SubtaskHandle,
)
from actors._agent.registry import AgentRegistry
from actors._budget.client import BudgetLink
from actors._resource.handle import WriterIdentity
from actors._supervisor.handle import make_spec
from actors._supervisor.types import Outcome
from actors.lowlevel import ResourceHost
from policies import ResourcePolicy, WriteAuthority
from runtime import Envelope, ResourceUnavailableError, UnknownOperationError
from runtime.testing import FakeClock

pytestmark = pytest.mark.timeout(60)

FACES = (ResourceHandle, AsyncResourceHandle)


class Keys:
    def next_key(self) -> tuple[str, str]:
        return "t" * 32, uuid.uuid4().hex


class _Method:
    def __init__(self, actor: FakeActor, name: str) -> None:
        self._actor = actor
        self._name = name

    def remote(self, *args: Any) -> Any:
        self._actor.sent.append(self._name)
        if self._actor.unavailable > 0:
            self._actor.unavailable -= 1
            return _raise(ActorUnavailableError("the actor is restarting", None))
        return getattr(self._actor.target, self._name)(*args)


async def _raise(error: BaseException) -> Any:
    raise error


class FakeActor:
    """Calls ``target``'s async methods; the next ``unavailable`` calls fail as if the
    actor were restarting."""

    def __init__(self, target: Any) -> None:
        self.target = target
        self.sent: list[str] = []
        self.unavailable = 0
        self.token = ""

    def __getattr__(self, name: str) -> _Method:
        if name.startswith("_"):
            raise AttributeError(name)
        return _Method(self, name)


@pytest.fixture
def loop(monkeypatch: pytest.MonkeyPatch) -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()

    async def wait(ref: Any, timeout: float | None) -> Any:
        return await asyncio.wait_for(asyncio.shield(ref), timeout)

    def get(ref: Any, timeout: float | None = None) -> Any:
        try:
            return loop.run_until_complete(wait(ref, timeout))
        except TimeoutError:
            raise GetTimeoutError("timed out") from None

    monkeypatch.setattr(ray, "get", get)
    yield loop
    for task in asyncio.all_tasks(loop):
        task.cancel()
    loop.run_until_complete(asyncio.sleep(0))
    loop.close()


def resource_actor(root: Path, cls: type = Inventory) -> FakeActor:
    policy = ResourcePolicy(max_payload_bytes=1024)
    actor = FakeActor(ResourceHost(cls, "inventory", str(root), policy, WriteAuthority()))
    actor.token = AgentRegistry(root).issue_token("system", 0)  # as System issues it
    return actor


def handle(face: type, actor: Any, **options: Any) -> Any:
    identity = WriterIdentity("system", 0, getattr(actor, "token", ""))
    return face(actor, "inventory", identity, Keys(), **options)


def run(loop: asyncio.AbstractEventLoop, face: type, value: Any) -> Any:
    """The value of a call on ``face``: awaited on the async face."""
    return loop.run_until_complete(value) if face is AsyncResourceHandle else value


def test_both_faces_give_identical_outcomes_for_the_same_bad_calls(
    loop: asyncio.AbstractEventLoop, tmp_path: Path
) -> None:
    actor = resource_actor(tmp_path)
    blocking = probe_blocking(handle(ResourceHandle, actor))
    awaiting = loop.run_until_complete(probe_async(handle(AsyncResourceHandle, actor)))
    assert blocking == awaiting
    assert {name: kind for name, (kind, _) in blocking.items()} == {
        "unknown op": "UnknownOperationError",
        "read of an unknown op": "UnknownOperationError",
        "read of a write op": "UnknownOperationError",
        "not plain data": "InvalidArgumentError",
        "too large": "PayloadTooLargeError",
        "a write that raises": "OutOfStockError",
        "a write of an unknown op": "UnknownOperationError",
        "bad arguments to a read": "InvalidArgumentError",
    }
    assert blocking["unknown op"][1] == "inventory: no @write or @read method named 'nope'"


@pytest.mark.parametrize("face", FACES, ids=["blocking", "async"])
def test_an_unknown_op_is_not_sent_but_a_write_to_one_is_refused_and_audited(
    loop: asyncio.AbstractEventLoop, tmp_path: Path, face: type
) -> None:
    actor = resource_actor(tmp_path)
    h = handle(face, actor)
    with pytest.raises(UnknownOperationError):
        run(loop, face, h.nope())
    assert actor.sent == ["describe"]
    assert isinstance(run(loop, face, h.write("nope")).error, UnknownOperationError)
    assert actor.sent == ["describe", "submit"]
    assert [r.reason for r in ResourceLog(tmp_path, "inventory").rejections()] == [
        "unknown_operation"
    ]


@pytest.mark.parametrize("face", FACES, ids=["blocking", "async"])
def test_keyword_arguments_named_self_op_and_write_reach_the_operation(
    loop: asyncio.AbstractEventLoop, tmp_path: Path, face: type
) -> None:
    h = handle(face, resource_actor(tmp_path, Tags))
    words = {"self": "s", "op": "o", "write": "w"}
    assert run(loop, face, h.write("tag", **words)).value == ["s", "o", "w"]
    assert run(loop, face, h.tag(**words)) == ["s", "o", "w"]
    assert run(loop, face, h.read("echo", **words)).value == ["s", "o", "w"]
    assert run(loop, face, h.echo(**words)) == ["s", "o", "w"]


@pytest.mark.parametrize("face", FACES, ids=["blocking", "async"])
def test_copies_refer_to_the_same_resource_as_the_same_writer(
    loop: asyncio.AbstractEventLoop, tmp_path: Path, face: type
) -> None:
    original = handle(face, resource_actor(tmp_path))
    for made in (copy.copy(original), copy.deepcopy(original)):
        assert type(made) is face and made.name == "inventory"
        run(loop, face, made.restock("A", 1))
    assert run(loop, face, original.available("A")) == 2
    records = list(ResourceLog(tmp_path, "inventory").records())
    assert [(r.version, r.writer) for r in records] == [(1, "system"), (2, "system")]


class Nowhere:
    """A stand-in actor that pickles."""


@pytest.mark.parametrize("face", FACES, ids=["blocking", "async"])
def test_copying_or_unpickling_never_recurses(face: type) -> None:
    bare = face.__new__(face)  # what copy and pickle make before restoring the state
    assert not hasattr(bare, "restock")
    assert type(copy.copy(bare)) is face
    restored = pickle.loads(pickle.dumps(handle(face, Nowhere())))
    assert restored.name == "inventory"
    with pytest.raises(AttributeError):
        restored._private  # noqa: B018


@pytest.mark.parametrize("face", FACES, ids=["blocking", "async"])
def test_a_restarting_actor_is_retried_with_pauses_of_the_injected_clock(
    loop: asyncio.AbstractEventLoop, tmp_path: Path, face: type
) -> None:
    actor, clock = resource_actor(tmp_path), FakeClock()
    h = handle(face, actor, clock=clock)
    run(loop, face, h.operations())
    actor.unavailable = 3
    assert run(loop, face, h.restock("A", 1)) == 1
    assert actor.sent == ["describe"] + ["submit"] * 4
    assert clock.slept == (0.05, 0.05, 0.05)
    assert [r.version for r in ResourceLog(tmp_path, "inventory").records()] == [1]


def _give_up(loop: asyncio.AbstractEventLoop, call: Callable[[], Any]) -> tuple[Any, ...]:
    """``(type, resource, message)`` of the error a call that never gets through raises."""
    with pytest.raises(ResourceUnavailableError) as error:
        value = call()
        if asyncio.iscoroutine(value):
            loop.run_until_complete(value)
    return type(error.value), error.value.resource, str(error.value)


RECONNECT = Reconnect(give_up_after=timedelta(seconds=1), pause=timedelta(milliseconds=250))


def test_both_faces_give_up_alike_after_give_up_after_of_the_clock(
    loop: asyncio.AbstractEventLoop, tmp_path: Path
) -> None:
    found = []
    for face in FACES:
        actor, clock = resource_actor(tmp_path), FakeClock()
        actor.unavailable = 1000
        h = handle(face, actor, reconnect=RECONNECT, clock=clock)
        found.append(_give_up(loop, lambda h=h: h.restock("A", 1)))
        assert clock.slept == (0.25, 0.25, 0.25, 0.25)  # tries at 0, .25, .5, .75 and 1 s
    assert found[0] == found[1]
    assert found[0][1] == "inventory"


# -- subtask handles ----------------------------------------------------------------------


class Done(BaseModel):
    value: int


class FakeSupervisor:
    """Answers ``run`` with ``outcome`` (or never, if None)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, outcome: Outcome | None) -> None:
        self._never = loop.create_future()
        self.outcome = outcome

    async def run(self, spec: Any) -> Outcome:
        if self.outcome is None:
            return await self._never  # type: ignore[no-any-return]
        return self.outcome

    async def cancel(self, subtask_id: str) -> bool:
        return True


SUBTASK_FACES = (SubtaskHandle, AsyncSubtaskHandle)


def subtask(face: type, actor: Any, **options: Any) -> Any:
    spec = make_spec(
        Done(value=0), to="workers", expect=Done, deadline=None, retry=None, on_failure=None,
        envelope=Envelope(task_id="s" * 32),
    )  # fmt: skip
    return face(actor, spec, **options)


def run_subtask(loop: asyncio.AbstractEventLoop, value: Any) -> Any:
    return loop.run_until_complete(value) if asyncio.iscoroutine(value) else value


def test_subtask_faces_time_out_alike(loop: asyncio.AbstractEventLoop) -> None:
    found = []
    for face in SUBTASK_FACES:
        h = subtask(face, FakeActor(FakeSupervisor(loop, None)))
        with pytest.raises(TimeoutError) as error:
            run_subtask(loop, h.result(timeout=0.01))
        found.append((type(error.value), str(error.value)))
    assert found == [(TimeoutError, f"subtask {'s' * 32} not finished after 0.01s")] * 2


@pytest.mark.parametrize("face", SUBTASK_FACES, ids=["blocking", "async"])
def test_a_subtask_is_joined_again_while_the_supervisor_restarts(
    loop: asyncio.AbstractEventLoop, face: type
) -> None:
    actor, clock = FakeActor(FakeSupervisor(loop, Outcome("s" * 32, Done(value=7)))), FakeClock()
    actor.unavailable = 2  # the submission and the first re-join fail
    h = subtask(face, actor, clock=clock)
    assert run_subtask(loop, h.result()) == Done(value=7)
    assert actor.sent == ["run", "run", "run"]
    assert clock.slept == (0.05, 0.05)
    assert run_subtask(loop, h.cancel()) is True


def test_subtask_faces_give_up_alike(loop: asyncio.AbstractEventLoop) -> None:
    found = []
    for face in SUBTASK_FACES:
        actor, clock = FakeActor(FakeSupervisor(loop, None)), FakeClock()
        actor.unavailable = 1000
        h = subtask(face, actor, reconnect=RECONNECT, clock=clock)
        found.append(_give_up(loop, h.result))
        assert clock.slept == (0.25,) * 4
    assert found[0] == found[1] and found[0][1] == "supervisor"


# -- budget handles -----------------------------------------------------------------------


class FakeBudget:
    async def status(self) -> dict[str, Any]:
        return {"calls": 1}


def test_budget_faces_reconnect_and_give_up_alike(
    loop: asyncio.AbstractEventLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    actor = FakeActor(FakeBudget())
    monkeypatch.setattr(budget_client, "lookup", lambda name, namespace: actor)
    clocks = FakeClock(), FakeClock()
    driver = BudgetHandle(actor, RECONNECT, clock=clocks[0])
    link = BudgetLink("ns", RECONNECT, clock=clocks[1])
    actor.unavailable = 2
    assert driver.status() == {"calls": 1}
    actor.unavailable = 2
    assert loop.run_until_complete(link.call("status")) == {"calls": 1}
    actor.unavailable = 1000
    found = [_give_up(loop, driver.status), _give_up(loop, lambda: link.call("status"))]
    assert found[0] == found[1] and found[0][1] == "budget"
    assert clocks[0].slept == clocks[1].slept == (0.25, 0.25) + (0.25,) * 4
