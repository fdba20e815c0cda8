"""A running system on each storage backend: a temp folder (SQLite) and a fresh schema
prefix in the session's PostgreSQL (``postgres_server``). Import the fixture into a test
module as ``from backends import any_system as any_system``."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from postgres_server import fresh

from actors import System


@pytest.fixture(params=["sqlite", "postgresql"])
def any_system(
    request: pytest.FixtureRequest, ray_session: None, tmp_path: Path
) -> Iterator[System]:
    """A system started on the backend of the test's parameter, shut down after it."""
    if request.param == "sqlite":
        storage: str | Path = tmp_path / "storage"
    else:
        storage = fresh(request.getfixturevalue("postgres_url"))
    started = System.start(storage, namespace=f"test-{uuid.uuid4().hex[:12]}")
    yield started
    started.shutdown()
