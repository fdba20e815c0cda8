"""Plain-data encoding for everything that reaches a log: msgpack, with a size limit.

Only plain data crosses into a resource: None, bool, int, float, str, bytes, lists,
tuples and dicts of them, and pydantic models (sent as their JSON-mode dump). Anything
else is refused on the caller's side, before it reaches the applier.
"""

from __future__ import annotations

from typing import Any

import msgpack
from pydantic import BaseModel

from .errors import InvalidArgumentError, PayloadTooLargeError


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
    try:
        data: bytes = msgpack.packb(value, default=_default, use_bin_type=True)
    except InvalidArgumentError:
        raise
    except (TypeError, ValueError, OverflowError) as error:
        raise InvalidArgumentError(f"cannot encode as plain data: {error}") from error
    if limit is not None and len(data) > limit:
        raise PayloadTooLargeError(len(data), limit)
    return data


def decode(data: bytes) -> Any:
    """Decode msgpack bytes made by ``encode``; arrays come back as lists."""
    return msgpack.unpackb(data, raw=False, strict_map_key=False)
