"""The kill switch: from its return, no write of a killed agent commits anywhere."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import ray

from runtime import ConfigurationError, agent_actor_name, lookup, named_actors, resource_actor_name

from ._budget.client import BUDGET_ACTOR

if TYPE_CHECKING:
    from ._system import System


def kill_agent(system: System, agent: str) -> dict[str, Any]:
    """The kill switch: bump ``agent``'s epoch, fence it on every resource, fail its
    attempts with reason killed (each follows its plan), kill its replicas, charge the
    budget grants they held in full; audited.

    When it returns, no write of the agent's old epoch can commit on any resource.

    Returns:
        The audit record: agent, new epoch, resources fenced, attempts failed, replicas
        killed.
    """
    epoch = system._registry.bump_epoch(agent)
    resources = _resources(system.namespace)
    for name in resources:
        system.get_resource(name).fence_writer(agent, epoch)
    replicas = replicas_of(system.namespace, agent)
    extra = {"resources_fenced": resources, "replicas_killed": sorted(replicas)}
    done: dict[str, Any] = ray.get(system.supervisor.actor.kill_agent.remote(agent, epoch, extra))
    for actor in replicas.values():
        ray.kill(actor, no_restart=True)
    _charge_grants(system, agent)
    return done


def _charge_grants(system: System, agent: str) -> None:
    """Charge in full the budget grants the killed agent held (it cannot settle them, and
    whatever it spent must count); nothing to do if no budget actor runs."""
    try:
        lookup(BUDGET_ACTOR, system.namespace)
    except ConfigurationError:
        return
    system.budget.charge_holder(agent)


def _resources(namespace: str) -> list[str]:
    prefix = resource_actor_name("")
    return sorted(name.removeprefix(prefix) for name in named_actors(namespace, prefix))


def replicas_of(namespace: str, agent: str) -> dict[str, Any]:
    """The running replicas of ``agent``, by actor name."""
    return named_actors(namespace, agent_actor_name(agent, 0)[:-1])
