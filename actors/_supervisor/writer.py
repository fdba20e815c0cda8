"""Who commits the supervisor store's groups of staged statements: one writer thread that
owns the store's write connection (the supervisor actor's), or the caller itself (inline:
tests of the core step the event loop and expect a commit within a few turns).

Why a thread: with ``Durability.FULL`` each group commit waits on an fsync, and on the
event loop that was a fifth of the supervisor's time (py-spy, issue 15). SQLite releases the
GIL while it writes and syncs, so the loop goes on taking calls and sending attempts
meanwhile. Groups are committed one at a time in the order they were handed over (one
thread, a FIFO queue), so a statement is never applied before one staged ahead of it, and
``SubtaskStore.commit`` tells nobody of a change before the group holding it committed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

Staged = list[tuple[str, Sequence[Any] | dict[str, Any]]]


class InlineWriter:
    """Commits each group at once, on the caller's thread."""

    def __init__(self, commit: Callable[[Staged], None]) -> None:
        self._commit = commit

    def write(self, staged: Staged) -> Future[None]:
        """Commit ``staged``; the future is done on return (with the error, if it failed)."""
        done: Future[None] = Future()
        try:
            self._commit(staged)
        except Exception as error:
            done.set_exception(error)
        else:
            done.set_result(None)
        return done

    def close(self) -> None:
        """Nothing to stop."""


class ThreadWriter:
    """Commits each group on one thread, in the order handed over."""

    def __init__(self, commit: Callable[[Staged], None]) -> None:
        self._commit = commit
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="supervisor-store")

    def write(self, staged: Staged) -> Future[None]:
        """Commit ``staged`` after every group handed over before it.

        Returns:
            Done once the group is committed, or with the ``StorageError`` that failed it
            (nothing of the group was committed then).
        """
        return self._thread.submit(self._commit, staged)

    def close(self) -> None:
        """Commit what was handed over, then stop the thread."""
        self._thread.shutdown(wait=True)
