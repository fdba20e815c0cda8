"""Starting the supervisor for a ``System``, and the kill switch."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import ray

from runtime import Clock
from runtime._ray_glue import agent_actor_name, lookup, spawn

from ._supervisor_handle import Supervisor
from ._supervisor_host import SUPERVISOR_ACTOR, SupervisorHost

if TYPE_CHECKING:
    from ._system import System

# An async actor runs at most this many calls at once; waiting subtasks are calls, so the
# bound is high, or heartbeats and cancels would queue behind them.
_SUPERVISOR_CONCURRENCY = 100_000


def start_supervisor(system: System, clock: Clock | None = None) -> tuple[Supervisor, Any]:
    """Join the namespace's ``supervisor`` actor, or start it; returns the handle and the
    actor if this call started it (else None)."""
    try:
        return Supervisor(lookup(SUPERVISOR_ACTOR, system.namespace), system.trace_id), None
    except Exception:
        pass
    actor = spawn(
        SupervisorHost, str(system.root), system.namespace, clock,
        name=SUPERVISOR_ACTOR, namespace=system.namespace, pin_to_state=True,
        max_concurrency=_SUPERVISOR_CONCURRENCY,
    )  # fmt: skip
    ray.get(actor.overview.remote())
    return Supervisor(actor, system.trace_id), actor


def kill_agent(system: System, agent: str) -> dict[str, Any]:
    """The kill switch: bump ``agent``'s epoch, fence it on every resource, fail its
    attempts with reason killed (each follows its plan), kill its replicas; audited.

    When it returns, no write of the agent's old epoch can commit on any resource.

    Returns:
        The audit record: agent, new epoch, resources fenced, attempts failed, replicas
        killed.
    """
    epoch = system._registry.bump_epoch(agent)
    resources = _resources(system.namespace)
    for name in resources:
        system.get_resource(name).fence_writer(agent, epoch)
    replicas = _replicas(system.namespace, agent)
    extra = {"resources_fenced": resources, "replicas_killed": sorted(replicas)}
    done: dict[str, Any] = ray.get(system.supervisor.actor.kill_agent.remote(agent, epoch, extra))
    for actor in replicas.values():
        ray.kill(actor, no_restart=True)
    return done


def _resources(namespace: str) -> list[str]:
    return sorted(
        entry["name"].removeprefix("resource:")
        for entry in ray.util.list_named_actors(all_namespaces=True)
        if entry["namespace"] == namespace and entry["name"].startswith("resource:")
    )


def _replicas(namespace: str, agent: str) -> dict[str, Any]:
    prefix = agent_actor_name(agent, 0)[:-1]
    return {
        entry["name"]: lookup(entry["name"], namespace)
        for entry in ray.util.list_named_actors(all_namespaces=True)
        if entry["namespace"] == namespace and entry["name"].startswith(prefix)
    }
