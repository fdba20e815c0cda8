"""The examples' progress bar: one bar line per step on stderr, on a terminal only; piped
or captured, the examples print their verdicts and nothing else.

Not an example: a helper they share (``from _progress import Steps``; the examples' folder
is on the path whether one runs as a script, in a Ray job or from a test).
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

_WIDTH = 20


class Steps:
    """``steps = Steps(3)``, then ``steps.next("starting Ray")`` as each step starts."""

    def __init__(self, total: int, stream: TextIO | None = None) -> None:
        self._total = total
        self._stream = stream or sys.stderr
        self._done = 0
        self._started = time.monotonic()

    def next(self, what: str) -> None:
        """Step ``what`` starts: the bar shows the steps before it as done."""
        if not self._stream.isatty():
            return
        filled = round(_WIDTH * self._done / self._total)
        bar = "#" * filled + "." * (_WIDTH - filled)
        elapsed = time.monotonic() - self._started
        self._done += 1
        print(
            f"[{bar}] {self._done}/{self._total} {what} ({elapsed:.1f} s)",
            file=self._stream,
            flush=True,
        )
