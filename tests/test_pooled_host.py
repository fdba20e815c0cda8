"""Pooled agents without Ray: the per-agent mailbox, the host's scheduling of its agents,
and the host policy's placement."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from events_for_tests import Restocked
from pooled_events_for_tests import Hang, Watcher
from supervised_agents import Done, Job, PairWorker, Worker
from visibility_for_tests import PromiseMade
from waiting import until

from actors import Veto
from actors._agent.agent import AgentRuntime
from actors._agent.mailbox import Mailbox, MailboxClosedError
from actors._agent.pool_host import PoolHost, describe
from actors._agent.registry import AgentRegistry, TokenHolder
from actors._agent.start import _check
from actors._events.wire import EventBatch
from actors.lowlevel import EventRecord
from policies import HostPolicy
from runtime import (
    AgentGoneError,
    ConfigurationError,
    Envelope,
    InvalidArgumentError,
    MalformedEventError,
    UnknownEventTypeError,
)

pytestmark = pytest.mark.timeout(60)


async def _gated(gate: asyncio.Event, log: list[str], name: str) -> str:
    log.append(f"start {name}")
    await gate.wait()
    log.append(f"end {name}")
    return name


def test_a_mailbox_runs_capacity_calls_at_once_and_the_rest_in_arrival_order() -> None:
    async def main() -> list[str]:
        box, log = Mailbox(2), []
        gates = {n: asyncio.Event() for n in "abcd"}
        calls = [asyncio.create_task(box.run(lambda n=n: _gated(gates[n], log, n))) for n in "abcd"]
        await until(lambda: box.running == 2 and box.waiting == 2, "two run, two wait")
        for name in "bacd":
            gates[name].set()
            await until(lambda name=name: f"end {name}" in log, f"{name} ended")
        assert [await c for c in calls] == list("abcd")
        assert (box.running, box.waiting) == (0, 0)
        return log

    log = asyncio.run(main())
    assert [e for e in log if e.startswith("start")] == ["start a", "start b", "start c", "start d"]
    assert log.index("start c") > log.index("end b")  # c waited for a free slot


def test_a_cancelled_waiter_gives_up_its_place_without_losing_a_slot() -> None:
    async def main() -> None:
        box, log = Mailbox(1), []
        first, gate = asyncio.Event(), asyncio.Event()
        running = asyncio.create_task(box.run(lambda: _gated(first, log, "a")))
        waiter = asyncio.create_task(box.run(lambda: _gated(gate, log, "b")))
        await until(lambda: box.waiting == 1, "b waits")
        waiter.cancel()
        await until(lambda: box.waiting == 0, "b left the line")
        first.set()
        assert await running == "a"
        gate.set()
        assert await box.run(lambda: _gated(gate, log, "c")) == "c"
        assert "start b" not in log

    asyncio.run(main())


def test_closing_a_mailbox_cancels_what_runs_fails_what_waits_and_refuses_the_rest() -> None:
    async def main() -> None:
        box, log = Mailbox(1), []
        never = asyncio.Event()
        running = asyncio.create_task(box.run(lambda: _gated(never, log, "a")))
        waiting = asyncio.create_task(box.run(lambda: _gated(never, log, "b")))
        await until(lambda: box.running == 1 and box.waiting == 1, "one runs, one waits")
        assert box.close() == 2
        with pytest.raises(asyncio.CancelledError):
            await running
        with pytest.raises(MailboxClosedError):
            await waiting
        with pytest.raises(MailboxClosedError):
            await box.run(lambda: _gated(never, log, "c"))

    asyncio.run(main())


def _runtime(name: str, replica: int) -> AgentRuntime:
    return AgentRuntime(name=name, replica=replica, epoch=1, namespace="plain-host")


def _send(host: PoolHost, key: str, job: Job) -> asyncio.Task[object]:
    return asyncio.create_task(host.handle(key, job, Envelope(trace_id="0" * 32)))


def test_a_wedged_agent_holds_only_its_own_mailbox(tmp_path: Path) -> None:
    async def main() -> None:
        host = PoolHost("agent-host:0", "plain-host", persist=False)
        infos = await host.add([(Worker, _runtime("a", 0)), (PairWorker, _runtime("b", 0))])
        assert [(i["name"], i["capacity"], i["host"]) for i in infos] == [
            ("a", 1, "agent-host:0"), ("b", 2, "agent-host:0"),
        ]  # fmt: skip
        wedged = _send(host, "a:0", Job(key="w", mode="hang"))
        queued = _send(host, "a:0", Job(key="q"))
        await until(lambda: _status(host)["a:0"] == {"running": 1, "waiting": 1}, "a is wedged")
        answers = await asyncio.gather(*(_send(host, "b:0", Job(key=str(i))) for i in range(5)))
        assert answers == [Done(key=str(i), replica=0) for i in range(5)]
        restarted = await host.restart("a:0")  # what the supervisor does to a wedged agent
        assert restarted["name"] == "a"
        with pytest.raises(asyncio.CancelledError):
            await wedged
        with pytest.raises(AgentGoneError):
            await queued  # its mailbox was closed with it
        assert await _send(host, "a:0", Job(key="again")) == Done(key="again", replica=0)

    asyncio.run(main())


def _status(host: PoolHost) -> dict[str, dict[str, int]]:
    return {k: {"running": m.running, "waiting": m.waiting} for k, m in host._mailboxes.items()}


def test_removing_an_agent_leaves_its_host_mates_running() -> None:
    async def main() -> None:
        host = PoolHost("agent-host:0", "plain-host", persist=False)
        await host.add([(Worker, _runtime("a", 0)), (Worker, _runtime("a", 1))])
        await host.add([(Worker, _runtime("b", 0))])
        hung = _send(host, "a:1", Job(key="h", mode="hang"))
        await until(lambda: _status(host)["a:1"]["running"] == 1, "a:1 runs")
        assert await host.remove("a") == ["a:0", "a:1"]
        with pytest.raises(asyncio.CancelledError):
            await hung
        with pytest.raises(AgentGoneError):
            await host.handle("a:0", Job(key="x"), Envelope(trace_id="0" * 32))
        assert await _send(host, "b:0", Job(key="y")) == Done(key="y", replica=0)
        assert [m["name"] for m in await host.members()] == ["b"]
        assert repr(host) == "AgentHost(agent-host:0: 1 agents: b 0)"

    asyncio.run(main())


def test_a_host_describes_its_agents_in_ranges() -> None:
    keys = [f"orders:{i}" for i in (0, 1, 2, 5)] + ["pricing:0"]
    assert describe(keys) == "5 agents: orders 0-2,5, pricing 0"
    assert describe([]) == "0 agents"


def test_the_host_policy_fills_hosts_then_starts_new_ones_then_overfills() -> None:
    policy = HostPolicy(agents_per_host=2, max_hosts=2)
    assert policy.place([], 3) == [0, 0, 1]
    assert policy.place([2, 1], 3) == [1, 0, 1]  # full: the least loaded one takes more
    assert HostPolicy(agents_per_host=3).place([1, 3], 4) == [0, 0, 2, 2]
    with pytest.raises(ValueError, match="agents_per_host"):
        HostPolicy(agents_per_host=0)


class Plain:
    """An agent class with no event handlers: any placement."""


def test_a_placement_is_dedicated_or_pooled_and_only_pooled_takes_a_host_policy() -> None:
    _check(Plain, "pooled", HostPolicy(), 3)
    _check(Plain, "dedicated", None, 1)
    with pytest.raises(ConfigurationError, match="placement must be one of"):
        _check(Plain, "everywhere", None, 1)
    with pytest.raises(ConfigurationError, match="hosts= is the policy of pooled agents"):
        _check(Plain, "dedicated", HostPolicy(), 1)
    with pytest.raises(ValueError, match="at least 1"):
        _check(Plain, "pooled", None, 0)


def test_the_tokens_of_many_replicas_are_issued_in_one_go(tmp_path: Path) -> None:
    registry = AgentRegistry(tmp_path)
    tokens = registry.issue_tokens("crowd", 2, 3)
    assert len(set(tokens)) == 3
    assert [registry.holder(t) for t in tokens] == [TokenHolder("crowd", 2, False)] * 3
    registry.bump_epoch("crowd")  # the kill switch revokes every one of them
    assert [registry.holder(t) for t in tokens] == [TokenHolder("crowd", 2, True)] * 3
    registry.close()


def _batch(*seqs_skus: tuple[int, str]) -> tuple[object, ...]:
    records = [
        EventRecord("stock", seq, f"stock:{seq}:0", seq, "Restocked",
                    Restocked(sku=sku, qty=1, level=seq).model_dump_json().encode(), "0" * 32,
                    "system", "w", "t")
        for seq, sku in seqs_skus
    ]  # fmt: skip
    return EventBatch.of("stock", records).wire()


def test_a_pooled_agent_hears_events_in_its_mailbox_and_validates_beside_it() -> None:
    async def main() -> None:
        host = PoolHost("agent-host:0", "plain-host", persist=False)
        await host.add([(Watcher, _runtime("w", 0))])
        report = await host.deliver("w:0", _batch((1, "a"), (2, "b")))
        assert report == [2, 2, None, "handler", ""]  # a plain list: Ray's msgpack path
        assert host._cells["w:0"]._agent.seen == ["a", "b"]  # type: ignore[attr-defined]
        wedged = asyncio.create_task(host.handle("w:0", Hang(), Envelope(trace_id="0" * 32)))
        await until(lambda: _status(host)["w:0"]["running"] == 1, "its only slot is held")
        late = asyncio.create_task(host.deliver("w:0", _batch((3, "c"))))
        await until(lambda: _status(host)["w:0"]["waiting"] == 1, "the delivery waits its turn")
        big = PromiseMade(sku="A", price=120).model_dump_json().encode()
        verdict = await host.validate_event("w:0", "PromiseMade", big, ("0" * 32, ""))
        assert verdict == Veto(reason="120 > 100")  # answered beside the wedged mailbox
        assert await host.event_types("w:0") == {
            "validate": ["PromiseMade"], "subscribe": ["Restocked"],
        }  # fmt: skip
        await host.restart("w:0")
        for task in (wedged, late):
            with pytest.raises((asyncio.CancelledError, AgentGoneError)):
                await task

    asyncio.run(main())


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda h: h.deliver("nobody:0", []), AgentGoneError),
        (lambda h: h.deliver(["w:0"], []), AgentGoneError),
        (lambda h: h.deliver("w:0", "garbage"), InvalidArgumentError),
        (lambda h: h.deliver("w:0", [{"seq": 1}]), InvalidArgumentError),
        (lambda h: h.validate_event("nobody:0", "PromiseMade", b"{}"), AgentGoneError),
        (lambda h: h.validate_event("w:0", "Nope", b"{}"), UnknownEventTypeError),
        (lambda h: h.validate_event("w:0", "PromiseMade", b"not json"), MalformedEventError),
        (lambda h: h.validate_event("w:0", "PromiseMade", "text"), MalformedEventError),
        (lambda h: h.event_types(None), AgentGoneError),
    ],
)
def test_forged_calls_to_a_host_s_event_methods_are_typed_errors(
    call: Callable[[PoolHost], Awaitable[object]], error: type[Exception]
) -> None:
    async def main() -> None:
        host = PoolHost("agent-host:0", "plain-host", persist=False)
        await host.add([(Watcher, _runtime("w", 0))])
        with pytest.raises(error):
            await call(host)
        assert (await host.deliver("w:0", _batch((1, "a"))))[:2] == [1, 1]  # it serves on

    asyncio.run(main())


def test_an_agent_that_hears_events_may_be_pooled() -> None:
    _check(Watcher, "pooled", None, 1)  # once refused: the dispatcher reaches it via its host
