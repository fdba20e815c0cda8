"""Plain-data encoding for everything that reaches a log: msgpack, with a size limit.

Only plain data crosses into a resource: None, bool, int, float, str, bytes, lists,
tuples and dicts of them, and pydantic models (sent as their JSON-mode dump). Anything
else is refused on the caller's side, before it reaches the applier, and so is what
the decoder could not read back: dict keys other than str and int, nesting deeper than
``MAX_DEPTH``.
"""

from __future__ import annotations

from typing import Any

import msgpack
from pydantic import BaseModel

from .errors import InvalidArgumentError, PayloadTooLargeError

MAX_DEPTH = 100
"""How deeply lists and dicts may nest in encoded data (the decoder's stack is bounded)."""

_SCALARS = (str, int, float, bool, bytes, type(None))

_FIRST_BUFFER = 256
"""Bytes a packer starts with; it doubles as a value needs. msgpack's default, 256 KiB, is
as large as the blocks a state actor maps on their own (``runtime.fix_mmap_threshold``):
there every ``encode`` mapped, faulted in and unmapped 256 KiB (8 us a call, against 0.5 us
from a small buffer), and a write encodes its result and each changed key's values twice
(docs/operations.md, "Memory")."""


def _default(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, (set, frozenset)):
        raise InvalidArgumentError("sets are not plain data: send a sorted list")
    raise InvalidArgumentError(f"{type(value).__name__} is not plain data or a pydantic model")


def encode(value: Any, *, limit: int | None = None) -> bytes:
    """Encode plain data to msgpack bytes.

    Raises:
        InvalidArgumentError: the value holds something that is not plain data.
        PayloadTooLargeError: the encoding is longer than ``limit`` bytes.
    """
    if not isinstance(value, _SCALARS):
        _check_readable(value, MAX_DEPTH)
    try:
        # buf_size: msgpack 1.1 and later; the msgpack-types stubs predate it.
        packer = msgpack.Packer(  # type: ignore[call-arg]
            default=_default, use_bin_type=True, buf_size=_FIRST_BUFFER
        )
        data: bytes = packer.pack(value)
    except InvalidArgumentError:
        raise
    except (TypeError, ValueError, OverflowError) as error:
        raise InvalidArgumentError(f"cannot encode as plain data: {error}") from error
    if limit is not None and len(data) > limit:
        raise PayloadTooLargeError(len(data), limit)
    return data


def _check_readable(value: Any, depth: int) -> None:
    """Refuse what msgpack would encode but ``decode`` could not read back."""
    if depth <= 0:
        raise InvalidArgumentError(f"data nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, dict):
        for key, item in value.items():
            if type(key) is not str and type(key) is not int:
                raise InvalidArgumentError(
                    f"dict key {key!r} of type {type(key).__name__}: keys must be str or int"
                )
            if not isinstance(item, _SCALARS):
                _check_readable(item, depth - 1)
    elif isinstance(value, (list, tuple)):
        for item in value:
            if not isinstance(item, _SCALARS):
                _check_readable(item, depth - 1)
    elif isinstance(value, BaseModel):
        _check_readable(value.model_dump(mode="json"), depth - 1)


def decode(data: bytes) -> Any:
    """Decode msgpack bytes made by ``encode``; arrays come back as lists.

    Raises:
        InvalidArgumentError: ``data`` is not bytes, or not what ``encode`` makes.
    """
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=False)
    except Exception as error:  # msgpack raises many unrelated types for bad bytes
        raise InvalidArgumentError(f"not decodable: {type(error).__name__}: {error}") from None
