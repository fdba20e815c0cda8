"""On PostgreSQL, the model calls of pooled agents go to one store per host, with one
connection: the server's connections do not grow with the agents that make calls (thousands
of pooled agents would otherwise exhaust ``max_connections``), and every call is still
stored under its own agent and replica."""

from __future__ import annotations

import uuid

import psycopg
import pytest
import ray
from model_call_agents import Chat, Chatty, Usage, chatty_model
from postgres_server import fresh

from actors import System
from actors._agent.model_calls import calls_folder
from policies import HostPolicy
from runtime import PgLocation, stores_in

pytestmark = [pytest.mark.ray, pytest.mark.timeout(300)]

AGENTS = 12


def _connections(url: str) -> int:
    """The server's client connections to the database, other than this one."""
    with psycopg.connect(url.partition("#")[0], autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_pooled_agents_of_one_host_share_one_connection_for_their_model_calls(
    ray_session: None, postgres_url: str
) -> None:
    url = fresh(postgres_url)
    with System.start(url, namespace=f"test-{uuid.uuid4().hex[:12]}") as system:
        group = system.agent(
            Chatty, name="chatty", replicas=AGENTS, placement="pooled",
            hosts=HostPolicy(agents_per_host=AGENTS), model=chatty_model(),
        )  # fmt: skip
        first = ray.get(group.call(Chat(prompts=["hi"]), replica=0), timeout=120)
        assert first == Usage(tokens=first.tokens, failed=0) and len(first.tokens) == 1
        before = _connections(url)  # the host's store is open now
        refs = [group.call(Chat(prompts=["hi", "long"]), replica=i) for i in range(AGENTS)]
        assert [len(u.tokens) for u in ray.get(refs, timeout=120)] == [2] * AGENTS
        assert _connections(url) == before  # a constant, not one more per agent
        root = PgLocation(url)
        assert stores_in(calls_folder(root)) == ["@agent-host.0"]
        schema = (calls_folder(root) / "@agent-host.0.sqlite").schema
        with psycopg.connect(url.partition("#")[0], autocommit=True) as conn:
            rows = conn.execute(
                f'SELECT agent, replica, count(*) FROM "{schema}".calls GROUP BY agent, replica'
            ).fetchall()
        assert sorted(rows) == [("chatty", 0, 3)] + [("chatty", i, 2) for i in range(1, AGENTS)]
