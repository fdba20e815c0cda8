"""A journaled view of a resource's state, so a write costs O(what it touches).

A write method gets a ``StateView`` instead of the state dict. The view remembers the
value each key had before the write first touched it. A mutable value is copied on first
read and the method is handed the copy (it may mutate nested data in place): the
original object is kept, unchanged, as the before-value. So no object of the state is
ever changed in place, and a value a read returned (a cached ``@derived`` value, a reply
not yet sent) never shows a change that did not commit. That journal gives both the undo
for a write that raises and the before/after audit record of what changed, without ever
copying the whole state.

What a write leaves in the live state is what recovery would rebuild: each changed value
is stored as its codec round trip (tuples become lists, models dicts), and a change is
found by comparing encodings, so ``1`` -> ``1.0``, ``1`` -> ``True`` and ``0.0`` -> ``-0.0``
are changes that reach the log.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, MutableMapping
from typing import TYPE_CHECKING, Any

from runtime import InvalidArgumentError, decode, encode

if TYPE_CHECKING:
    from .store import LogRecord

_IMMUTABLE = (int, float, str, bytes, bool, type(None))
_ABSENT = object()


def _copy(value: Any) -> Any:
    if isinstance(value, _IMMUTABLE):
        return value
    return decode(encode(value))  # plain data only: a msgpack round trip is a deep copy


class StateView(MutableMapping[Any, Any]):
    """A dict-like view of ``data`` that journals the keys it touches."""

    def __init__(self, data: dict[Any, Any]) -> None:
        self._data = data
        self._before: dict[Any, Any] = {}

    def _remember(self, key: Any) -> None:
        if key not in self._before:
            self._before[key] = self._data.get(key, _ABSENT)

    def __getitem__(self, key: Any) -> Any:
        value = self._data[key]
        if not isinstance(value, _IMMUTABLE) and key not in self._before:
            # The method changes a copy; the original, which a read may have returned,
            # stays as committed and is the before-value.
            self._before[key] = value
            value = self._data[key] = _copy(value)
        return value

    def __setitem__(self, key: Any, value: Any) -> None:
        self._remember(key)  # the old object is replaced, never mutated
        self._data[key] = value

    def __delitem__(self, key: Any) -> None:
        self._remember(key)
        del self._data[key]

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __iter__(self) -> Iterator[Any]:
        return iter(list(self._data))

    def __len__(self) -> int:
        return len(self._data)

    def changes(self) -> list[list[Any]]:
        """``[key, had_before, before, has_after, after]`` for each key whose encoded value
        changed; each changed value in the state is replaced by its codec round trip.

        Raises:
            InvalidArgumentError: a changed value is not plain data.
        """
        out = []
        for key, before in self._before.items():
            after = self._data.get(key, _ABSENT)
            if before is _ABSENT and after is _ABSENT:
                continue
            if type(key) is not str and type(key) is not int:
                raise InvalidArgumentError(f"state key {key!r}: keys must be str or int")
            if after is not _ABSENT:
                encoded = encode(after)
                if before is not _ABSENT and encode(before) == encoded:
                    self._data[key] = before  # equal encodings, but maybe a tuple for a list
                    continue
                after = self._data[key] = decode(encoded)
            out.append(
                [
                    key,
                    before is not _ABSENT,
                    None if before is _ABSENT else before,
                    after is not _ABSENT,
                    None if after is _ABSENT else after,
                ]
            )
        return out

    def undo(self) -> None:
        """Put back every touched key as it was before the write."""
        for key, before in self._before.items():
            if before is _ABSENT:
                self._data.pop(key, None)
            else:
                self._data[key] = before
        self._before.clear()


def apply_changes(data: dict[Any, Any], changes: list[list[Any]], *, forward: bool = True) -> None:
    """Replay (or, with ``forward=False``, revert) a record's changes onto ``data``."""
    for key, had_before, before, has_after, after in changes:
        present, value = (has_after, after) if forward else (had_before, before)
        if present:
            data[key] = value
        else:
            data.pop(key, None)


def replay(state: dict[Any, Any], records: Iterable[LogRecord]) -> list[int]:
    """Apply committed records' changes onto ``state`` in order; their versions."""
    versions = []
    for record in records:
        apply_changes(state, decode(record.diff))
        versions.append(record.version)
    return versions
