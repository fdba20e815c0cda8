"""Trust collapse: the naive pipeline publishes a fabricated figure; agentcast refuses
the eager publish, its verifier catches the fabrication, and only the verified figure is
published, checked against the log."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import import_example

pytestmark = [pytest.mark.ray, pytest.mark.timeout(300)]


def test_naive_publishes_the_fabrication_and_agentcast_only_the_verified_figure(
    ray_session: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trust_collapse = import_example("trust_collapse")
    code = trust_collapse.main(["--storage", str(tmp_path)])
    out = capsys.readouterr().out
    naive = re.search(r"naive\s+published: (.+?)\s+fabricated: (\w+)", out)
    ours = re.search(r"agentcast\s+published: (.+?)\s+fabricated: (\w+)\s+eager publish: (.+)", out)
    assert naive and ours, out
    assert (naive[1], naive[2]) == ("q3_growth=73.0, q3_revenue=12.5", "YES"), out
    assert (ours[1], ours[2]) == ("q3_revenue=12.5", "no"), out
    assert ours[3] == "ProvenanceError, ProvenanceError", out
    assert "caught: q3_growth: claimed 73.0, the source has 4.2" in out
    assert "agentcast: the fabricated figure was caught" in out
    assert code == 0
