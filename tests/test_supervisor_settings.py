"""The supervisor's configuration survives its restart, and a new start replaces it.

``configure(retry_budget=)``, ``configure_group`` and ``declare_stage`` used to live only in
the supervisor actor's memory: a restart by Ray silently fell back to the values of the spawn.
"""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest
import ray
from supervised_agents import Job, StrictDone, Worker

from actors import System
from actors._supervisor.settings import Configuration
from actors._supervisor.spec import StageRule
from actors._supervisor.store import SubtaskStore
from policies import Provenance, RestartIntensity, RetryBudget, RetryPolicy
from runtime import transaction

ORIGINAL = RetryBudget(ratio=0.5, min_retries_per_window=1)
CONFIGURED = RetryBudget(ratio=0.1, min_retries_per_window=2, window=timedelta(seconds=30))
INTENSITY = RestartIntensity(max_restarts=0, within=timedelta(seconds=1.5))
RULE = StageRule(
    requires=Provenance.VERIFIED, verifier="checker", verify_within=timedelta(seconds=7)
)


def configure_everything(root: Path) -> None:
    store = SubtaskStore(root)
    assert store.settings.begin("start-1", ORIGINAL) == Configuration(retry_budget=ORIGINAL)
    store.settings.save_retry_budget(CONFIGURED)
    store.settings.save_group("workers", INTENSITY)
    store.settings.save_stage("write", 2.5, None)
    store.settings.save_stage("publish", None, RULE)
    store.close()


def test_a_restart_of_the_same_start_reloads_what_was_configured(tmp_path: Path) -> None:
    configure_everything(tmp_path)
    reopened = SubtaskStore(tmp_path)
    assert reopened.settings.begin("start-1", ORIGINAL) == Configuration(
        retry_budget=CONFIGURED,
        groups={"workers": INTENSITY},
        stages={"write": (2.5, None), "publish": (None, RULE)},
    )


def test_a_stage_stored_before_stages_had_rules_loads_as_a_window(tmp_path: Path) -> None:
    store = SubtaskStore(tmp_path)
    store.settings.begin("start-1", None)
    with transaction(store._conn, "old stage row") as conn:  # the form older versions wrote
        conn.execute("INSERT INTO settings(kind, name, value) VALUES ('stage', 'old', '4.0')")
    store.close()
    loaded = SubtaskStore(tmp_path).settings.begin("start-1", None)
    assert loaded.stages == {"old": (4.0, None)}


def test_a_new_start_replaces_an_earlier_start_s_configuration(tmp_path: Path) -> None:
    configure_everything(tmp_path)
    assert SubtaskStore(tmp_path).settings.begin("start-2", None) == Configuration()
    # and that fresh configuration is what a restart of start-2 finds
    assert SubtaskStore(tmp_path).settings.begin("start-2", ORIGINAL) == Configuration()


def test_no_retry_budget_configured_is_stored_as_none(tmp_path: Path) -> None:
    store = SubtaskStore(tmp_path)
    store.settings.begin("start-1", ORIGINAL)
    store.settings.save_retry_budget(None)
    assert SubtaskStore(tmp_path).settings.begin("start-1", ORIGINAL) == Configuration()


@pytest.mark.ray
@pytest.mark.timeout(180)
def test_a_declared_stage_still_stalls_after_the_supervisor_restarts(system: System) -> None:
    system.agent(Worker, name="workers", replicas=1)
    system.supervisor.declare_stage("write", timedelta(seconds=0.5))
    system.supervisor.configure(retry_budget=CONFIGURED)
    ray.kill(system.supervisor.actor, no_restart=False)
    handle = system.supervisor.submit(
        Job(key="a"), to="workers", expect=StrictDone, next_stage="write",
        retry=RetryPolicy(max_attempts=1),
    )  # fmt: skip
    handle.result(timeout=120)
    ends = time.monotonic() + 60
    while not system.supervisor.status()["stalls"]:
        assert time.monotonic() < ends, "the stage declared before the restart never stalled"
        time.sleep(0.05)
    assert [s["stage"] for s in system.supervisor.status()["stalls"]] == ["write"]
