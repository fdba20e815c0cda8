"""Which storage the Systems of this process run on: one process, one storage folder.

Two Systems on different storage would split one cluster's state between two folders; a
second System on the same storage is allowed (each counts).
"""

from __future__ import annotations

from runtime import ConfigurationError, Location

_RUNNING: dict[Location, int] = {}


def claim(root: Location) -> None:
    """Count a System on ``root``.

    Raises:
        ConfigurationError: a System on other storage runs in this process.
    """
    others = [str(other) for other in _RUNNING if other != root.resolve()]
    if others:
        raise ConfigurationError(
            f"a System on storage {others[0]} runs in this process: shut it down before "
            f"starting one on {root}"
        )
    _RUNNING[root.resolve()] = _RUNNING.get(root.resolve(), 0) + 1


def release(root: Location) -> None:
    """A System on ``root`` has shut down."""
    resolved = root.resolve()
    _RUNNING[resolved] -= 1
    if not _RUNNING[resolved]:
        del _RUNNING[resolved]
