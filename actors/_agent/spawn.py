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

    Ray never restarts it (``max_restarts=0``): the supervisor does, within the group's
    restart intensity. A replica the supervisor restarts is ``detached``, so it does not
    die with the supervisor's process. Replicas are spread over the cluster's nodes (Ray's
    ``SPREAD``), so that one node's loss takes only its share of an agent's replicas.
    """
    return spawn(
        AgentHost, cls, runtime,
        name=agent_actor_name(runtime.name, runtime.replica), namespace=runtime.namespace,
        max_restarts=0, max_concurrency=cls.max_concurrency,
        concurrency_groups={CONTROL_GROUP: _CONTROL_CALLS}, detached=detached,
        scheduling_strategy="SPREAD",
    )  # fmt: skip
