"""What the command line prints, and where: one document on stdout, everything else on
stderr.

Ray's driver prints the warnings the raylet pushes to it ("WARNING: 18 PYTHON worker
processes have been started ...") on ``sys.stdout``, from a background thread, and its C++
core writes to file descriptor 1 and 2 directly. A ``--json`` command therefore points
descriptor 1 at stderr for as long as it runs (``document_only``) and writes its one
document to the real stdout with ``emit``. Progress lines go to stderr, and only when it is
a terminal.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from typing import TextIO

_document: TextIO | None = None


@contextmanager
def document_only() -> Iterator[None]:
    """While it runs, anything printed to stdout (by Ray's threads, its C++ core or the
    command itself) lands on stderr; ``emit`` writes to the real stdout."""
    global _document
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    _document = os.fdopen(os.dup(saved), "w", encoding="utf-8")
    try:
        # Python-level writes too, whatever object sys.stdout is (Ray prints through it).
        with redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        _document.close()
        _document = None
        os.dup2(saved, 1)
        os.close(saved)


def emit(text: str) -> None:
    """Print ``text`` as the command's output: to the real stdout, also inside
    ``document_only`` (the progress line is cleared first)."""
    if _progress is not None:
        _progress.done()
    out = _document or sys.stdout
    out.write(text + "\n")
    out.flush()


class Progress:
    """One line on stderr that says what long work is doing, rewritten in place.

    Quiet when stderr is not a terminal (piped, captured by a test), so logs and JSON
    stay clean. ``show`` replaces the line; ``done`` clears it.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stderr
        self._on = self._stream.isatty()
        self._started = time.monotonic()
        self._width = 0

    @property
    def on(self) -> bool:
        return self._on

    def show(self, what: str) -> None:
        """Say what is under way now (with the time since the start)."""
        if not self._on:
            return
        line = f"[{time.monotonic() - self._started:6.1f}s] {what}"
        self._stream.write("\r" + line.ljust(self._width))
        self._stream.flush()
        self._width = len(line)

    def bar(self, done: float, total: float, what: str) -> None:
        """Say what is under way with a bar of ``done`` out of ``total`` (steps, seconds)."""
        share = min(max(done / total, 0.0), 1.0) if total > 0 else 1.0
        filled = round(share * _BAR_WIDTH)
        self.show(f"[{'#' * filled}{'.' * (_BAR_WIDTH - filled)}] {share:4.0%} {what}")

    def done(self) -> None:
        """Clear the line (the result is printed next)."""
        if self._on and self._width:
            self._stream.write("\r" + " " * self._width + "\r")
            self._stream.flush()
            self._width = 0


_BAR_WIDTH = 24
_TICK_S = 0.2
_progress: Progress | None = None


def _line() -> Progress:
    global _progress
    if _progress is None:
        _progress = Progress()
    return _progress


def progress(what: str) -> None:
    """Show what the command is doing now on the progress line (a terminal only)."""
    _line().show(what)


def note(text: str) -> None:
    """A log line on stderr (a bench's rows as they come), on a line of its own: the
    progress line is cleared first and comes back with the next ``progress``."""
    if _progress is not None:
        _progress.done()
    print(text, file=sys.stderr, flush=True)


def progress_bar(done: float, total: float, what: str) -> None:
    """Show ``what`` with a bar of ``done`` out of ``total`` (a terminal only)."""
    _line().bar(done, total, what)


def progress_for(seconds: float, what: str) -> None:
    """On a terminal, fill a bar over ``seconds`` while timed work runs elsewhere (the
    agents of the demo); piped, return at once."""
    line = _line()
    if not line.on:
        return
    began = time.monotonic()
    while (elapsed := time.monotonic() - began) < seconds:
        line.bar(elapsed, seconds, what)
        time.sleep(min(_TICK_S, seconds - elapsed))
    line.bar(seconds, seconds, what)
