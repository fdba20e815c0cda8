"""The glue that spawns a plain class as a named Ray actor with agentcast's options."""

from __future__ import annotations

import logging
import os
from typing import Any

import ray

from ._storage import is_shared
from ._tracing import otel_environment
from .errors import ConfigurationError

STATE_RESOURCE = "agentcast_state"
"""Custom resource of the node that holds the storage; state actors are pinned to it."""


def resource_actor_name(name: str) -> str:
    return f"resource:{name}"


def agent_actor_name(name: str, replica: int) -> str:
    return f"agent:{name}:{replica}"


def state_pinning() -> dict[str, float]:
    """Ray ``resources`` that pin a state actor to the storage node.

    On a single-node cluster without the custom resource there is nothing to pin to and
    nothing to get wrong, so no pinning is asked for.

    Raises:
        ConfigurationError: a multi-node cluster without a node offering
            ``agentcast_state``: state actors could land away from their storage.
    """
    if ray.cluster_resources().get(STATE_RESOURCE, 0) > 0:  # type: ignore[no-untyped-call]
        return {STATE_RESOURCE: 0.001}
    if len([n for n in ray.nodes() if n.get("Alive")]) > 1:  # type: ignore[no-untyped-call]
        raise ConfigurationError(
            f"multi-node cluster without the custom resource {STATE_RESOURCE!r} on the "
            "storage node: start the head with it (see cluster.yaml)"
        )
    return {}


def state_placement(storage: str) -> dict[str, Any]:
    """Ray options of a state actor on ``storage``: with SQLite files, pinned to the node
    that holds them (``state_pinning``); with PostgreSQL, which every node reaches, spread
    over the cluster, so that it starts and restarts on any live node.

    Raises:
        ConfigurationError: as ``state_pinning``.
    """
    if is_shared(storage):
        return {"scheduling_strategy": "SPREAD"}
    return {"resources": state_pinning()}


# long: every option an actor is spawned with, in the one place that sets them
def spawn(
    cls: type,
    *args: Any,
    name: str,
    namespace: str,
    max_restarts: int = -1,
    max_concurrency: int | None = None,
    storage: str | None = None,
    concurrency_groups: dict[str, int] | None = None,
    detached: bool = False,
    scheduling_strategy: str | None = None,
    **kwargs: Any,
) -> Any:
    """Start ``cls`` as the named actor ``name`` in ``namespace`` and return its handle.

    ``max_task_retries`` is always 0: Ray's own retries would run a call twice and lose
    ordering; agentcast retries itself, with idempotency keys. A state actor names its
    ``storage``: where it may run (``state_placement``). ``concurrency_groups`` are extra
    groups for ``ray.method(concurrency_group=...)`` methods; the default group runs
    ``max_concurrency`` calls. A ``detached`` actor outlives its spawner; a
    ``scheduling_strategy`` is Ray's (``"SPREAD"``, say).
    """
    options: dict[str, Any] = {
        "name": name, "namespace": namespace, "num_cpus": 0, "max_restarts": max_restarts,
        "max_task_retries": 0,
    }  # fmt: skip
    if max_concurrency is not None:
        options["max_concurrency"] = max_concurrency
    if storage is not None:  # a state actor: near its files, or anywhere (PostgreSQL)
        options.update(state_placement(storage))
    if detached:
        options["lifetime"] = "detached"
    if scheduling_strategy is not None:
        options["scheduling_strategy"] = scheduling_strategy
    if otel := otel_environment():  # so that the actor traces as its spawner does
        options["runtime_env"] = {"env_vars": otel}
    # Concurrency groups are read by ray.remote(...), not by .options(...).
    groups: dict[str, Any] = (
        {"concurrency_groups": concurrency_groups} if concurrency_groups else {}
    )
    remote: Any = ray.remote(**groups) if groups else ray.remote
    return remote(cls).options(**options).remote(*args, **kwargs)


def get_or_spawn(
    cls: type, *args: Any, name: str, namespace: str, **options: Any
) -> tuple[Any, bool]:
    """The running named actor ``name`` of ``namespace``, or ``cls`` started as it with
    ``spawn``'s ``options``: ``(actor, started)``. Two processes starting it at once get
    the same actor (the one that loses the race joins the other's).

    Raises:
        ConfigurationError: as ``spawn`` (a state actor away from its storage), or the
            actor that won the race is gone already.
    """
    try:
        return lookup(name, namespace), False
    except ConfigurationError:
        pass
    try:
        return spawn(cls, *args, name=name, namespace=namespace, **options), True
    except ValueError:  # another process started it meanwhile
        return lookup(name, namespace), False


def lookup(name: str, namespace: str) -> Any:
    """The handle of a running named actor.

    Raises:
        ConfigurationError: no such actor.
    """
    try:
        return ray.get_actor(name, namespace=namespace)
    except ValueError as error:
        raise ConfigurationError(f"no actor {name!r} in namespace {namespace!r}") from error


def start_local_ray(namespace: str, num_cpus: int | None, dashboard: bool) -> None:
    """A local Ray for this process, with the custom resource that state actors need."""
    ray.init(
        address="local",
        num_cpus=num_cpus or os.cpu_count() or 2,
        resources={STATE_RESOURCE: 1_000_000},
        include_dashboard=dashboard,
        dashboard_host="127.0.0.1",
        namespace=namespace,
        logging_level=logging.WARNING,
        log_to_driver=False,
    )


def named_actors(namespace: str, prefix: str) -> dict[str, Any]:
    """The running named actors of ``namespace`` whose names start with ``prefix``.

    Raises:
        ConfigurationError: one of them went away while they were looked up.
    """
    return {
        entry["name"]: lookup(entry["name"], namespace)
        for entry in ray.util.list_named_actors(all_namespaces=True)
        if entry["namespace"] == namespace and entry["name"].startswith(prefix)
    }
