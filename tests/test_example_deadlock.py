"""``examples/deadlock.py``: the naive agents hang until the example's timeout; with
agentcast every cycle is broken within the stated bound, the wait alert is raised, and
every update is applied exactly once (checked against both resources' logs)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import import_example

pytestmark = [pytest.mark.ray, pytest.mark.timeout(300)]


def test_naive_deadlocks_and_agentcast_breaks_every_cycle(
    ray_session: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    deadlock = import_example("deadlock")
    code = deadlock.main(["--quick", "--storage", str(tmp_path)])
    out = capsys.readouterr().out
    assert re.search(r"naive\s+0 of 4 agents done; HUNG", out), out
    ours = re.search(
        r"agentcast\s+4 of 4 agents done .*; (\d+) updates, each applied once: True; "
        r"(\d+) deadlocks broken, slowest detection (\d+) ms .*alerts: (\d+)",
        out,
    )
    assert ours, out
    assert int(ours[1]) == 4 * 2
    assert int(ours[2]) >= 1 and int(ours[3]) <= deadlock.BOUND_S * 1000
    assert int(ours[4]) >= 1
    assert "agentcast: held its claim" in out and code == 0
