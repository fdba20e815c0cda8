"""The kill switch: from its return, no write of a killed agent commits anywhere."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ray

from runtime import ConfigurationError, lookup, named_actors, resource_actor_name

from ._agent.group import replicas_of
from ._agent.pooled import stop_replicas
from ._agent.registry import AgentRegistry
from ._budget.client import BUDGET_ACTOR, BudgetHandle
from ._locks.client import LOCKS_ACTOR, LocksCalls, LocksHandle
from ._resource.handle import ResourceHandle
from ._supervisor.handle import Supervisor


def kill_agent(
    agent: str,
    *,
    namespace: str,
    registry: AgentRegistry,
    resource: Callable[[str], ResourceHandle],
    supervisor: Supervisor,
    budget: Callable[[], BudgetHandle],
) -> dict[str, Any]:
    """The kill switch: bump ``agent``'s epoch, fence it on every resource, end its leases
    and waits (each key it held gets a new fencing token), fail its attempts with reason
    killed (each follows its plan), kill its replicas, charge the budget grants they held
    in full; audited.

    When it returns, no write of the agent's old epoch can commit on any resource.

    Returns:
        The audit record: agent, new epoch, resources fenced, attempts failed, replicas
        killed, and the lease keys fenced when it held any.
    """
    epoch = registry.bump_epoch(agent)
    resources = _resources(namespace)
    for name in resources:
        resource(name).fence_writer(agent, epoch)
    leases = _end_leases(namespace, agent)
    replicas = replicas_of(namespace, agent)
    extra = {"resources_fenced": resources, "replicas_killed": sorted(replicas)}
    if leases:  # only when it held any, so that a record without leases reads as before
        extra["lease_keys_fenced"] = sorted(leases)
    done: dict[str, Any] = ray.get(supervisor.actor.kill_agent.remote(agent, epoch, extra))
    stop_replicas(agent, replicas.values())  # pooled ones leave their hosts running
    _charge_grants(namespace, budget, agent)
    return done


def _charge_grants(namespace: str, budget: Callable[[], BudgetHandle], agent: str) -> None:
    """Charge in full the budget grants the killed agent held (it cannot settle them, and
    whatever it spent must count); nothing to do if no budget actor runs."""
    try:
        lookup(BUDGET_ACTOR, namespace)
    except ConfigurationError:
        return
    budget().charge_holder(agent)


def _end_leases(namespace: str, agent: str) -> dict[str, int]:
    """End the killed agent's leases and waits; each key it held -> its new token. Nothing
    to do if no locks actor runs."""
    try:
        actor = lookup(LOCKS_ACTOR, namespace)
    except ConfigurationError:
        return {}
    return LocksHandle(LocksCalls(lambda: actor)).kill(agent)


def _resources(namespace: str) -> list[str]:
    prefix = resource_actor_name("")
    return sorted(name.removeprefix(prefix) for name in named_actors(namespace, prefix))
