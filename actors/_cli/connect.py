"""How the command line joins a running cluster: found the way Ray finds it, with the
cluster's token when there is one, within a few seconds, and never as a job of its own.

Ray 2.60 clusters started by ``ray start --head`` or by a local ``ray.init()`` require a
token; a client without ``RAY_AUTH_MODE=token`` retries for 20 s, printing a GCS error a
second. So: when no mode is set and a token is at hand (``RAY_AUTH_TOKEN``,
``RAY_AUTH_TOKEN_PATH`` or ``~/.ray/auth_token``), token mode is switched on for this
process; the connect is bounded (``RAY_gcs_server_port_wait_time_s``); Ray's own lines
while connecting are kept back and a failure is one line saying why. The connection
runs in an ``_ray_internal_`` namespace, which the dashboard's Jobs page leaves out, so a
command does not show up there as a driver that "succeeded" whatever it did.
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import ray

from runtime import ConfigurationError

CLI_NAMESPACE = "_ray_internal_agentcast_cli"
CONNECT_TIMEOUT_S = 5
"""How long a command tries to reach the cluster's GCS before it says it cannot."""


def connect(address: str = "auto", *, timeout_s: int = CONNECT_TIMEOUT_S) -> None:
    """Join the cluster at ``address`` (``auto``: ``RAY_ADDRESS``, else the cluster
    ``ray start`` recorded on this machine), unless this process already is connected.

    Raises:
        ConfigurationError: no cluster found, unreachable, or its token refused; the
            message is one line that says which and what to do.
    """
    if ray.is_initialized():
        return
    resolved = _resolve(address)
    _check_listening(resolved, timeout_s)
    token = _use_token_if_available()
    os.environ.setdefault("RAY_gcs_server_port_wait_time_s", str(timeout_s))
    with _stderr_kept() as kept:
        try:
            ray.init(
                address=resolved, namespace=CLI_NAMESPACE, logging_level=logging.ERROR,
                log_to_driver=False,
            )  # fmt: skip
        except Exception as error:  # ConnectionError, AuthenticationError, RuntimeError
            raise ConfigurationError(
                _why(resolved, kept.read_text(errors="replace"), token)
            ) from error


def _resolve(address: str) -> str:
    if address != "auto":
        return address
    if os.environ.get("RAY_ADDRESS"):
        return os.environ["RAY_ADDRESS"]
    from ray._common.utils import get_ray_address_file

    recorded = Path(get_ray_address_file(None))
    if recorded.exists() and recorded.read_text().strip():
        return recorded.read_text().strip()
    raise ConfigurationError(
        "no Ray cluster found on this machine (none started by `ray start`, no RAY_ADDRESS): "
        "pass --address host:port (`agentcast demo --keep` and the examples print theirs)"
    )


def _check_listening(address: str, timeout_s: float) -> None:
    """Fail fast when nothing listens at ``address``: Ray's GCS client would wait for
    most of a minute before giving up on an address that does not answer."""
    if "://" in address:  # RAY_ADDRESS as set for `ray job submit`: the dashboard's
        raise ConfigurationError(
            f"{address} is a dashboard address (as `ray job submit` takes): pass the cluster's "
            "GCS address, --address host:port (port 6379 for `ray start --head`)"
        )
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            pass
    except (OSError, ValueError) as error:
        raise ConfigurationError(_why(address, "", token=False)) from error


def _token_path() -> Path:
    return Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token")


def _use_token_if_available() -> bool:
    """Switch this process to token mode when no mode is set and a token is at hand;
    whether the connection will carry a token."""
    mode = os.environ.get("RAY_AUTH_MODE")
    if mode is not None:
        return mode.lower() == "token"
    if not (os.environ.get("RAY_AUTH_TOKEN") or _token_path().is_file()):
        return False
    os.environ["RAY_AUTH_MODE"] = "token"
    from ray._raylet import Config  # type: ignore[attr-defined]

    Config.initialize("")  # the mode is cached at import: read it again
    return True


@contextmanager
def _stderr_kept() -> Iterator[Path]:
    """Descriptor 2 goes to a file while Ray connects (its C++ client logs a line per
    failed try); the file is read to explain a failure, and dropped."""
    with tempfile.NamedTemporaryFile(prefix="agentcast-connect-", suffix=".log") as file:
        saved = os.dup(2)
        os.dup2(file.fileno(), 2)
        try:
            yield Path(file.name)
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _why(address: str, said: str, token: bool) -> str:
    if "InvalidAuthToken" in said or "Unauthenticated" in said:
        mode = os.environ.get("RAY_AUTH_MODE")
        if not token and mode is not None:
            return (
                f"the Ray cluster at {address} requires a token and RAY_AUTH_MODE={mode} here: "
                "set RAY_AUTH_MODE=token (the token: ~/.ray/auth_token or RAY_AUTH_TOKEN)"
            )
        if not token:
            return (
                f"the Ray cluster at {address} requires a token and none is set here: copy the "
                "head node's ~/.ray/auth_token to this machine or set RAY_AUTH_TOKEN"
            )
        return (
            f"the Ray cluster at {address} refused this machine's token ({_token_path()} or "
            "RAY_AUTH_TOKEN): use the head node's ~/.ray/auth_token"
        )
    return f"cannot reach a Ray cluster at {address}: is it running? (pass --address host:port)"
