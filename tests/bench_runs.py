"""Running ``agentcast bench <target> --quick --json`` as a user would, for the tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def run_quick_bench(target: str, out: Path, *, timeout: float) -> dict[str, Any]:
    """The JSON report of a quick run of ``target`` on its own Ray (never a job's cluster);
    checks that it exits 0, prints only the JSON, and writes the same to ``out``."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    done = subprocess.run(
        [sys.executable, "-m", "actors._cli.main", "bench", target, "--quick", "--json",
         "--out", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    report: dict[str, Any] = json.loads(done.stdout)  # the JSON document and nothing else
    assert json.loads(out.read_text()) == report
    return report
