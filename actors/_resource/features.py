"""Derived features: ``@derived`` reads computed once per state version and served from
a cache to every reader (compute once, serve to all).

A ``@derived`` method is a ``@read`` whose value depends only on the state and its
arguments. The resource host keeps its values by (operation, encoded arguments): a read
at the version a value was computed at gets the cached value (and the version and
provenance it was computed with); the first read after a write computes it again, once.
The cache holds at most ``CACHED_FEATURES`` values, least recently used out first. A hit
still checks that this incarnation is not fenced, as every read does.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeVar

from runtime import counter

from .calls import ReadResult
from .core import ResourceCore
from .declare import Resource, operations, read

F = TypeVar("F", bound=Callable[..., Any])
CACHED_FEATURES = 256
"""Most derived values one resource keeps."""
_DERIVED_ATTR = "__agentcast_derived__"


def derived(fn: F) -> F:
    """Mark a method as a derived read: ``(self, state, *args) -> value``, computed once
    per state version and served from the resource's cache to every reader. It must
    depend only on the state and its arguments (no clock, no randomness)."""
    setattr(fn, _DERIVED_ATTR, True)
    marked: F = read(fn)
    return marked


class FeatureCache:
    """The derived values of one resource, valid at one state version."""

    def __init__(
        self, resource_cls: type[Resource], name: str, size: int = CACHED_FEATURES
    ) -> None:
        ops = operations(resource_cls).items()
        self._derived = frozenset(n for n, op in ops if getattr(op.fn, _DERIVED_ATTR, False))
        self._size = size
        self._values: OrderedDict[tuple[str, bytes], ReadResult[Any]] = OrderedDict()
        self._tags = {"resource": name}
        self.computed = 0
        self.served = 0

    def read(
        self, core: ResourceCore, op: str, blob: bytes, args: list[Any], kwargs: dict[str, Any]
    ) -> ReadResult[Any]:
        """``core.read(op, args, kwargs)``, from the cache if ``op`` is derived and was
        computed with these arguments at the current version.

        Raises:
            UnknownOperationError, InvalidArgumentError, FencedError, StorageError: as
                ``ResourceCore.read``.
        """
        if not isinstance(op, str) or op not in self._derived:  # a forged op: core refuses it
            return core.read(op, args, kwargs)
        key = (op, blob)
        hit = self._values.get(key)
        if hit is not None and hit.version == core.version and _serves(core):
            self._values.move_to_end(key)
            self._count("cached")
            return hit
        result = core.read(op, args, kwargs)
        if self._values and next(iter(self._values.values())).version != result.version:
            self._values.clear()  # one version at a time: older values are never served
        self._values[key] = result
        if len(self._values) > self._size:
            self._values.popitem(last=False)
        self._count("computed")
        return result

    def counts(self) -> dict[str, int]:
        """How many derived reads were computed and how many served from the cache."""
        return {"computed": self.computed, "cached": self.served}

    def _count(self, outcome: str) -> None:
        if outcome == "computed":
            self.computed += 1
        else:
            self.served += 1
        counter(
            "resource_derived_reads_total", "Derived reads by outcome", ("resource", "outcome")
        ).inc(1, tags={**self._tags, "outcome": outcome})


def _serves(core: ResourceCore) -> bool:
    """Whether ``core`` may answer a read now: not fenced, nothing to recover, and no newer
    incarnation in storage (else ``core.read`` raises the reason)."""
    return not (core.fenced or core.needs_recovery) and (
        core.log.incarnation_now() == core.incarnation
    )
