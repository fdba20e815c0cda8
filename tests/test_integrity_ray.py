"""Constraints through three hops of delegation on a real Ray: set once by the driver,
copied by the supervisor to every child subtask, stamped on the last hop's write, and
enforced at the resource, whatever the prose between the hops says."""

from __future__ import annotations

import pytest
import ray
from integrity_agents import Action, Brief, Files, Relay, Report

from actors import System, carrying
from policies import ConstraintSet, ForbidPath, RetryPolicy
from runtime import ConstraintViolationError, Envelope, InvalidArgumentError, agent_actor_name

pytestmark = [pytest.mark.ray, pytest.mark.timeout(240)]

PROD = ConstraintSet((ForbidPath(prefix="/prod"),))


def start(system: System) -> None:
    system.resource(Files, name="files", writers=["action", "system"])
    for name in ("orchestrator", "research", "synthesis"):
        system.agent(Relay, name=name)
    system.agent(Action, name="action")


def submit(system: System, brief: Brief, constraints: ConstraintSet) -> tuple[Report, str]:
    root = Envelope(sender="human", constraints=constraints)
    handle = system.supervisor.submit(
        brief, to="orchestrator", expect=Report, envelope=root,
        retry=RetryPolicy(max_attempts=1),
    )  # fmt: skip
    report = handle.result(timeout=180)
    assert isinstance(report, Report)
    return report, root.trace_id


def test_the_last_hops_write_under_prod_is_refused_with_the_constraint_named(
    system: System,
) -> None:
    start(system)
    brief = Brief(goal="summarise the outage", target="/prod/config.yaml")
    report, trace_id = submit(system, brief, PROD)
    assert report.written is False
    assert report.refused_by == "forbid_path(path under /prod)"
    assert report.trace_id == trace_id
    assert report.hops == ["orchestrator", "research", "synthesis", "action"]
    assert report.carried == PROD.to_wire()
    files = system.get_resource("files")
    assert files.paths() == []
    (rejection,) = system.log("files").rejections()
    assert (rejection.reason, rejection.trace_id, rejection.writer) == (
        "constraint",
        trace_id,
        "action",
    )
    assert "forbid_path(path under /prod)" in rejection.detail
    allowed, _ = submit(system, Brief(goal="notes", target="/tmp/notes.md"), PROD)
    assert allowed.written is True and files.paths() == ["/tmp/notes.md"]


def test_a_hop_that_drops_the_constraints_is_refused_and_nothing_is_written(
    system: System,
) -> None:
    start(system)
    brief = Brief(goal="x", target="/prod/x", drop_at="research")
    report, _ = submit(system, brief, PROD)
    assert report.written is False
    assert report.refused_by.startswith("loosened: research may not drop or loosen")
    assert "forbid_path(path under /prod)" in report.refused_by
    assert system.get_resource("files").paths() == []


def test_a_drivers_write_carries_the_constraints_it_is_made_under(system: System) -> None:
    start(system)
    files = system.get_resource("files")
    with carrying(PROD), pytest.raises(ConstraintViolationError) as refused:
        files.write_file("/prod/a", "x")
    assert refused.value.constraint == "forbid_path(path under /prod)"
    assert files.paths() == []


def test_a_forged_envelope_with_prose_constraints_is_refused_typed(system: System) -> None:
    start(system)
    forged = Envelope(sender="human")
    object.__setattr__(forged, "constraints", {"never": "/prod"})  # past the constructor
    actor = ray.get_actor(agent_actor_name("action", 0), namespace=system.namespace)
    with pytest.raises(InvalidArgumentError, match="must be a ConstraintSet"):
        ray.get(actor.handle.remote(Brief(goal="x", target="/prod/x"), forged), timeout=120)
    assert system.get_resource("files").paths() == []
