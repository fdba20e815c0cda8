"""A real PostgreSQL server for tests: ``initdb`` into a temp folder and ``pg_ctl start`` on
a free loopback port, as the unprivileged ``postgres`` user when run as root; stopped at the
end of the session. A missing server fails the tests in CI (``.ci/run`` installs the Debian
package) and skips them elsewhere."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime import Location, PgLocation

_BINARIES = "/usr/lib/postgresql/*/bin"


def _bin_dir() -> Path | None:
    found = sorted(glob.glob(_BINARIES), key=lambda p: int(Path(p).parent.name))
    if found:
        return Path(found[-1])
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _unavailable(why: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"PostgreSQL cannot start ({why}); .ci/run installs the Debian package")
    pytest.skip(f"PostgreSQL cannot start ({why}): apt-get install -y postgresql")


def _as_server_user() -> list[str]:
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


def start_postgres(folder: Path) -> tuple[str, list[str]]:
    """Start a server with its data in ``folder``; its URL and the command that stops it."""
    bin_dir = _bin_dir()
    if bin_dir is None:
        _unavailable("no initdb")
    assert bin_dir is not None
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
    data, port, user = folder / "data", _free_port(), _as_server_user()
    run = [*user, str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"]
    done = subprocess.run(run, capture_output=True, text=True, timeout=120)
    if done.returncode:
        _unavailable(f"initdb: {done.stderr[-500:]}")
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c max_connections=300"
    start = [*user, str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options]
    done = subprocess.run(
        [*start, "-l", str(folder / "log"), "-w", "-t", "60", "start"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    if done.returncode:
        _unavailable(f"pg_ctl start: {done.stderr[-500:]}")
    stop = [*user, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]
    return f"postgresql://postgres@127.0.0.1:{port}/postgres", stop


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """The URL of a PostgreSQL server running for the whole test session."""
    folder = Path(tempfile.mkdtemp(prefix="agentcast-pg-"))
    os.chmod(folder, 0o755)
    url, stop = start_postgres(folder)
    yield url
    subprocess.run(stop, capture_output=True, timeout=120, check=False)
    shutil.rmtree(folder, ignore_errors=True)


def fresh(url: str) -> str:
    """``url`` with a schema prefix of its own: a store set no other test sees."""
    return f"{url}#t{uuid.uuid4().hex[:12]}"


@pytest.fixture(params=["sqlite", "postgresql"])
def store_root(request: pytest.FixtureRequest, tmp_path: Path) -> Location:
    """A storage root on each backend: a temp folder, and a fresh schema prefix in the
    session's PostgreSQL (``postgres_url``)."""
    if request.param == "sqlite":
        return tmp_path
    return PgLocation(fresh(request.getfixturevalue("postgres_url")))
