"""The runaway-retries example: naive spend multiplies, agentcast stays under the run's cap."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import import_example

pytestmark = pytest.mark.ray


def test_runaway_retries_caps_the_spend_and_opens_the_breaker_once(
    ray_session: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runaway_retries = import_example("runaway_retries")
    code = runaway_retries.main(["--storage", str(tmp_path)])
    out = capsys.readouterr().out
    naive = re.search(r"naive\s+tokens:\s+([\d,]+)\s+model calls:\s+(\d+)", out)
    ours = re.search(r"agentcast\s+tokens:\s+([\d,]+)\s+model calls:\s+(\d+)", out)
    assert naive and ours, out
    naive_tokens, our_tokens = int(naive[1].replace(",", "")), int(ours[1].replace(",", ""))
    assert naive_tokens > 10 * our_tokens, out
    assert "breaker on tool:search: open" in out
    watch = r"namespace (runaway-[0-9a-f]{8}); watch it: agentcast status --address \S+ "
    watch += r"--namespace \1\n"
    assert re.search(watch, out), out
    assert "1 incident(s)" in out
    assert "spend stayed under the run's cap" in out
    assert code == 0
