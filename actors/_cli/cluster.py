"""What the command line sees of a cluster: every agentcast actor, by namespace, with its
state, alive or not, read from the GCS actor table (no dashboard needed)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import ray

from runtime import ConfigurationError

_FAMILIES = ("resource:", "agent:", "agent-host:")
_SINGLES = ("supervisor", "budget", "locks", "events")
ASK_TIMEOUT_S = 10.0
"""How long a command waits for one actor's answer before it reports it unavailable."""


@dataclass(frozen=True, slots=True)
class ActorRow:
    """One named actor as the GCS knows it.

    Attributes:
        name: its name (``resource:inventory``, ``agent:shop:0``, ``supervisor``, ...).
        namespace: its Ray namespace.
        state: ``ALIVE``, ``RESTARTING``, ``DEAD``, or ``PENDING_CREATION``.
        restarts: how many times Ray restarted it.
        repr: what the dashboard shows for it (its ``__repr__``).
    """

    name: str
    namespace: str
    state: str
    restarts: int
    repr: str

    @property
    def alive(self) -> bool:
        return self.state == "ALIVE"


def is_agentcast(name: str) -> bool:
    """Whether an actor's name is one agentcast gives its actors."""
    return name in _SINGLES or name.startswith(_FAMILIES)


def agentcast_actors() -> dict[str, dict[str, ActorRow]]:
    """Every agentcast actor of the cluster, by namespace and name; of several actors
    that held one name (a replica killed and started again), the newest."""
    from ray._private.state import state
    from ray.core.generated import gcs_pb2

    table: Any = gcs_pb2.ActorTableData  # type: ignore[attr-defined]
    newest: dict[tuple[str, str], tuple[int, ActorRow]] = {}
    for blob in state._connect_and_get_accessor().get_actor_table(None, None):
        data = table.FromString(blob)
        if not data.name or not is_agentcast(data.name):
            continue
        row = ActorRow(
            data.name, data.ray_namespace, table.ActorState.Name(data.state),
            data.num_restarts, data.repr_name,
        )  # fmt: skip
        key = (row.namespace, row.name)
        if key not in newest or newest[key][0] <= data.start_time:
            newest[key] = (data.start_time, row)
    found: dict[str, dict[str, ActorRow]] = {}
    for (namespace, name), (_, row) in sorted(newest.items()):
        found.setdefault(namespace, {})[name] = row
    return found


def live_namespaces(actors: dict[str, dict[str, ActorRow]]) -> list[str]:
    """The namespaces where some agentcast actor is alive: the running systems."""
    return sorted(
        ns for ns, rows in actors.items() if any(r.state != "DEAD" for r in rows.values())
    )


def ask(row: ActorRow, method: str, *args: Any, timeout: float | None = None) -> Any:
    """Call ``method`` on the actor of ``row`` and wait for the answer.

    Raises:
        ConfigurationError: it did not answer within ``timeout`` (default
            ``ASK_TIMEOUT_S``) or failed; one line.
    """
    timeout = ASK_TIMEOUT_S if timeout is None else timeout
    try:
        actor = ray.get_actor(row.name, namespace=row.namespace)
        return ray.get(getattr(actor, method).remote(*args), timeout=timeout)
    except ray.exceptions.GetTimeoutError as error:
        raise ConfigurationError(f"no answer within {timeout:g}s") from error
    except Exception as error:  # dead, restarting, or failed: said in one line
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise ConfigurationError(f"{type(error).__name__}: {first}"[:200]) from error
