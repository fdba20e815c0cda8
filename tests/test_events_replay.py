"""Replays against the plain dispatcher core: a batch out when the replay comes is not
counted as the replay's delivery (even when the replay rewinds to the very checkpoint the
batch was read after), and a replay that names a checkpoint past the resource's newest
event, or a resource that does not exist, is refused before anything moves."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from events_for_tests import Restocked, Stock

from actors._events.core import DispatchCore
from actors._events.dead_letters import after_failure
from actors._events.subscribe import DeliveryReport
from actors.lowlevel import ResourceCore, WriteCall
from policies import EventsPolicy
from runtime import ConfigurationError, encode


def write(core: ResourceCore, op: str, *args: Any) -> None:
    call = WriteCall(op, encode([list(args), {}]), "w", 1, uuid.uuid4().hex, "c" * 32)
    (result,) = core.apply_batch([call])
    assert result.error is None, result.error


def restocked(root: Path, skus: str, policy: EventsPolicy | None = None) -> DispatchCore:
    stock = ResourceCore(Stock(), "stock", root)
    for sku in skus:
        write(stock, "restock", sku, 1)
    core = DispatchCore(root, policy)
    core.register("all", [Restocked.__name__])
    return core


@pytest.mark.timeout(60)
def test_a_batch_out_when_the_replay_came_does_not_move_the_checkpoint(tmp_path: Path) -> None:
    core = restocked(tmp_path, "AB")
    out = core.pending("all", "stock")  # sent to the replica: events 1 and 2
    core.rewind(["all"], "stock", 0)  # the operator replays from the start meanwhile
    assert not core.acked("all", "stock", out, 2)  # its handlers may have run before
    assert core.position("all", "stock") == 0
    again = core.pending("all", "stock")
    assert [e.seq for e in again.events] == [1, 2]
    assert core.acked("all", "stock", again, 2)
    assert core.position("all", "stock") == 2


@pytest.mark.timeout(60)
def test_a_failure_reported_for_a_batch_out_when_the_replay_came_is_not_counted(
    tmp_path: Path,
) -> None:
    core = restocked(tmp_path, "AB", EventsPolicy(max_delivery_attempts=1))
    out = core.pending("all", "stock")
    core.rewind(["all"], "stock", 0)
    failed = DeliveryReport(0, 0, "stock:1:0: ValueError: no", "handler", "ValueError")
    assert not core.acked("all", "stock", out, failed.done_upto)
    assert after_failure(core, "all", "stock", out, failed, core._clock.now()) is None
    assert (core.dead.of("all"), core.position("all", "stock")) == ([], 0)
    assert [e.seq for e in core.pending("all", "stock").events] == [1, 2]


@pytest.mark.timeout(60)
def test_a_replay_past_the_newest_event_is_refused_and_moves_nothing(tmp_path: Path) -> None:
    core = restocked(tmp_path, "AB")
    core.rewind(["all"], "stock", 2)  # to the newest: allowed (passes both)
    assert core.position("all", "stock") == 2
    core.rewind(["all"], "stock", 0)
    with pytest.raises(ConfigurationError, match="newest event of 'stock' is 2"):
        core.rewind(["all"], "stock", 3)
    assert core.position("all", "stock") == 0
    core.close()
    again = DispatchCore(tmp_path)
    assert again.position("all", "stock") == 0  # nothing stored either
    assert [e.seq for e in again.pending("all", "stock").events] == [1, 2]


@pytest.mark.timeout(60)
def test_a_replay_of_a_resource_that_does_not_exist_is_refused(tmp_path: Path) -> None:
    core = restocked(tmp_path, "AB")
    for resource in ("stokc", None, ["stock"], 3):
        with pytest.raises(ConfigurationError):
            core.rewind(["all"], resource, 0)  # type: ignore[arg-type]
    assert [(lag.resource, lag.checkpoint) for lag in core.lags()] == [("stock", 0)]
    core.close()
    assert DispatchCore(tmp_path)._store.all() == {}
