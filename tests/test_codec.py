"""The plain-data codec: what it allocates per call, and that values of every size round trip."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable

import pytest
from pydantic import BaseModel

from runtime import InvalidArgumentError, decode, encode

pytestmark = pytest.mark.timeout(60)

MAPPED_ON_ITS_OWN = 128 * 1024
"""The blocks a state actor maps on their own (``runtime.fix_mmap_threshold``)."""


class Order(BaseModel):
    sku: str
    qty: int


def _largest_block_while(call: Callable[[], object]) -> int:
    """The peak of traced memory while ``call`` runs, above what was traced before."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        call()
        return tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize(
    "value", [7, "sku-1", {"mug": 3}, [1, [2, {"k": b"v"}]], Order(sku="a", qty=1)]
)
def test_encoding_a_small_value_takes_no_block_a_state_actor_would_map(value: object) -> None:
    # State actors map every block of MAPPED_ON_ITS_OWN or more on its own:
    # a packer that starts that large maps and unmaps it on every write's encodings.
    assert _largest_block_while(lambda: encode(value)) < MAPPED_ON_ITS_OWN // 8


def test_values_larger_than_the_first_buffer_round_trip_exactly() -> None:
    value = {"blob": b"\x00\xff" * 300_000, "rows": [[i, str(i), i / 3] for i in range(20_000)]}
    assert decode(encode(value)) == value
    assert decode(encode(Order(sku="x" * 70_000, qty=2))) == {"sku": "x" * 70_000, "qty": 2}


def test_a_refused_value_leaves_the_next_encoding_whole() -> None:
    with pytest.raises(InvalidArgumentError, match="sets are not plain data"):
        encode({"a": [1, 2, {"b": {3}}]})
    assert decode(encode({"a": [1, 2]})) == {"a": [1, 2]}
