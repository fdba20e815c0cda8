"""One local Ray for the whole test session; each test gets its own namespace and storage.
The tests that take no Ray run first, the quick benches beside them (``bench_runs.py``)."""

from __future__ import annotations

import importlib
import logging
import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import ray
from bench_runs import TEST_TIMEOUT_S, QuickBenches
from hypothesis import settings

# PostgreSQL for the tests that run on it (started once, on first use).
from postgres_server import postgres_url as postgres_url
from postgres_server import store_root as store_root
from ray._private import auto_init_hook

from actors import System

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

# No test is timed (speed is measured in benchmarks, and the tests that take no Ray share
# the machine with the quick benches): no per-example deadline for Hypothesis.
settings.register_profile("agentcast", deadline=None)
settings.load_profile("agentcast")


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


# A test reaches Ray through ``ray_session`` only: Ray's start on first use (a default
# cluster, without the tests' import path for its workers) is off in this process, so a
# test that touches Ray without the fixture fails where it does so.
auto_init_hook.enable_auto_connect = False


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    if ray.is_initialized():
        raise RuntimeError("Ray was started in this process before the session's Ray")
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


# -- the order of the session, and the quick benches in its background ---------------------


def _runs_without_ray(item: pytest.Item) -> bool:
    return not any(item.get_closest_marker(name) for name in ("ray", "slow"))


@pytest.hookimpl(tryfirst=True)  # before ``-m`` selects on the markers
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark ``ray`` every test on the session's Ray (the marker follows the fixture, so
    ``-m "not ray"`` never starts one), and ``slow`` every ``quick_bench`` test. Order:
    the tests that take no Ray first (one core), while the quick benches run on the other
    (``quick_benches``); then the quick benches' tests; then the rest, each group in the
    order collected."""
    for item in items:
        if "ray_session" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.ray)
        if _quick(item):  # a wait for its run, bounded by every run before it
            item.add_marker(pytest.mark.slow)
            item.add_marker(pytest.mark.timeout(TEST_TIMEOUT_S))
    items.sort(key=lambda item: 0 if _runs_without_ray(item) else 1 if _quick(item) else 2)


def _quick(item: pytest.Item) -> str | None:
    marker = item.get_closest_marker("quick_bench")
    return None if marker is None else str(marker.args[0])


@pytest.fixture(scope="session", autouse=True)
def quick_benches(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[QuickBenches]:
    """The quick runs of every selected ``quick_bench`` test, started before the first test."""
    targets = [target for item in request.session.items if (target := _quick(item))]
    started = QuickBenches(targets, tmp_path_factory.mktemp("quick-benches"))
    yield started
    started.close()


@pytest.fixture
def quick_bench_report(request: pytest.FixtureRequest, quick_benches: QuickBenches) -> Any:
    """The report of the quick run this test is marked with (``quick_bench(target)``)."""
    target = _quick(request.node)
    assert target is not None, "mark the test quick_bench(<target>)"
    return quick_benches.report(target)
