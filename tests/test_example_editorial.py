"""The editorial race: the naive pipeline publishes a half-revised draft, agentcast's
ownership and handoffs publish only the approved revision, checked against the log."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import import_example

pytestmark = [pytest.mark.ray, pytest.mark.timeout(300)]


def test_naive_publishes_half_revised_and_agentcast_only_the_approved_revision(
    ray_session: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    editorial_race = import_example("editorial_race")
    code = editorial_race.main(["--storage", str(tmp_path)])
    out = capsys.readouterr().out
    naive = re.search(r"naive\s+published: (.+?)\s+half-revised: (\w+)", out)
    ours = re.search(
        r"agentcast\s+published: (.+?)\s+half-revised: (\w+)\s+racing writes: (.+)", out
    )
    assert naive and ours, out
    # the editor waits, half-way through rev2, for the eager publish: on every run
    assert (naive[1], naive[2]) == ("rev2:p0 | rev1:p1 | rev1:p2", "YES"), out
    assert (ours[1], ours[2]) == ("rev2:p0 | rev2:p1 | rev2:p2", "no"), out
    assert ours[3] == "NotOwnerError, NotOwnerError", out
    assert "agentcast: only the approved rev2 was published" in out
    assert code == 0
