"""The examples' progress bar: a bar line per step on a terminal, nothing when piped."""

from __future__ import annotations

import io
import re

from conftest import import_example


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_steps_fill_a_bar_on_a_terminal_and_say_nothing_when_piped() -> None:
    steps_module = import_example("_progress")
    terminal, piped = _Terminal(), io.StringIO()
    for stream in (terminal, piped):
        steps = steps_module.Steps(3, stream)
        for what in ("starting Ray", "the naive agents", "the same agents through agentcast"):
            steps.next(what)
    assert piped.getvalue() == ""
    shown = [re.sub(r" \(\d+\.\d s\)$", "", line) for line in terminal.getvalue().splitlines()]
    assert shown == [
        "[....................] 1/3 starting Ray",
        "[#######.............] 2/3 the naive agents",
        "[#############.......] 3/3 the same agents through agentcast",
    ]
