"""Running ``agentcast bench <target> --quick --json`` as a user would, for the tests.

A quick bench is a program of its own (its own local Ray, a minute or so of one core), so
the session runs them in the background, one at a time, from its first test: the tests
that take no Ray come first (``conftest.py`` orders them so) and keep one core busy, the
benches the other. A test marked ``quick_bench(target)`` waits for its run's report.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

RUN_TIMEOUT_S = {
    "agents": 300, "budget": 300, "events": 420, "locks": 300, "resource": 420, "soak": 240,
    "supervisor": 420,
}  # fmt: skip
"""The bound of each quick run (each takes 10-60 s on a two-core machine)."""

WAIT_S = sum(RUN_TIMEOUT_S.values()) + 60
"""How long a test may wait for its report: the runs are sequential and each bounded, so
every one has ended by then, whichever test waits first."""

TEST_TIMEOUT_S = WAIT_S + 60
"""A quick bench test's own bound (``pytest.mark.timeout``)."""

_STOP_S = 60  # a run stopped early gets this long to stop its Ray before it is killed


class QuickBenches:
    """The quick runs of ``targets``, started at once on one worker in that order, each
    test taking its own report (or the run's failure)."""

    def __init__(self, targets: list[str], folder: Path) -> None:
        unknown = set(targets) - set(RUN_TIMEOUT_S)
        if unknown:
            raise ValueError(f"no quick bench named {sorted(unknown)}")
        self._running: subprocess.Popen[str] | None = None
        self._closing = False
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="quick-bench")
        self._runs: dict[str, Future[dict[str, Any]]] = {
            target: self._pool.submit(self._run, target, folder / f"{target}.json")
            for target in targets
        }

    def report(self, target: str) -> dict[str, Any]:
        """``target``'s report, once its run ended.

        Raises:
            KeyError: ``target`` was not among the runs started.
            AssertionError: the run failed (its exit code, or its output is not the JSON).
        """
        return self._runs[target].result(timeout=WAIT_S)

    def close(self) -> None:
        """Drop the runs not started; a running one (the session stopped early) is asked
        to stop (an interrupt: it shuts its Ray down), and killed after ``_STOP_S``."""
        self._closing = True
        for future in self._runs.values():
            future.cancel()
        running = self._running
        if running is not None and running.poll() is None:
            running.send_signal(signal.SIGINT)
            try:
                running.wait(_STOP_S)
            except subprocess.TimeoutExpired:
                running.kill()
        self._pool.shutdown(wait=True)

    def _run(self, target: str, out: Path) -> dict[str, Any]:
        """The JSON report of a quick run of ``target`` on its own Ray (never a job's
        cluster); checks that it exits 0, prints only the JSON, and writes the same to
        ``out``."""
        env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
        argv = [sys.executable, "-m", "actors._cli.main", "bench", target, "--quick", "--json",
                "--out", str(out)]  # fmt: skip
        with subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        ) as process:
            self._running = process
            if self._closing:  # started as the session stopped
                process.send_signal(signal.SIGINT)
            try:
                stdout, stderr = process.communicate(timeout=RUN_TIMEOUT_S[target])
            except subprocess.TimeoutExpired:
                process.kill()
                process.communicate()
                raise AssertionError(f"{target}: no report in {RUN_TIMEOUT_S[target]} s") from None
            finally:
                self._running = None
        assert process.returncode == 0, stderr[-4000:]
        report: dict[str, Any] = json.loads(stdout)  # the JSON document and nothing else
        assert json.loads(out.read_text()) == report
        return report
