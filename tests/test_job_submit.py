"""`ray job submit --working-dir .` on a head started the way the docs say (docs/job-submit.md).

The test starts its own head (own temp dir, free ports, its own token) and stops it by the pids
it started, so it never touches another Ray on the machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from runtime import STATE_RESOURCE

# Its own head, then each job up to JOB_TIMEOUT_S: longer than the default test timeout.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
RAY = str(VENV_BIN / "ray")
EXAMPLE = ["python", "examples/inventory_race.py", "--quick"]
ORPHANED = ["python", "examples/orphaned_subtasks.py", "--quick"]
HEAD_READY_TIMEOUT_S = 60.0
JOB_TIMEOUT_S = 150.0


@dataclass(frozen=True)
class Head:
    dashboard_url: str
    temp_dir: Path
    storage: Path
    token: str
    client_env: dict[str, str]


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("", port))
        except OSError:
            return False
    return True


def _free_worker_port_range(size: int = 200) -> tuple[int, int]:
    """A range below Linux's ephemeral ports and away from Ray's default 10002-19999."""
    for _ in range(50):
        low = random.randrange(20_000, 32_000 - size)
        if all(_bindable(port) for port in range(low, low + size)):
            return low, low + size - 1
    raise RuntimeError("no free range of worker ports")


def _base_env() -> dict[str, str]:
    """This environment without any RAY_* setting that could point at another cluster."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"  # an activated venv
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    return env


def _head_command(temp_dir: Path) -> tuple[list[str], str]:
    (gcs, dashboard, client, node_manager, object_manager, agent_listen, agent_grpc, metrics,
     runtime_env_agent) = _free_ports(9)  # fmt: skip
    low, high = _free_worker_port_range()
    command = [
        RAY, "start", "--head", "--block",
        "--resources", json.dumps({STATE_RESOURCE: 1_000_000}),
        "--num-cpus", "2",
        "--dashboard-host", "127.0.0.1",
        "--temp-dir", str(temp_dir),
        "--port", str(gcs),
        "--dashboard-port", str(dashboard),
        "--ray-client-server-port", str(client),
        "--node-manager-port", str(node_manager),
        "--object-manager-port", str(object_manager),
        "--dashboard-agent-listen-port", str(agent_listen),
        "--dashboard-agent-grpc-port", str(agent_grpc),
        "--metrics-export-port", str(metrics),
        "--runtime-env-agent-port", str(runtime_env_agent),
        "--min-worker-port", str(low),
        "--max-worker-port", str(high),
        "--disable-usage-stats",
    ]  # fmt: skip
    return command, f"http://127.0.0.1:{dashboard}"


def _http_status(url: str, token: str | None) -> int:
    request = urllib.request.Request(url)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return 0


def _wait_until_serving(head: Head, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + HEAD_READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"ray start exited with {process.returncode}:\n{log.read_text()}")
        if _http_status(f"{head.dashboard_url}/api/jobs/", head.token) == 200:
            return
        time.sleep(0.5)
    pytest.fail(f"the head's job API did not come up:\n{log.read_text()}")


def _processes_of(session_leader: int, temp_dir: Path) -> list[int]:
    """Pids of what the head started: its session, plus anything living in its temp dir
    (job drivers run in their own session, with their working dir under the temp dir)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if int(fields[3]) == session_leader or str(temp_dir) in cmdline + " " + cwd:
            found.append(int(entry.name))
    return found


def _stop_head(process: subprocess.Popen[bytes], temp_dir: Path) -> None:
    """SIGTERM to `ray start --block` shuts its node down; anything left is killed by pid."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    deadline = time.monotonic() + 10
    while (left := _processes_of(process.pid, temp_dir)) and time.monotonic() < deadline:
        time.sleep(0.5)
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def head() -> Iterator[Head]:
    temp_dir = Path(tempfile.mkdtemp(prefix="acjob-"))  # short: Ray's socket paths are limited
    token = secrets.token_hex(32)
    token_path = temp_dir / "auth_token"
    token_path.write_text(token)
    token_path.chmod(0o600)
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token_path)}
    storage = temp_dir / "agentcast-state"
    command, dashboard_url = _head_command(temp_dir)
    head_env = {**_base_env(), **auth, "AGENTCAST_STORAGE": str(storage)}
    log = temp_dir / "head.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            cwd=REPO,
            env=head_env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    started = Head(dashboard_url, temp_dir, storage, token, {**_base_env(), **auth})
    try:
        _wait_until_serving(started, process, log)
        yield started
    finally:
        _stop_head(process, temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)


def _ray(head: Head, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [RAY, *args],
        cwd=REPO,
        env=head.client_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _job_status(head: Head, job_id: str) -> str:
    request = urllib.request.Request(f"{head.dashboard_url}/api/jobs/{job_id}")
    request.add_header("Authorization", f"Bearer {head.token}")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=10) as response:
        return str(json.load(response)["status"])


def _lost_count(logs: str, name: str) -> int:
    match = re.search(rf"^{name}\b[^\n]*?\blost\b[^\d\n]*(\d+)", logs, re.MULTILINE)
    assert match, f"no '{name} ... lost' summary line in the job logs:\n{logs}"
    return int(match.group(1))


def _uploaded_package(head: Head) -> Path:
    unpacked = head.temp_dir / "session_latest" / "runtime_resources" / "working_dir_files"
    packages = [p for p in unpacked.glob("_ray_pkg_*") if p.is_dir()]
    assert len(packages) == 1, packages
    return packages[0]


def test_the_head_refuses_clients_without_the_token(head: Head) -> None:
    assert _http_status(f"{head.dashboard_url}/api/jobs/", None) == 401
    assert _http_status(f"{head.dashboard_url}/api/jobs/", "not-the-token") == 403


def _submit_and_read_logs(head: Head, command: list[str]) -> str:
    """Submit ``command`` with the repo as working dir; assert it succeeded; its logs."""
    submitted = _ray(
        head,
        "job", "submit", "--address", head.dashboard_url, "--working-dir", ".", "--", *command,
        timeout=JOB_TIMEOUT_S,
    )  # fmt: skip
    output = submitted.stdout + submitted.stderr
    assert submitted.returncode == 0, output
    match = re.search(r"Job '([\w-]+)' submitted successfully", output)
    assert match, output
    job_id = match.group(1)
    assert _job_status(head, job_id) == "SUCCEEDED", output
    logs = _ray(head, "job", "logs", "--address", head.dashboard_url, job_id, timeout=60)
    assert logs.returncode == 0, logs.stderr
    return logs.stdout


def test_job_submit_runs_the_inventory_race_on_the_cluster(head: Head) -> None:
    logs = _submit_and_read_logs(head, EXAMPLE)
    # The 6 naive agents' first writes rest on one reading: at least 5 are overwritten.
    assert _lost_count(logs, "naive") >= 5, logs
    assert _lost_count(logs, "agentcast") == 0, logs

    package = _uploaded_package(head)
    for module in ("actors", "runtime", "policies"):
        assert (package / module / "__init__.py").is_file()
    for left_behind in (".venv", ".agentcast", ".git"):
        assert not (package / left_behind).exists(), f"{left_behind} was uploaded"
    # The state actors wrote to the head's storage folder, not into the job's package.
    assert any(head.storage.iterdir())


def test_job_submit_runs_the_orphaned_subtasks_example_on_the_cluster(head: Head) -> None:
    logs = _submit_and_read_logs(head, ORPHANED)
    summary = (
        r"^{}\s+silently lost:\s+(\d+)\s+accepted with bad output:\s+(\d+)\s+done twice:\s+(\d+)"
    )
    naive = re.search(summary.format("naive"), logs, re.MULTILINE)
    ours = re.search(summary.format("agentcast"), logs, re.MULTILINE)
    assert naive and ours, logs
    assert sum(int(n) for n in naive.groups()) > 0, logs
    # t13 is cut off on every agent: the naive run accepts it truncated or gives it up.
    assert re.search(
        r"^naive\s+t13: .*(a truncated answer|given up \(nobody is told\))", logs, re.MULTILINE
    ), logs
    assert [int(n) for n in ours.groups()] == [0, 0, 0], logs
    assert "no subtask lost, no bad output accepted, no effect applied twice" in logs
