"""The resources the benchmark's clients write to, and the constraints its constrained
row carries."""

from __future__ import annotations

from policies import (
    AllowOnly,
    CapArgument,
    ConstraintSet,
    ForbidEntities,
    ForbidPath,
    Provenance,
)

from ..._resource.declare import Resource, read, write


class BenchCounter(Resource):
    """The agentcast side of the benchmark: counters under string keys."""

    @write
    def add(self, state: dict[str, int], key: str, n: int) -> int:
        state[key] = state.get(key, 0) + n
        return state[key]

    @read
    def get(self, state: dict[str, int], key: str) -> int:
        return state.get(key, 0)


class VerifiedCounter(Resource):
    """The same counters behind a write that requires VERIFIED provenance, believed from
    the bench's clients: every write pays the trust rule and the requirement check."""

    vouchers = {"clients": Provenance.VERIFIED}

    @write(requires=Provenance.VERIFIED)
    def add(self, state: dict[str, int], key: str, n: int) -> int:
        state[key] = state.get(key, 0) + n
        return state[key]

    @read
    def get(self, state: dict[str, int], key: str) -> int:
        return state.get(key, 0)


TEN_CONSTRAINTS = ConstraintSet(
    (
        *(ForbidPath(prefix=f"/{p}", argument="key") for p in ("prod", "etc", "var", "srv")),
        *(ForbidPath(prefix=f"/{p}", argument="key") for p in ("home", "root", "boot")),
        ForbidEntities(entities=frozenset({"frozen", "closed"}), argument="key"),
        CapArgument(argument="n", maximum=1_000_000),
        AllowOnly(targets=frozenset({"bench-full.add", "bench-process.add"})),
    )
)
"""What a ``durable_constrained`` write carries: checked on every write, never broken."""
