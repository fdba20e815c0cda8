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


def test_credit_exposure_naive_exceeds_the_cap_and_agentcasts_invariant_holds(
    ray_session: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    credit_exposure = import_example("credit_exposure")
    code = credit_exposure.main(["--storage", str(tmp_path)])
    out = capsys.readouterr().out
    assert "naive      total exposure:  120   over the cap: YES\n" in out, out
    ours = re.search(
        r"agentcast  total exposure:\s+(\d+)\s+over the cap: no\s+grants refused by the "
        r"invariant: (\d+) \(logged: (\d+)\)",
        out,
    )
    assert ours, out
    # 120 asked in steps of 10: the book fills to exactly 100 (a refusal needs a full
    # book), and at least the 2 grants beyond it are refused, each one logged.
    assert int(ours[1]) == 100 and int(ours[2]) == int(ours[3]) >= 2, out
    assert "agentcast: the invariant held at every version of the log (highest 100)" in out
    assert code == 0
