"""The idempotency keys a resource has committed, known without asking storage first.

Every write carries a key, and almost every key is new. Asking the log whether a new key
was committed costs two look-ups (the log, then the keys compaction kept) for an answer
that is almost always "no". ``KnownKeys`` answers most of them in memory:

- a bounded cache of recent keys with what they are bound to (their version, result,
  operation and arguments' digest): a retry soon after its write is answered from here;
- a Bloom filter of every key the log remembers, built from storage when the resource
  recovers and added to with each commit. A key the filter has never seen is new for
  sure, and skips storage; a key it may have seen is looked up in storage, so an answer
  is always the log's own (a false positive costs only the look-up it used to).

The filter never says "new" for a logged key: recovery builds it from every key the log
and ``compacted_keys`` hold, every commit adds its keys before the next batch is looked
up, and a batch whose commit failed makes the core recover (and rebuild) before the next
one. Keys that compaction forgets stay in the filter as false positives until the next
rebuild: when the filter fills past its capacity, it is built again from storage, twice
as large as what it then holds.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Callable, Iterable

from .batch import Seen

_BITS_PER_KEY = 10  # with 7 probes: about 1% false positives at capacity
_PROBES = 7
_MIN_CAPACITY = 1 << 16

Lookup = Callable[[list[str]], dict[str, tuple[int, bytes, str, bytes]]]
"""``ResourceLog.committed``: the stored binding of each key found."""


class KeyFilter:
    """A Bloom filter of strings: ``may_contain`` is False only for a key never added."""

    def __init__(self, capacity: int) -> None:
        self.capacity = max(capacity, 1)
        self.count = 0
        self._size = self.capacity * _BITS_PER_KEY
        self._bits = bytearray((self._size + 7) // 8)

    def _positions(self, key: str) -> list[int]:
        # The process's own string hash (cached on the str, salted per process): the
        # filter lives and is rebuilt in one process, so a per-process salt is harmless.
        h = hash(key) & 0xFFFF_FFFF_FFFF_FFFF
        h1, h2, size = h & 0xFFFF_FFFF, (h >> 32) | 1, self._size
        return [(h1 + i * h2) % size for i in range(_PROBES)]

    def add(self, key: str) -> None:
        bits = self._bits
        for p in self._positions(key):
            bits[p >> 3] |= 1 << (p & 7)
        self.count += 1

    def may_contain(self, key: str) -> bool:
        bits = self._bits
        return all(bits[p >> 3] & (1 << (p & 7)) for p in self._positions(key))

    @property
    def full(self) -> bool:
        """More keys added than it was sized for: false positives grow from here."""
        return self.count > self.capacity


class KnownKeys:
    """Committed idempotency keys: a bounded cache of bindings and a filter of all keys.

    Args:
        cache_size: recent keys kept with their binding (``ResourcePolicy.idempotency_cache``).
        stored: every key storage remembers (``ResourceLog.idem_keys``), read to (re)build
            the filter.
        lookup: the stored binding of keys (``ResourceLog.committed``).
    """

    def __init__(self, cache_size: int, stored: Callable[[], Iterable[str]], lookup: Lookup):
        self._cache: OrderedDict[str, Seen] = OrderedDict()
        self._cache_size = cache_size
        self._stored = stored
        self._lookup = lookup
        self.filter = KeyFilter(_MIN_CAPACITY)
        self.lookups = 0  # keys asked of storage: what the filter did not rule out

    def rebuild(self) -> None:
        """Forget the cache and build the filter from storage (at recovery).

        Raises:
            StorageError, DatabaseErrors: storage could not be read.
        """
        self._cache.clear()
        self.filter = self._built()

    def _built(self) -> KeyFilter:
        keys = list(self._stored())
        built = KeyFilter(max(_MIN_CAPACITY, 2 * len(keys)))
        for key in keys:
            built.add(key)
        return built

    def committed(self, keys: list[str]) -> dict[str, Seen]:
        """Each of ``keys`` already committed, with what it is bound to.

        Raises:
            StorageError: the log could not be read.
        """
        found = {key: self._cache[key] for key in keys if key in self._cache}
        ask = [k for k in keys if k not in found and self.filter.may_contain(k)]
        if ask:
            self.lookups += len(ask)
            found.update((key, Seen(*seen)) for key, seen in self._lookup(ask).items())
        return found

    def remember(self, batch_keys: dict[str, Seen]) -> None:
        """Keep the keys of a committed batch. A full filter is built again from storage
        (which now holds these keys); if storage cannot be read, the full one is kept: it
        has every key, and only rules out fewer new ones."""
        for key in batch_keys:
            if key not in self._cache:
                self.filter.add(key)
        self._cache.update(batch_keys)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        if self.filter.full:
            with contextlib.suppress(Exception):
                self.filter = self._built()
