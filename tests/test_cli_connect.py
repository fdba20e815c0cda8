"""The command line as a user runs it, in its own process: it joins the cluster within a
bound or says in one line why not, never shows up as a job, and a ``--json`` command
prints exactly one JSON document on stdout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import ray
from bench_runs import ROOT
from resources_for_tests import Inventory

from actors import System

pytestmark = pytest.mark.ray

CONNECT_BOUND_S = 60.0  # the connect gives up after 5 s; the rest is Python and Ray imports


def agentcast(
    *argv: str, env: dict[str, str] | None = None, timeout: float = CONNECT_BOUND_S
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_MODE")}
    return subprocess.run(
        [sys.executable, "-m", "actors._cli.main", *argv], cwd=ROOT, env={**base, **(env or {})},
        capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


def address() -> str:
    return str(ray.get_runtime_context().gcs_address)


@pytest.mark.timeout(120)
def test_no_cluster_at_all_is_one_line(tmp_path: Path) -> None:
    empty = {"TMPDIR": str(tmp_path), "RAY_TMPDIR": str(tmp_path)}  # no `ray start` recorded
    done = agentcast("status", env=empty)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (
        "agentcast status: no Ray cluster found on this machine (none started by `ray start`, "
        "no RAY_ADDRESS): pass --address host:port (`agentcast demo --keep` and the examples "
        "print theirs)\n"
    )


@pytest.mark.timeout(120)
def test_an_unreachable_address_is_one_line_within_the_bound() -> None:
    began = time.monotonic()
    done = agentcast("status", "--address", "127.0.0.1:9", "--json")
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (
        "agentcast status: cannot reach a Ray cluster at 127.0.0.1:9: is it running? "
        "(pass --address host:port)\n"
    )
    assert time.monotonic() - began < CONNECT_BOUND_S


@pytest.mark.timeout(120)
def test_a_dashboard_address_in_ray_address_is_one_line() -> None:
    done = agentcast("status", env={"RAY_ADDRESS": "http://127.0.0.1:8265"})
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (
        "agentcast status: http://127.0.0.1:8265 is a dashboard address (as `ray job submit` "
        "takes): pass the cluster's GCS address, --address host:port (port 6379 for "
        "`ray start --head`)\n"
    )


@pytest.mark.timeout(180)
def test_status_joins_a_token_cluster_by_itself_and_is_no_job_on_the_dashboard(
    system: System,
) -> None:
    system.resource(Inventory, name="inventory")
    if os.environ.get("RAY_AUTH_MODE") != "token":
        pytest.skip("the test cluster runs without token authentication")
    refused = agentcast("status", "--address", address(), env={"RAY_AUTH_MODE": "disabled"})
    assert (refused.returncode, refused.stdout) == (1, "")
    assert refused.stderr == (
        f"agentcast status: the Ray cluster at {address()} requires a token and "
        "RAY_AUTH_MODE=disabled here: set RAY_AUTH_MODE=token (the token: ~/.ray/auth_token or "
        "RAY_AUTH_TOKEN)\n"
    )
    before = _jobs()
    # No mode set: the CLI finds the token itself.
    done = agentcast("status", "--address", address(), "--namespace", system.namespace, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["systems"][0]["namespace"] == system.namespace
    new = {job: ns for job, ns in _jobs().items() if job not in before}
    # Its driver ran in an internal namespace, which the dashboard's Jobs page leaves out.
    assert list(new.values()) == ["_ray_internal_agentcast_cli"]


def _jobs() -> dict[str, str]:
    from ray._private.state import state
    from ray.core.generated import gcs_pb2

    table: Any = gcs_pb2.JobTableData  # type: ignore[attr-defined]
    blobs = state._connect_and_get_accessor().get_job_table(
        skip_submission_job_info_field=True, skip_is_running_tasks_field=True
    )
    jobs = [table.FromString(blob) for blob in blobs]
    return {job.job_id.hex(): job.config.ray_namespace for job in jobs}


@pytest.mark.timeout(180)
def test_every_json_command_prints_one_document(system: System) -> None:
    inventory = system.resource(Inventory, name="inventory")
    inventory.write("restock", "A", 1).unwrap()
    system.budget.status()
    storage = ["--storage", str(system.root)]
    commands = [
        ["status", "--address", address(), "--json"],
        ["budget", "--address", address(), "--namespace", system.namespace, *storage, "--json"],
        ["budget", "--address", address(), "--namespace", system.namespace, *storage, "--json",
         "--events"],
        ["log", "inventory", *storage, "--json"],
        ["trace", system.trace_id, *storage, "--json"],
    ]  # fmt: skip
    for argv in commands:
        done = agentcast(*argv)
        assert done.returncode == 0, (argv, done.stderr)
        assert isinstance(json.loads(done.stdout), dict | list), argv  # the whole stdout


@pytest.mark.timeout(120)
def test_log_follow_prints_each_new_write_as_it_commits(system: System) -> None:
    inventory = system.resource(Inventory, name="inventory")
    inventory.write("restock", "A", 1).unwrap()
    argv = ["log", "inventory", "--storage", str(system.root), "--follow", "--json"]
    base = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    follower = subprocess.Popen(
        [sys.executable, "-m", "actors._cli.main", *argv], cwd=ROOT, env=base,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert follower.stdout is not None
        first = json.loads(follower.stdout.readline())
        inventory.write("reserve", "A", 1).unwrap()
        second = json.loads(follower.stdout.readline())  # bounded by the test's timeout
        assert [(r["version"], r["op"], r["changes"]) for r in (first, second)] == [
            (1, "restock", [{"key": "A", "after": 1}]),
            (2, "reserve", [{"key": "A", "before": 1, "after": 0}]),
        ]
    finally:
        follower.terminate()
        follower.wait(timeout=30)
