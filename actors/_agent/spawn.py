"""How an agent replica is started, in one place: by ``System.agent`` and again by the
supervisor when it restarts a wedged replica (from the recipe the replica hands out)."""

from __future__ import annotations

from typing import Any

from runtime import agent_actor_name, spawn

from .agent import Agent, AgentRuntime
from .host import CONTROL_GROUP, AgentHost

# Control calls (ping, outcome) never queue behind handlers: they run in their own group.
_CONTROL_CALLS = 16


def spawn_replica(cls: type[Agent], runtime: AgentRuntime, *, detached: bool = False) -> Any:
    """Start replica ``runtime.replica`` of agent ``runtime.name`` running ``cls``.

    Ray restarts it on a live node when its process or its node dies (``max_restarts=-1``,
    as pooled hosts), from the same class and runtime (its epoch and writer token); calls
    that ran there fail (``agent_died`` at the supervisor, which drives them again). A
    wedged one is killed for good and started anew by the supervisor, within the group's
    restart intensity: that replica is ``detached``, so it does not die with the
    supervisor's process. Replicas are spread over the cluster's nodes (Ray's ``SPREAD``),
    so that one node's loss takes only its share of an agent's replicas.
    """
    return spawn(
        AgentHost, cls, runtime,
        name=agent_actor_name(runtime.name, runtime.replica), namespace=runtime.namespace,
        max_restarts=-1, max_concurrency=cls.max_concurrency,
        concurrency_groups={CONTROL_GROUP: _CONTROL_CALLS}, detached=detached,
        scheduling_strategy="SPREAD",
    )  # fmt: skip
