"""The dispatcher's retention round: each resource deletes the events every consumer
group is done with and retention lets go; old dead letters are pruned."""

from __future__ import annotations

import asyncio
import contextlib

from policies import EventsPolicy
from runtime import Clock, lookup, resource_actor_name

from .core import DispatchCore


async def trim_retained(
    core: DispatchCore, policy: EventsPolicy, clock: Clock, namespace: str
) -> dict[str, int]:
    """Ask every resource of ``namespace`` to trim; how many events each deleted."""
    trimmed = {}
    before = (clock.now() - policy.retention).isoformat()
    for resource in core.resources():
        upto = core.horizon(resource)
        if upto == 0:
            continue
        with contextlib.suppress(Exception):  # not running: trimmed on a later round
            actor = lookup(resource_actor_name(resource), namespace)
            ref = actor.trim_events.remote(upto, before, policy.trim_batch)
            trimmed[resource] = await asyncio.wait_for(ref, 30)
    dead_before = clock.now() - policy.dead_letter_retention
    core.dead.prune(dead_before.isoformat(), policy.trim_batch)
    return trimmed
