"""The context-integrity examples: the naive pipeline writes under /prod and over-grants
credit; agentcast refuses the write with the constraint named and holds the firm's cap."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import import_example

pytestmark = [pytest.mark.ray, pytest.mark.timeout(300)]


def test_context_rot_naive_writes_prod_and_agentcast_refuses_naming_the_constraint(
    ray_session: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    context_rot = import_example("context_rot")
    code = context_rot.main(["--storage", str(tmp_path)])
    out = capsys.readouterr().out
    assert "naive      wrote: /prod/app.yaml\n" in out, out
    assert (
        "agentcast  wrote: nothing   refused: /prod/app.yaml by forbid_path(path under /prod)\n"
        in out
    ), out
    carried = re.search(r"carried by: (.+); trace ([0-9a-f]{32})\n", out)
    assert carried, out
    hops = [hop.split(" ")[0] for hop in carried[1].split(" -> ")]
    assert hops == ["orchestrator", "research", "synthesis", "action"], out
    assert "(0 constraint" not in carried[1], out
    assert f"logged: write_file by action, reason constraint, trace {carried[2]}\n" in out, out
    assert code == 0
