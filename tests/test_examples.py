"""The example and the demo print what they promise, on the shared local Ray."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import import_example

from actors._cli.demo import run_demo

pytestmark = pytest.mark.ray


def test_inventory_race_naive_loses_updates_and_agentcast_none(
    ray_session: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inventory_race = import_example("inventory_race")
    code = inventory_race.main(["--quick", "--storage", str(tmp_path)])
    out = capsys.readouterr().out
    naive = re.search(r"naive\s+updates lost:\s+(\d+)\s+units oversold:\s+(\d+)", out)
    ours = re.search(r"agentcast\s+updates lost:\s+(\d+)\s+units oversold:\s+(\d+)", out)
    assert naive and ours, out
    # The 6 naive agents (4 orders, 2 suppliers) meet after their first read: all 6 first
    # writes rest on one reading, so at least 5 of them overwrite an update, on every run.
    assert int(naive[1]) >= 5, out
    assert (int(ours[1]), int(ours[2])) == (0, 0)
    # It says how to watch it: its namespace, on the cluster it runs on.
    assert re.search(r"namespace inventory-race; watch it: agentcast status --address \S+:\d+ "
                     r"--namespace inventory-race\n", out), out  # fmt: skip
    assert code == 0


def test_demo_shows_the_naive_pricers_losing_raises_and_agentcast_none(
    ray_session: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_demo(seconds=1.5, storage=str(tmp_path), keep=False) == 0
    out = capsys.readouterr().out
    raises = {
        m[1]: (int(m[2]), int(m[3]), int(m[4]))
        for m in re.finditer(r"^(\w+)\s+price raises made:\s+(\d+)\s+applied:\s+(\d+)\s+"
                             r"lost:\s+(\d+)", out, re.M)
    }  # fmt: skip
    assert set(raises) == {"naive", "agentcast"}, out
    # Two naive pricers read the same price, think 15 ms and write back: one of each
    # pair of raises is overwritten, on every run (at least a quarter, with any timing).
    made, applied, lost = raises["naive"]
    assert made == 40 and lost == made - applied and lost >= made // 4, out
    made, applied, lost = raises["agentcast"]
    assert made > 0 and (applied, lost) == (made, 0), out
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.strip()}
    for name in ("inventory", "orders", "prices"):
        assert rows[name][-1] == "OK", out
    assert int(rows["prices"][1]) == made  # one write per raise, none lost, none twice
    # Each of the 3 shops serves at least its first customer, from the initial stock.
    assert int(rows["orders"][1]) >= 3, out
    assert "unauthorized" in rows["inventory"][4]
    assert "verdict: agentcast held" in out
    assert "dashboard:" in out
    assert re.search(r"agentcast status --address \S+:\d+ --namespace demo\n", out), out
    assert re.search(r"agentcast check --address \S+:\d+ --namespace demo\n", out), out
    assert f"agentcast log <resource> --storage {tmp_path.resolve()}\n" in out


@pytest.mark.timeout(600)
def test_pipeline_resume_publishes_each_input_once_in_order(
    ray_session: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pipeline_resume = import_example("pipeline_resume")
    code = pipeline_resume.main(["--quick", "--storage", str(tmp_path)])
    out = capsys.readouterr().out
    naive = re.search(r"naive\s+inputs:\s+40\s+published:\s+(\d+)\s+lost:\s+(\d+)\s+"
                      r"duplicated:\s+(\d+)", out)  # fmt: skip
    ours = re.search(r"agentcast\s+inputs:\s+40\s+published:\s+(\d+)\s+lost:\s+(\d+)\s+"
                     r"duplicated:\s+(\d+)\s+in order: True", out)  # fmt: skip
    assert naive and ours, out
    assert int(naive[2]) + int(naive[3]) > 0, out  # restarted cursors lose or repeat
    assert (int(ours[1]), int(ours[2]), int(ours[3])) == (40, 0, 0), out
    assert code == 0
