"""One local Ray for the whole test session; each test gets its own namespace and storage."""

from __future__ import annotations

import importlib
import logging
import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import ray

# PostgreSQL for the tests that run on it (started once, on first use).
from postgres_server import postgres_url as postgres_url
from postgres_server import store_root as store_root

from actors import System

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def import_example(name: str) -> ModuleType:
    """Import ``examples/<name>.py`` as the module ``name``, as Ray workers will."""
    sys.path.insert(0, str(EXAMPLES))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(EXAMPLES))


def _worker_path() -> str:
    paths = [str(Path(__file__).resolve().parent), str(EXAMPLES)]
    if os.environ.get("PYTHONPATH"):
        paths.append(os.environ["PYTHONPATH"])
    return os.pathsep.join(paths)


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    if not ray.is_initialized():
        ray.init(
            address="local",
            num_cpus=2,
            resources={"agentcast_state": 1_000_000},
            include_dashboard=False,
            logging_level=logging.WARNING,
            log_to_driver=False,
            # Workers import the tests' own resources and agents by reference.
            runtime_env={"env_vars": {"PYTHONPATH": _worker_path()}},
        )
    yield
    ray.shutdown()


@pytest.fixture
def system(ray_session: None, tmp_path: Path) -> Iterator[System]:
    started = System.start(tmp_path / "storage", namespace=f"test-{uuid.uuid4().hex[:12]}")
    yield started
    started.shutdown()
