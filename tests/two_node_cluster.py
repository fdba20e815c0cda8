"""A two-node Ray cluster on one machine for tests: ``ray start --head`` and ``ray start
--address=...`` as a worker offering ``worker_node``, each with ports of its own, sharing one
temp folder of their own. Stopped by the PIDs whose command lines name that folder (never
a bare ``ray stop``, which would stop every Ray on the machine)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from waiting import wait_until

RAY = str(Path(sys.executable).with_name("ray"))
# Declare a dead node within about 10 s rather than Ray's default of about 30, and give a
# loaded machine time to start a node's agents (Ray's defaults fail at a load of 30).
SETTINGS = {
    "RAY_health_check_initial_delay_ms": "2000",
    "RAY_health_check_period_ms": "1000",
    "RAY_health_check_timeout_ms": "1000",
    "RAY_health_check_failure_threshold": "10",
    "RAY_agent_register_timeout_ms": "180000",
    "RAY_raylet_start_wait_time_s": "180",
}


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _node_ports() -> list[str]:
    names = (
        "--node-manager-port", "--object-manager-port", "--dashboard-agent-listen-port",
        "--dashboard-agent-grpc-port", "--runtime-env-agent-port", "--metrics-export-port",
    )  # fmt: skip
    return [f"{name}={port}" for name, port in zip(names, _free_ports(len(names)), strict=True)]


def pids_naming(text: str) -> list[int]:
    """The PIDs of this machine's processes whose command line contains ``text``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(int(entry.name))
    return found


@dataclass
class TwoNodes:
    address: str
    temp_dir: Path
    worker_manager_port: str
    env: dict[str, str]

    def worker_raylet_pid(self) -> int:
        """The raylet of the worker node, found by its node manager port."""
        port = self.worker_manager_port.partition("=")[2]
        (pid,) = [
            p
            for p in pids_naming(f"--node_manager_port={port}")
            if "raylet/raylet" in Path(f"/proc/{p}/cmdline").read_bytes().decode(errors="replace")
        ]
        return pid

    def status(self) -> dict[str, float]:
        """Alive nodes' resources, summed (from a short-lived driver)."""
        code = (
            f"import json, ray; ray.init(address={self.address!r}, logging_level='ERROR'); "
            "print(json.dumps(ray.cluster_resources()))"
        )
        try:
            done = subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, env=self.env,
                timeout=120,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            return {}
        if done.returncode:
            return {}
        return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _start(args: list[str], env: dict[str, str], nodes: TwoNodes, offered: str) -> None:
    """``ray start``, then wait for the node's resource to show. On a loaded machine ``ray
    start`` gives up after a fixed 30 s while the node it started is still coming up: the
    node's arrival, within a bound, is what counts."""
    done = subprocess.run(
        [RAY, "start", *args], capture_output=True, text=True, env=env, timeout=400
    )
    why = f"ray start {args}: {done.stdout[-1500:]} {done.stderr[-1500:]}"
    wait_until(lambda: nodes.status().get(offered), f"the node offering {offered}: {why}", 300)


@contextmanager
def two_nodes(folder: Path, pythonpath: str) -> Iterator[TwoNodes]:
    """A head (1 CPU) and a worker node (1 CPU, ``worker_node``), stopped at the end."""
    del folder  # Ray's socket paths must stay under 107 bytes: a short folder of its own
    temp_dir = Path(tempfile.mkdtemp(prefix="ac2n-", dir="/tmp"))
    gcs_port, client_port = _free_ports(2)
    env = {**os.environ, **SETTINGS, "PYTHONPATH": pythonpath, "RAY_AUTH_MODE": "token"}
    env.pop("RAY_ADDRESS", None)
    common = [
        "--num-cpus=1", "--disable-usage-stats", f"--temp-dir={temp_dir}",
        "--node-ip-address=127.0.0.1",
    ]  # fmt: skip
    head = [
        "--head", f"--port={gcs_port}", f"--ray-client-server-port={client_port}",
        "--include-dashboard=false", '--resources={"head_node": 1}', *common, *_node_ports(),
    ]  # fmt: skip
    worker_ports = _node_ports()
    worker = [
        f"--address=127.0.0.1:{gcs_port}", '--resources={"worker_node": 1}', *common,
        *worker_ports,
    ]  # fmt: skip
    nodes = TwoNodes(f"127.0.0.1:{gcs_port}", temp_dir, worker_ports[0], env)
    try:
        _start(head, env, nodes, "head_node")
        _start(worker, env, nodes, "worker_node")
        yield nodes
    finally:
        _stop(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)


def _stop(temp_dir: Path) -> None:
    """Kill what runs from ``temp_dir``, then wait until none is left."""
    for pid in pids_naming(str(temp_dir)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not pids_naming(str(temp_dir)), "the cluster's processes exited", 60)
