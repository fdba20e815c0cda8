"""cluster.yaml passes Ray's own cluster-launcher validation and starts the head as agentcast needs.

The validation is the one `ray up` runs before it touches any machine (defaults, the local
provider's preparation, the JSON schema), so it works offline.
"""

from __future__ import annotations

import copy
import json
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import jsonschema
import pytest
import yaml
from ray.autoscaler._private.commands import _bootstrap_config
from ray.autoscaler._private.util import validate_config

from runtime import STATE_RESOURCE

CLUSTER_YAML = Path(__file__).resolve().parent.parent / "cluster.yaml"

Config = dict[str, Any]


def load_raw() -> Config:
    config = yaml.safe_load(CLUSTER_YAML.read_text())
    assert isinstance(config, dict)
    return config


def ray_up_config(raw: Config) -> Config:
    """The config as `ray up` resolves and validates it before launching anything."""
    resolved = _bootstrap_config(copy.deepcopy(raw), no_config_cache=True)
    validate_config(resolved)
    return resolved


def ray_start_flags(commands: list[str]) -> dict[str, str]:
    """The `--flag value` / `--flag=value` options of the one `ray start` in ``commands``."""
    starts = [c for c in commands if "ray start" in c]
    assert len(starts) == 1, f"expected one `ray start` command, got {starts}"
    words = shlex.split(starts[0].split("ray start", 1)[1])
    flags: dict[str, str] = {}
    for i, word in enumerate(words):
        if not word.startswith("--"):
            continue
        name, sep, value = word.partition("=")
        if not sep:
            following = words[i + 1] if i + 1 < len(words) else ""
            value = "" if following.startswith("--") else following
        flags[name] = value
    return flags


def declared_resources(flags: dict[str, str]) -> dict[str, float]:
    return dict(json.loads(flags["--resources"])) if "--resources" in flags else {}


def check_agentcast_config(raw: Config) -> Config:
    """Ray's validation, then what agentcast needs on top of it.

    Raises:
        AssertionError, jsonschema.ValidationError, click.ClickException, ValueError:
            the config would not give agentcast a working cluster.
    """
    config = ray_up_config(raw)
    head = ray_start_flags(config["head_start_ray_commands"])
    assert "--head" in head
    assert declared_resources(head).get(STATE_RESOURCE, 0) > 0, "head lacks agentcast_state"
    assert head.get("--dashboard-host") == "127.0.0.1", "dashboard must stay on localhost"
    worker = ray_start_flags(config["worker_start_ray_commands"])
    assert "--address" in worker and "--head" not in worker
    assert STATE_RESOURCE not in declared_resources(worker), "a worker offers agentcast_state"
    return config


def test_cluster_yaml_passes_ray_validation() -> None:
    config = ray_up_config(load_raw())
    assert config["provider"]["type"] == "local"
    assert config["cluster_name"] == "agentcast"


def test_head_declares_agentcast_state_and_keeps_dashboard_local() -> None:
    config = check_agentcast_config(load_raw())
    head = ray_start_flags(config["head_start_ray_commands"])
    assert declared_resources(head) == {STATE_RESOURCE: 1_000_000}
    assert head["--dashboard-host"] == "127.0.0.1"
    assert head["--dashboard-port"] == "8265"
    assert head["--autoscaling-config"] == "~/ray_bootstrap_config.yaml"


def test_project_is_synced_and_installed_on_every_node() -> None:
    config = ray_up_config(load_raw())
    project_mounts = [remote for remote, local in config["file_mounts"].items() if local == "."]
    assert project_mounts == ["~/agentcast"]
    assert ".gitignore" in config["rsync_filter"]
    for commands in (config["head_setup_commands"], config["worker_setup_commands"]):
        assert any("pip install" in c and "-e ~/agentcast" in c for c in commands)


def test_every_node_starts_ray_with_token_auth() -> None:
    config = ray_up_config(load_raw())
    assert "~/.ray/auth_token" in config["file_mounts"]
    for commands in (config["head_start_ray_commands"], config["worker_start_ray_commands"]):
        (start,) = [c for c in commands if "ray start" in c]
        assert "RAY_AUTH_MODE=token" in start


def _drop_head_ip(config: Config) -> None:
    del config["provider"]["head_ip"]


def _misspell_a_top_level_key(config: Config) -> None:
    config["head_start_commands"] = config.pop("head_start_ray_commands")


def _worker_ips_not_a_list(config: Config) -> None:
    config["provider"]["worker_ips"] = "WORKER_IP_1"


def _start_commands_not_a_list(config: Config) -> None:
    config["head_start_ray_commands"] = " && ".join(config["head_start_ray_commands"])


def _unknown_auth_field(config: Config) -> None:
    config["auth"]["ssh_password"] = "secret"


@pytest.mark.parametrize(
    "break_it",
    [
        _drop_head_ip,
        _misspell_a_top_level_key,
        _worker_ips_not_a_list,
        _start_commands_not_a_list,
        _unknown_auth_field,
    ],
)
def test_ray_rejects_a_broken_copy(break_it: Callable[[Config], None]) -> None:
    broken = load_raw()
    break_it(broken)
    with pytest.raises((jsonschema.ValidationError, click.ClickException)):
        ray_up_config(broken)


def test_raw_file_misses_no_required_key() -> None:
    raw = load_raw()
    validate_config(ray_up_config(raw))
    del raw["cluster_name"]
    with pytest.raises(jsonschema.ValidationError, match="cluster_name"):
        validate_config(raw)


def _head_without_state_resource(config: Config) -> None:
    config["head_start_ray_commands"] = [
        c.replace(f"--resources='{{\"{STATE_RESOURCE}\": 1000000}}'", "")
        for c in config["head_start_ray_commands"]
    ]


def _public_dashboard(config: Config) -> None:
    config["head_start_ray_commands"] = [
        c.replace("--dashboard-host=127.0.0.1", "--dashboard-host=0.0.0.0")
        for c in config["head_start_ray_commands"]
    ]


def _worker_with_state_resource(config: Config) -> None:
    config["worker_start_ray_commands"] = [
        c + f" --resources='{{\"{STATE_RESOURCE}\": 1}}'" if "ray start" in c else c
        for c in config["worker_start_ray_commands"]
    ]


@pytest.mark.parametrize(
    "break_it", [_head_without_state_resource, _public_dashboard, _worker_with_state_resource]
)
def test_agentcast_checks_reject_a_broken_copy(break_it: Callable[[Config], None]) -> None:
    check_agentcast_config(load_raw())
    broken = load_raw()
    break_it(broken)
    ray_up_config(broken)  # still a valid Ray config: only agentcast's checks catch it
    with pytest.raises(AssertionError):
        check_agentcast_config(broken)
