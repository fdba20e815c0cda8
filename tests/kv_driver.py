"""A driver for tests/test_pooled_kv.py, run as its own process on the tests' Ray: it
starts pooled agents (each host keeps its membership in Ray's key-value store), writes
the ready file, and waits to be killed: it never calls ``System.shutdown``."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import ray
from supervised_agents import Done, Job, Worker

from actors import System
from policies import HostPolicy


def main(config: dict[str, str]) -> None:
    ray.init(
        address=config["address"], namespace=config["namespace"],
        runtime_env={"env_vars": {"PYTHONPATH": config["pythonpath"]}},
    )  # fmt: skip
    system = System.connect(
        config["address"], storage=config["storage"], namespace=config["namespace"]
    )
    group = system.agent(
        Worker, name="orphans", replicas=2, placement="pooled",
        hosts=HostPolicy(agents_per_host=1),
    )  # fmt: skip
    assert group.ask(Job(key="x"), timeout=120) == Done(key="x", replica=0)
    Path(config["ready"]).touch()
    time.sleep(600)  # killed by the test long before


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
