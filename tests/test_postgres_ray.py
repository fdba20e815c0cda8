"""A system on PostgreSQL, on a real local Ray: a resource, the supervisor, the budget and
the agent registry keep their state in one database (a schema each), a killed state actor
comes back from it, and a second system on the same URL finds everything."""

from __future__ import annotations

import uuid

import psycopg
import pytest
import ray
from budget_agents_for_tests import Ask, Asker
from postgres_server import fresh
from resources_for_tests import Inventory
from supervised_agents import Done, Job, Worker
from waiting import wait_until

from actors import System
from policies import BudgetPolicy, Metering
from runtime import PgLocation, is_shared, storage_root
from runtime.testing import ScriptedModel

pytestmark = [pytest.mark.ray, pytest.mark.timeout(240)]


def _schemas(url: str, prefix: str) -> set[str]:
    with psycopg.connect(url.partition("#")[0], autocommit=True) as conn:
        rows = conn.execute(
            "SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE %s",
            (f"{prefix}/%",),
        ).fetchall()
    return {row[0].removeprefix(f"{prefix}/") for row in rows}


def test_a_storage_url_names_postgresql_and_state_actors_are_not_pinned() -> None:
    root = storage_root("postgresql://u@db.internal:5432/agents#shop")
    assert isinstance(root, PgLocation) and is_shared(root) and is_shared(str(root))
    assert (root / "resources" / "inventory.sqlite").schema == "shop/resources/inventory"
    assert (
        str(root / "supervisor.sqlite")
        == "postgresql://u@db.internal:5432/agents#shop/supervisor.sqlite"
    )
    assert storage_root(str(root)) == root  # the string a host receives opens the same place
    long = root / "resources" / f"{'x' * 128}.sqlite"
    assert len(long.schema.encode()) <= 63 and long.schema != (root / "resources" / "y").schema
    assert not is_shared("/var/lib/agentcast")


def test_resource_supervisor_and_budget_keep_their_state_in_postgresql(
    ray_session: None, postgres_url: str
) -> None:
    url = fresh(postgres_url)
    namespace = f"test-{uuid.uuid4().hex[:12]}"
    policy = BudgetPolicy(metering=Metering.PER_CALL)
    with System.start(url, namespace=namespace, budgets=policy) as system:
        inventory = system.resource(Inventory, name="inventory", writers=["workers", "system"])
        system.agent(Worker, name="workers", replicas=2)
        asker = system.agent(Asker, name="askers", model=ScriptedModel(default_reply="fine"))
        handles = [
            system.supervisor.submit(Job(key=f"k{i}", writes=2), to="workers", expect=Done)
            for i in range(5)
        ]
        assert sorted(h.result(timeout=120).key for h in handles) == [f"k{i}" for i in range(5)]
        asker.ask(Ask(prompt="how many?"))
        actor = ray.get_actor("resource:inventory", namespace=namespace)
        ray.kill(actor, no_restart=False)  # it recovers from PostgreSQL
        wait_until(lambda: _read_after_restart(inventory) == 10, "the restarted resource")
        assert [r.version for r in system.log("inventory").records()] == list(range(1, 11))
        assert len(system.supervisor.handoffs()) == 5
        spent = system.budget.status().spend(run=system.trace_id, agent="askers", target="scripted")
        assert spent["calls"] == 1
    prefix = url.partition("#")[2]
    assert {"system", "supervisor", "budget", "resources/inventory"} <= _schemas(url, prefix)
    with System.start(url, namespace=f"{namespace}-again") as again:  # a new cluster, same URL
        assert again.resource(Inventory, name="inventory").read("available", "A").value == 10


def _read_after_restart(inventory: object) -> int | None:
    try:
        return int(inventory.read("available", "A").value)  # type: ignore[attr-defined]
    except Exception:  # still restarting
        return None
