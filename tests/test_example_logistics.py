"""``examples/logistics.py``: the naive agents promise from their caches against stock
that was reordered and prices that changed; with within-transaction validators on every
promise, none of the promises agentcast commits is incoherent (replayed from the log)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import import_example

pytestmark = [pytest.mark.ray, pytest.mark.timeout(600)]


def test_naive_promises_are_incoherent_and_agentcast_commits_none(
    ray_session: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    logistics = import_example("logistics")
    code = logistics.main(["--quick", "--storage", str(tmp_path)])
    out = capsys.readouterr().out
    naive = re.search(r"naive\s+promises:\s+(\d+)\s+incoherent:\s+(\d+)", out)
    ours = re.search(r"agentcast\s+promises:\s+(\d+)\s+incoherent:\s+(\d+)\s+vetoed:\s+(\d+)", out)
    assert naive and ours, out
    # --quick: 5 rounds of 4 promises. From round 1 on, fulfillment's cache holds a SKU
    # that was reordered or repriced: the naive agents promise against it every run.
    assert int(naive[1]) == int(ours[1]) == 20, out
    assert int(naive[2]) >= 3, out
    assert int(ours[2]) == 0, out  # vetoed: however many the pushed events left to catch
    assert "agentcast: no incoherent promise committed" in out
    assert code == 0
