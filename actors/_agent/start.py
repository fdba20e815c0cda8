"""``System.agent``'s work: the replicas of one agent, each with its epoch and writer
token, started in their own actors (dedicated) or on shared hosts (pooled)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import ray

from policies import HostPolicy
from runtime import ConfigurationError

from .agent import Agent, AgentRuntime
from .pooled import HostPool
from .registry import AgentRegistry
from .spawn import spawn_replica

Placement = Literal["dedicated", "pooled"]
PLACEMENTS = ("dedicated", "pooled")


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentSetting:
    """What every replica of one agent shares."""

    name: str
    namespace: str
    storage: str
    model: Any
    budget_policy: Any


def start_replicas(
    cls: type[Agent],
    setting: AgentSetting,
    *,
    replicas: int,
    placement: str,
    registry: AgentRegistry,
    pool: HostPool,
    hosts: HostPolicy | None,
    spawned: list[Any],
) -> list[Any]:
    """Start ``replicas`` replicas of ``cls``; returns their actors (dedicated) or
    ``PooledReplica``s (pooled), once each answers. Actors started are added to
    ``spawned`` (the pool adds the hosts it starts itself).

    Raises:
        ConfigurationError: an unknown placement, or ``hosts`` given with another
            placement than pooled, or another policy than the pool's.
        ValueError: fewer than one replica.
        StorageError: the registry could not issue the tokens.
    """
    _check(cls, placement, hosts, replicas)
    epoch = registry.current_epoch(setting.name)
    tokens = registry.issue_tokens(setting.name, epoch, replicas)
    shared = {
        "epoch": epoch, "namespace": setting.namespace, "model": setting.model,
        "storage": setting.storage, "budget_policy": setting.budget_policy,
    }  # fmt: skip
    runtimes = [
        AgentRuntime(name=setting.name, replica=i, token=token, **shared)
        for i, token in enumerate(tokens)
    ]
    if placement == "pooled":
        return pool.place([(cls, runtime) for runtime in runtimes], hosts)
    actors = [spawn_replica(cls, runtime) for runtime in runtimes]
    spawned.extend(actors)
    ray.get([a.ping.remote() for a in actors])
    return actors


def _check(cls: type, placement: str, hosts: HostPolicy | None, replicas: int) -> None:
    if placement not in PLACEMENTS:
        raise ConfigurationError(f"placement must be one of {PLACEMENTS}, not {placement!r}")
    if hosts is not None and placement != "pooled":
        raise ConfigurationError("hosts= is the policy of pooled agents: placement='pooled'")
    if replicas < 1:
        raise ValueError("replicas must be at least 1")
