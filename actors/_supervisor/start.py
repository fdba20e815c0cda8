"""Starting the namespace's supervisor actor, or joining it."""

from __future__ import annotations

import uuid
from typing import Any

import ray

from policies import Durability, RetryBudget, SupervisorRetention
from runtime import Clock, get_or_spawn

from .handle import Supervisor
from .host import SUPERVISOR_ACTOR, SupervisorHost

# An async actor runs at most this many calls at once; waiting subtasks are calls, so the
# bound is high, or heartbeats and cancels would queue behind them.
_SUPERVISOR_CONCURRENCY = 100_000


def start_supervisor(
    root: str,
    namespace: str,
    trace_id: str,
    *,
    clock: Clock | None,
    durability: Durability,
    retry_budget: RetryBudget | None,
    retention: SupervisorRetention | None = None,
) -> tuple[Supervisor, Any]:
    """Join the namespace's ``supervisor`` actor, or start it; returns the handle and the
    actor if this call started it (else None)."""
    actor, started = get_or_spawn(
        SupervisorHost, root, namespace, clock, durability,
        retry_budget=retry_budget, retention=retention, start_id=uuid.uuid4().hex,
        name=SUPERVISOR_ACTOR, namespace=namespace, storage=root,
        max_concurrency=_SUPERVISOR_CONCURRENCY,
    )  # fmt: skip
    if not started:
        return Supervisor(actor, trace_id, namespace), None
    ray.get(actor.overview.remote())
    return Supervisor(actor, trace_id, namespace), actor
